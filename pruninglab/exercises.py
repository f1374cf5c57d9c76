"""Exercises: small functions a student writes in a notebook, checked against the library.

An exercise in a notebook is a stub and one call::

    def linear_parameters(n_in: int, n_out: int) -> int:
        ...  # your code

    pl.exercises.check("01.2", linear_parameters)

:func:`check` calls the answer and the library's reference on the same inputs (drawn with
fixed seeds, so a hint is the same every time it is shown) and prints one line:

* a pass;
* ``not done yet`` for a stub: ``None``, ``...``, a function that raises
  ``NotImplementedError`` or that returns ``None`` (the body ``...`` does);
* or a hint that names what is wrong: the first input on which the answer differs, what
  was expected and what came back (the count, the shape, the dtype, the value), and, when
  the answer behaves like a known mistake (the other momentum convention, rounding down,
  the wrong axis, ...), the mistake by name.

It returns ``True`` or ``False`` and never raises, so a notebook's Run All goes on. Each
exercise stands alone: later cells never call a student's answer.

Headless runs (``make run``, ``make test``) set ``PRUNINGLAB_FILL_EXERCISES=1``: a stub is
then checked as if it were the reference, and the line says so, so every check runs green
there while the student's copy keeps its stubs. ``PRUNINGLAB_FILL_EXERCISES=0`` or unset
leaves stubs as stubs.

:func:`names` lists the ids (``"NN.k"``: notebook ``NN``, exercise ``k``), :func:`describe`
gives the task in a sentence, :func:`solution` the reference (a function or a value).
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from . import basics, efficiency, gimp, masking, models, optim, pruning, schedules, shuffle, tom

__all__ = ["FILL_VARIABLE", "Exercise", "Mistake", "check", "describe", "difference", "names",
           "solution"]

FILL_VARIABLE = "PRUNINGLAB_FILL_EXERCISES"


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong answer and the hint that names it.

    Attributes:
        name: a few words, e.g. ``"forgot the biases"``.
        hint: what to look at again, one sentence.
        answer: the wrong function (or value), written as a student might; :func:`check`
            recognises the mistake when an answer agrees with it where the reference differs.
    """

    name: str
    hint: str
    answer: object


@dataclass(frozen=True)
class Exercise:
    """One exercise.

    Attributes:
        id: ``"NN.k"``.
        signature: how the answer is named and called in the notebook, e.g.
            ``"linear_parameters(n_in, n_out)"``; a bare name for a value.
        task: the task in one sentence.
        reference: the library's answer: a function, or the value itself when ``cases`` is
            ``None``.
        cases: keyword arguments of the inputs the answer is tried on (``None`` for a value).
        mistakes: known wrong answers, recognised in the hint.
        tolerance: relative tolerance for floating-point results (integers, counts and
            masks must match exactly).
    """

    id: str
    signature: str
    task: str
    reference: object
    cases: tuple[dict, ...] | None
    mistakes: tuple[Mistake, ...] = ()
    tolerance: float = 1e-5


# ======================================================================================
# Comparing an answer's result with the reference's
# ======================================================================================


def _kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, bool):
        return f"the bool {value}"
    if isinstance(value, (int, float)):
        return f"the {type(value).__name__} {value!r}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def difference(expected: object, got: object, tolerance: float = 1e-5) -> str | None:
    """``None`` if ``got`` agrees with ``expected``, else a short description of the first
    difference: the type, the length, the shape, the dtype, the count of a mask, the value.

    Integers must match exactly (``12.0`` for ``12`` is a type error: a count is an int);
    floats and float tensors to ``tolerance`` relative (and 1e-7 absolute)."""
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"expected a list of {len(expected)} items, got {_kind(got)}"
        if len(got) != len(expected):
            return f"expected {len(expected)} items, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = difference(e, g, tolerance)
            if problem:
                return f"item {i}: {problem}"
        return None
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected {_kind(expected)}, got {_kind(got)}"
        if got.shape != expected.shape:
            return (f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)} "
                    "(check which axis you summed or averaged over)")
        if expected.dtype == torch.bool:
            if got.dtype != torch.bool:
                return f"expected a bool mask (True = kept), got dtype {got.dtype}"
            if int(got.sum()) != int(expected.sum()):
                return (f"keeps {int(got.sum())} of {got.numel()} entries, "
                        f"expected {int(expected.sum())}")
            if not torch.equal(got, expected):
                first = tuple(int(i) for i in (got != expected).nonzero()[0])
                return (f"keeps the right number of entries but not the right ones "
                        f"(first difference at index {first})")
            return None
        if not expected.is_floating_point():  # counts: exact integers
            if got.is_floating_point() or got.dtype == torch.bool:
                return f"expected integer counts ({expected.dtype}), got dtype {got.dtype}"
            wrong = got != expected
            if not bool(wrong.any()):
                return None
            first = tuple(int(i) for i in wrong.nonzero()[0])
            return (f"values differ, first at index {first}: expected {int(expected[first])}, "
                    f"got {int(got[first])}")
        if not got.is_floating_point():
            return f"expected floating-point values ({expected.dtype}), got dtype {got.dtype}"
        got = got.detach().to(expected.dtype)
        close = torch.isclose(got, expected, rtol=tolerance, atol=1e-7)
        if bool(close.all()):
            return None
        first = tuple(int(i) for i in (~close).nonzero()[0])
        return (f"values differ, first at index {first}: expected {float(expected[first]):.6g},"
                f" got {float(got[first]):.6g}")
    if isinstance(expected, bool) or not isinstance(expected, (int, float)):
        return None if got == expected else f"expected {expected!r}, got {_kind(got)}"
    if isinstance(got, torch.Tensor) and got.dim() == 0:
        got = got.item()  # a 0-d tensor holds a number: take it
    if isinstance(expected, int):
        if isinstance(got, bool) or not isinstance(got, numbers.Integral):
            return f"expected the int {expected:,}, got {_kind(got)}"
        return None if got == expected else f"expected {expected:,}, got {int(got):,}"
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return f"expected the number {expected:.6g}, got {_kind(got)}"
    if math.isclose(got, expected, rel_tol=tolerance, abs_tol=1e-12):
        return None
    return f"expected {expected:.6g}, got {got:.6g}"


def _show(value: object) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() <= 4:
            return "[" + ", ".join(f"{v:.4g}" for v in value.flatten().tolist()) + "]"
        return f"<tensor {tuple(value.shape)}>"
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value)


def _call_text(function_name: str, case: dict) -> str:
    return f"{function_name}({', '.join(f'{k}={_show(v)}' for k, v in case.items())})"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _is_stub_value(value: object) -> bool:
    return value is None or value is Ellipsis


# ======================================================================================
# check, names, describe, solution
# ======================================================================================


def check(id: str, answer: object) -> bool:
    """Check a student's ``answer`` to exercise ``id`` and print one line about it.

    Args:
        id: the exercise, e.g. ``"01.1"`` (:func:`names` lists them).
        answer: the student's function, or value for a value exercise.

    Returns:
        ``True`` if the answer agrees with the reference on every input, else ``False``.
        Never raises: an unknown id, a stub or an answer that fails prints why instead.
    """
    try:
        exercise = _get(id)
        fill = _fill_requested()
    except ValueError as err:
        print(f"✗ {err}")
        return False
    try:
        verdict, message = _judge(exercise, answer)
        if verdict is None and fill:
            verdict, message = _judge(exercise, exercise.reference)
            message = (f"not done yet; this headless run ({FILL_VARIABLE}=1) checks the "
                       f"reference in its place: {message}")
    except Exception as err:  # e.g. a result that cannot even be compared: say so, go on
        print(f"✗ {exercise.id} could not check the answer: {_one_line(err)}")
        return False
    if verdict is None and not fill:
        message = f"not done yet: {message}"
    mark = "✓" if verdict else ("○" if verdict is None else "✗")
    print(f"{mark} {exercise.id} {message}")
    return bool(verdict)


def _judge(exercise: Exercise, answer: object) -> tuple[bool | None, str]:
    """``(True, msg)`` pass, ``(False, hint)`` fail, ``(None, msg)`` a stub."""
    name = exercise.signature.split("(")[0]
    if exercise.cases is None:  # a value
        if _is_stub_value(answer):
            return None, f"set {name} to your answer, then run this cell again."
        if callable(answer):
            try:
                answer()
            except NotImplementedError:
                return None, f"set {name} to your answer, then run this cell again."
            except Exception:  # whatever else it does, a function is not a value
                pass
            return False, f"{name} should be a value, not a function"
        problem = difference(exercise.reference, answer, exercise.tolerance)
        if problem is None:
            return True, f"passed: {name} = {answer!r}."
        return False, _with_mistake(exercise, problem, None, [answer])
    if _is_stub_value(answer):
        return None, f"write {exercise.signature}, then run this cell again."
    if not callable(answer):
        return False, f"{name} should be a function {exercise.signature}, got {_kind(answer)}"
    outputs = []  # the answer's result on every input, or the exception it raised
    for case in exercise.cases:
        try:
            outputs.append(answer(**copy.deepcopy(case)))
        except NotImplementedError:
            return None, f"write {exercise.signature}, then run this cell again."
        except Exception as err:  # the student's code: report it, never raise
            outputs.append(err)
    for case, got in zip(exercise.cases, outputs):
        if isinstance(got, Exception):
            return False, f"{_call_text(name, case)} raised {_one_line(got)}"
        if _is_stub_value(got):
            return None, (f"{name} returned {got!r}: write its body ({exercise.signature}), "
                          "then run this cell again.")
        problem = difference(exercise.reference(**copy.deepcopy(case)), got,
                             exercise.tolerance)
        if problem:
            return False, _with_mistake(exercise, f"{_call_text(name, case)}: {problem}",
                                        case, outputs)
    return True, f"passed: {name} agrees with the reference on {len(exercise.cases)} inputs."


def _with_mistake(exercise: Exercise, problem: str, case: dict | None,
                  outputs: list) -> str:
    """``problem``, and the hint of the known mistake that the answer behaves like: the one
    that gives what the answer gave (``outputs``, one per input; for a value, the value) on
    the most inputs, at least on ``case``, where it failed (``None`` for a value)."""
    cases = [None] if case is None else list(exercise.cases)
    failed_at = next(i for i, c in enumerate(cases) if c is case)  # dicts of tensors: no ==

    def agrees(mistake: Mistake, c: dict | None, output: object) -> bool:
        theirs = mistake.answer if c is None else _quietly(mistake.answer, c)
        return (theirs is not _FAILED and not isinstance(output, Exception)
                and difference(theirs, output, exercise.tolerance) is None)

    best, best_count = None, 0
    for mistake in exercise.mistakes:
        if not agrees(mistake, case, outputs[failed_at]):
            continue
        count = sum(agrees(mistake, c, out) for c, out in zip(cases, outputs))
        if count > best_count:
            best, best_count = mistake, count
    return problem if best is None else f"{problem}. Looks like: {best.name}. {best.hint}"


_FAILED = object()


def _quietly(function, case: dict) -> object:
    """``function(**case)`` on a copy of the inputs, or ``_FAILED`` if it raises."""
    try:
        return function(**copy.deepcopy(case))
    except Exception:
        return _FAILED


def _fill_requested() -> bool:
    value = os.environ.get(FILL_VARIABLE, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{FILL_VARIABLE} must be 0 or 1, got {value!r}")
    return value == "1"


def _get(id: str) -> Exercise:
    if id not in _EXERCISES:
        raise ValueError(f"no exercise {id!r}; the exercises are {', '.join(_EXERCISES)}")
    return _EXERCISES[id]


def names(notebook: str | None = None) -> list[str]:
    """The exercise ids in course order; ``notebook="04"`` keeps that notebook's."""
    if notebook is not None and not (isinstance(notebook, str) and len(notebook) == 2
                                     and notebook.isdigit()):
        raise ValueError(f"notebook must be two digits such as '04', got {notebook!r}")
    return [i for i in _EXERCISES if notebook is None or i.startswith(f"{notebook}.")]


def describe(id: str) -> str:
    """The task of exercise ``id`` in a sentence, with the signature the check calls."""
    exercise = _get(id)
    return f"{exercise.id} · {exercise.signature}: {exercise.task}"


def solution(id: str) -> object:
    """The reference answer of exercise ``id``: a function to call, or the value."""
    return _get(id).reference


# ======================================================================================
# The inputs the answers are tried on (fixed seeds: the same hint every time)
# ======================================================================================


def _generator(id: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(id.replace(".", "")))


def _integers(id: str, count: int, low: int, high: int) -> list[int]:
    return torch.randint(low, high + 1, (count,), generator=_generator(id)).tolist()


def _not_half_way(density: float, n: int) -> float:
    """A density whose ``density * n`` ends in .75: rounding to nearest and rounding down
    then keep different counts, so the two are told apart."""
    return (math.floor(density * n) + 0.75) / n


# ======================================================================================
# The references: the library's own functions (masks through pruning.prune)
# ======================================================================================


def _layer_with(weight: torch.Tensor) -> nn.Module:
    """A bias-free Linear or Conv2d layer that holds ``weight`` (2-d or 4-d)."""
    if weight.dim() == 2:
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    elif weight.dim() == 4:
        layer = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), bias=False)
    else:
        raise ValueError(f"weight must be 2-d (Linear) or 4-d (Conv2d), got {weight.dim()}-d")
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def _magnitude_masks(weights: Sequence[torch.Tensor], density: float,
                     scope: str) -> list[torch.Tensor]:
    net = nn.Sequential(*[_layer_with(w) for w in weights])
    with warnings.catch_warnings():  # an emptied layer is a fine answer here
        warnings.simplefilter("ignore", pruning.EmptyLayerWarning)
        pruning.prune(net, density, scope=scope)
    return [m.clone() for m in masking.get_masks(net).values()]


def _bn(x, running_mean, running_var, gamma, beta, eps, training):
    return basics.batch_norm_by_hand(x, running_mean, running_var, gamma, beta,
                                     training=training, eps=eps)[0]


# ======================================================================================
# The exercises, notebook by notebook
# ======================================================================================


def _exercises_01() -> list[Exercise]:
    pairs = list(zip(_integers("01.2", 6, 1, 1000), _integers("01.21", 6, 1, 1000)))
    g = _generator("01.1")
    neuron_cases = tuple(
        {"y": torch.randn(5, n, generator=g), "w": torch.randn(n, generator=g),
         "b": float(torch.randn((), generator=g))} for n in (3, 4, 7))
    return [
        Exercise(
            "01.2", "linear_parameters(n_in, n_out)",
            "the number of parameters (weights and biases) of a linear layer with n_in "
            "inputs and n_out outputs.",
            reference=basics.linear_layer_parameters,
            cases=({"n_in": 784, "n_out": 400}, {"n_in": 1, "n_out": 1},
                   *({"n_in": a, "n_out": b} for a, b in pairs)),
            mistakes=(
                Mistake("forgot the biases", "Each of the n_out neurons has a bias too.",
                        lambda n_in, n_out: n_in * n_out),
                Mistake("one bias per input", "The biases belong to the output neurons: "
                        "n_out of them, not n_in.", lambda n_in, n_out: n_in * n_out + n_in),
            )),
        Exercise(
            "01.1", "relu_neuron(y, w, b)",
            "one ReLU neuron on a batch: ReLU(y·w + b) for each row of y (y is (B, N), "
            "w is (N,), b a number; the result is (B,)).",
            reference=lambda y, w, b: basics.neuron(y, w, b, activation="relu"),
            cases=neuron_cases,
            mistakes=(
                Mistake("no ReLU", "The neuron's output goes through ReLU: negative sums "
                        "become 0.", lambda y, w, b: y @ w + b),
                Mistake("bias left out", "Add b to the weighted sum before the ReLU.",
                        lambda y, w, b: torch.relu(y @ w)),
                Mistake("ReLU before the bias", "ReLU acts on the whole sum, bias included:"
                        " ReLU(y·w + b), not ReLU(y·w) + b.",
                        lambda y, w, b: torch.relu(y @ w) + b),
            )),
        Exercise(
            "01.3", "mlp_parameters(widths)",
            "the parameters of a fully connected network with layer widths `widths` "
            "(inputs first, outputs last), e.g. [784, 400, 400, 400, 10].",
            reference=basics.mlp_parameters,
            cases=({"widths": [784, 400, 400, 400, 10]}, {"widths": [2, 2, 1]},
                   {"widths": [784, 300, 100, 10]}, {"widths": [5, 3]},
                   {"widths": _integers("01.3", 5, 1, 50)}),
            mistakes=(
                Mistake("a layer too few (off by one)", "A network with widths "
                        "[a, b, c] has two layers: a→b and b→c; count every consecutive pair.",
                        lambda widths: sum((a + 1) * b for a, b in
                                           zip(widths[:-2], widths[1:-1]))),
                Mistake("biases on the inputs", "Only neurons that compute something have a"
                        " bias: the input layer has none.",
                        lambda widths: sum(a * b for a, b in zip(widths, widths[1:]))
                        + sum(widths)),
                Mistake("forgot the biases", "Each layer's output neurons have one bias "
                        "each.", lambda widths: sum(a * b for a, b in zip(widths, widths[1:]))),
            )),
    ]


def _exercises_02() -> list[Exercise]:
    sizes = _integers("02.1", 8, 5, 64)
    kernels = _integers("02.11", 8, 1, 5)
    strides = _integers("02.12", 8, 1, 3)
    paddings = _integers("02.13", 8, 0, 2)
    cases = [{"size": 32, "kernel": 3, "stride": 2, "padding": 1},
             {"size": 28, "kernel": 5, "stride": 1, "padding": 0},
             {"size": 8, "kernel": 3, "stride": 3, "padding": 0}]
    cases += [{"size": s, "kernel": k, "stride": st, "padding": p}
              for s, k, st, p in zip(sizes, kernels, strides, paddings)]
    channels = list(zip(_integers("02.2", 6, 1, 64), _integers("02.21", 6, 1, 64),
                        _integers("02.22", 6, 1, 7)))
    return [
        Exercise(
            "02.1", "conv_output_size(size, kernel, stride, padding)",
            "the output height (or width) of a convolution on an input `size` pixels high, "
            "with a `kernel`-pixel window, `stride` and `padding` zeros on each side.",
            reference=basics.conv_output_size,
            cases=tuple(cases),
            mistakes=(
                Mistake("padding on one side only", "`padding` zeros go on *each* side: "
                        "the padded input is size + 2·padding.",
                        lambda size, kernel, stride, padding:
                        (size + padding - kernel) // stride + 1),
                Mistake("forgot the +1 (off by one)", "Count window positions: the first "
                        "one is at 0, then one per stride that still fits.",
                        lambda size, kernel, stride, padding:
                        (size + 2 * padding - kernel) // stride),
                Mistake("rounded up instead of down", "A window that does not fit wholly is"
                        " not a position: round the division down.",
                        lambda size, kernel, stride, padding:
                        math.ceil((size + 2 * padding - kernel) / stride) + 1),
                Mistake("ignored the stride", "With stride s the window moves s pixels per "
                        "step: divide by s.",
                        lambda size, kernel, stride, padding: size + 2 * padding - kernel + 1),
            )),
        Exercise(
            "02.2", "conv_parameters(c_in, c_out, kernel, bias)",
            "the parameters of a convolutional layer with c_in input and c_out output "
            "channels and a square kernel×kernel window, with or without a bias per filter.",
            reference=basics.conv2d_parameters,
            cases=({"c_in": 3, "c_out": 16, "kernel": 3, "bias": False},
                   {"c_in": 3, "c_out": 16, "kernel": 3, "bias": True},
                   *({"c_in": a, "c_out": b, "kernel": k, "bias": i % 2 == 0}
                     for i, (a, b, k) in enumerate(channels))),
            mistakes=(
                Mistake("forgot the input channels", "Each filter covers all c_in input "
                        "channels: c_in·k·k weights per filter.",
                        lambda c_in, c_out, kernel, bias: c_out * (kernel * kernel + bias)),
                Mistake("the kernel counted once, not k×k", "The window is kernel × kernel "
                        "pixels.", lambda c_in, c_out, kernel, bias:
                        c_out * (c_in * kernel + bias)),
                Mistake("the bias ignored (or always counted)", "One bias per filter, and "
                        "only when bias is True.",
                        lambda c_in, c_out, kernel, bias:
                        c_out * (c_in * kernel * kernel + (not bias))),
            )),
    ]


def _standardize(x: torch.Tensor, eps: float, dims: tuple[int, ...] = (0, 2, 3),
                 unbiased: bool = False, eps_under_root: bool = True) -> torch.Tensor:
    """``x`` standardized over ``dims``: BN's training mode without γ and β with the
    defaults; the other arguments make its plausible mistakes (03.3)."""
    mean = x.mean(dim=dims, keepdim=True)
    std = x.var(dim=dims, unbiased=unbiased, keepdim=True)
    std = torch.sqrt(std + eps) if eps_under_root else torch.sqrt(std) + eps
    return (x - mean) / std


def _exercises_03() -> list[Exercise]:
    g = _generator("03.1")
    ema_cases = tuple({"old": torch.randn(4, generator=g), "new": torch.randn(4, generator=g),
                       "momentum": m} for m in (0.1, 0.01, 0.3, 0.003))
    g = _generator("03.2")
    bn_train_cases = []
    for shape, eps in (((4, 3, 3, 3), 1e-3), ((8, 2, 2, 5), 1e-2), ((3, 4, 4, 4), 0.1)):
        channel_std = torch.logspace(-1.5, 0.5, shape[1])  # small and large variances
        x = 2.0 + channel_std.view(1, -1, 1, 1) * torch.randn(shape, generator=g)
        bn_train_cases.append({"x": x, "eps": eps})
    g = _generator("03.3")
    bn_eval_cases = []
    for shape in ((4, 3, 3, 3), (2, 5, 2, 2), (6, 2, 4, 4)):
        c = shape[1]
        bn_eval_cases.append({
            "x": 1.0 + torch.randn(shape, generator=g),
            "running_mean": torch.randn(c, generator=g),
            "running_var": 0.2 + torch.rand(c, generator=g) * 3,
            "gamma": 0.5 + torch.rand(c, generator=g), "beta": torch.randn(c, generator=g),
            "eps": 1e-3})

    def view(t):
        return t.view(1, -1, 1, 1)

    return [
        Exercise(
            "03.1", "running_average_step(old, new, momentum)",
            "one update of a running average in PyTorch's convention, where `momentum` "
            "(e.g. 0.1) is the weight of the new value.",
            reference=lambda old, new, momentum: basics.ema_update(old, new, momentum, "torch"),
            cases=ema_cases,
            mistakes=(
                Mistake("TensorFlow's convention", "That is the thesis's (TF's) convention, "
                        "where momentum weighs the *old* value; PyTorch's weighs the new one.",
                        lambda old, new, momentum: momentum * old + (1 - momentum) * new),
            )),
        Exercise(
            "03.3", "batch_norm_train(x, eps)",
            "batch normalization in training mode without γ and β: standardize each channel "
            "of x (N, C, H, W) with the batch's own mean and biased variance over N, H and W.",
            reference=lambda x, eps: _bn(x, torch.zeros(x.shape[1]), torch.ones(x.shape[1]),
                                         None, None, eps, training=True),
            cases=tuple(bn_train_cases),
            mistakes=(
                Mistake("normalized over the wrong axis (per image)", "BN's statistics are "
                        "per channel, over the batch and the pixels: dim=(0, 2, 3).",
                        lambda x, eps: _standardize(x, eps, dims=(1, 2, 3))),
                Mistake("normalized over the wrong axis (per pixel)", "Average over the "
                        "pixels too, not only the batch: dim=(0, 2, 3).",
                        lambda x, eps: _standardize(x, eps, dims=(0,))),
                Mistake("the unbiased variance", "Training-mode BN divides by n, not n − 1 "
                        "(unbiased=False); only the running variance uses n − 1.",
                        lambda x, eps: _standardize(x, eps, unbiased=True)),
                Mistake("eps outside the square root", "ε is added to the variance: "
                        "sqrt(var + eps).",
                        lambda x, eps: _standardize(x, eps, eps_under_root=False)),
            )),
        Exercise(
            "03.4", "batch_norm_eval(x, running_mean, running_var, gamma, beta, eps)",
            "batch normalization in evaluation mode: γ·(x − running_mean)/sqrt(running_var + "
            "ε) + β per channel of x (N, C, H, W).",
            reference=lambda x, running_mean, running_var, gamma, beta, eps: _bn(
                x, running_mean, running_var, gamma, beta, eps, training=False),
            cases=tuple(bn_eval_cases),
            mistakes=(
                Mistake("the batch's statistics", "Evaluation mode uses the running "
                        "statistics, not the batch's own mean and variance.",
                        lambda x, running_mean, running_var, gamma, beta, eps:
                        _bn(x, running_mean, running_var, gamma, beta, eps, training=True)),
                Mistake("divided by the variance", "Divide by the standard deviation, "
                        "sqrt(running_var + eps).",
                        lambda x, running_mean, running_var, gamma, beta, eps:
                        view(gamma) * (x - view(running_mean)) / (view(running_var) + eps)
                        + view(beta)),
                Mistake("γ and β left out", "After standardizing, scale by γ and shift by β.",
                        lambda x, running_mean, running_var, gamma, beta, eps:
                        (x - view(running_mean)) / torch.sqrt(view(running_var) + eps)),
            )),
        Exercise(
            "03.2", "resnet_torch_momentum",
            "the thesis's ResNets use the TF momentum μ = 0.997: the value to pass to "
            "nn.BatchNorm2d(momentum=...) in PyTorch.",
            reference=models.tf_to_torch_momentum(0.997),
            cases=None,
            mistakes=(
                Mistake("TensorFlow's convention", "0.997 is TF's μ, the weight of the old "
                        "value; PyTorch's momentum weighs the new one.", 0.997),
            ),
            tolerance=1e-6),
    ]


def _exercises_04() -> list[Exercise]:
    g = _generator("04.1")
    mask_cases = []
    for shape, density in (((12, 7), 0.3), ((16, 3, 3, 3), 0.1), ((10, 25), 0.05),
                           ((4, 4), 0.5)):
        weight = torch.randn(shape, generator=g)
        mask_cases.append({"weight": weight,
                           "density": _not_half_way(density, weight.numel())})
    g = _generator("04.2")
    global_cases = []
    for shapes, scales, density in ((((20, 8), (6, 20)), (0.2, 1.0), 0.3),
                                    (((8, 1, 3, 3), (10, 8, 3, 3), (4, 10)), (1.0, 0.1, 0.5),
                                     0.2)):
        weights = [scale * torch.randn(shape, generator=g)
                   for shape, scale in zip(shapes, scales)]
        total = sum(w.numel() for w in weights)
        global_cases.append({"weights": weights, "density": _not_half_way(density, total)})
    g = _generator("04.3")
    density_cases = []
    for shapes in (((100, 10), (10, 10)), ((30, 4), (5, 6), (2, 2))):
        density_cases.append({"masks": [torch.rand(s, generator=g) < p for s, p in
                                        zip(shapes, (0.1, 0.8, 0.5))]})

    def largest(weight, k):
        keep = torch.zeros(weight.numel(), dtype=torch.bool)
        keep[weight.flatten().topk(k).indices] = True
        return keep.view_as(weight)

    return [
        Exercise(
            "04.1", "magnitude_mask(weight, density)",
            "a bool mask shaped like `weight` that keeps exactly round(density·N) of its N "
            "weights, those with the largest |w|.",
            reference=lambda weight, density: _magnitude_masks([weight], density, "global")[0],
            cases=tuple(mask_cases),
            mistakes=(
                Mistake("rounded down instead of to nearest", "Keep round(density·N) weights"
                        " (Python's round), not int(density·N).",
                        lambda weight, density: largest(weight.abs(),
                                                        int(density * weight.numel()))),
                Mistake("the signed values instead of |w|", "A large negative weight matters "
                        "as much as a large positive one: rank by weight.abs().",
                        lambda weight, density: largest(weight,
                                                        round(density * weight.numel()))),
                Mistake("kept the smallest weights", "Magnitude pruning keeps the *largest* "
                        "|w| and removes the rest.",
                        lambda weight, density: largest(-weight.abs(),
                                                        round(density * weight.numel()))),
            )),
        Exercise(
            "04.3", "global_masks(weights, density)",
            "bool masks for a list of weight tensors with one threshold for all of them "
            "(global pruning): keep the round(density·N) largest |w| of all N weights.",
            reference=lambda weights, density: _magnitude_masks(weights, density, "global"),
            cases=tuple(global_cases),
            mistakes=(
                Mistake("layerwise instead of global", "Global pruning ranks all weights "
                        "together, so the layers end up with different densities.",
                        lambda weights, density: _magnitude_masks(weights, density,
                                                                  "layerwise")),
                Mistake("rounded down instead of to nearest", "Keep round(density·N) weights,"
                        " not int(density·N).",
                        lambda weights, density: _magnitude_masks(
                            weights, int(density * sum(w.numel() for w in weights))
                            / sum(w.numel() for w in weights), "global")),
            )),
        Exercise(
            "04.2", "overall_density(masks)",
            "the density of a network from its layers' bool masks: the share of all its "
            "weights that are kept.",
            reference=lambda masks: sum(int(m.sum()) for m in masks)
            / sum(m.numel() for m in masks),
            cases=tuple(density_cases),
            mistakes=(
                Mistake("averaged the layers' densities", "A layer of 1,000 weights counts "
                        "ten times as much as one of 100: divide the kept weights by all "
                        "weights.", lambda masks: sum(float(m.float().mean()) for m in masks)
                        / len(masks)),
                Mistake("the sparsity, not the density", "Density is the share *kept*; "
                        "sparsity = 1 − density.",
                        lambda masks: 1 - sum(int(m.sum()) for m in masks)
                        / sum(m.numel() for m in masks)),
            )),
    ]


def _level_densities(K: float, target: float) -> list[float]:
    """Algorithm 5's densities, 1, K, K², ... clamped to ``target`` (05.1)."""
    return gimp.GIMPConfig(1, target, density_multiplier=K).densities()


def _schedule_starts(T: int, rewind_steps_lr: int, levels: int) -> list[int]:
    """The schedule position where each of ``levels`` levels of T steps starts (05.2)."""
    config = gimp.GIMPConfig(T, 0.5, rewind_steps_lr=rewind_steps_lr)
    return [first for _, first, _ in gimp.schedule_trace(config, levels)]


def _exercises_05() -> list[Exercise]:
    def densities_by(K, target, keep_going, clamp=True, dense=True, linear=False):
        """The density list with a student's plausible variations (05.1's mistakes)."""
        out, d, i = [1.0], 1.0, 0
        while keep_going(d, K, target):
            i += 1
            d = 1.0 - i * (1 - K) if linear else d * K
            out.append(max(d, target) if clamp else d)
        return out if dense else out[1:]

    def above(d, K, target):
        return d > target * (1 + 1e-9)

    return [
        Exercise(
            "05.1", "level_densities(K, target)",
            "the density of every level of iterative pruning: 1 (the dense network), then "
            "each level keeps K of the previous density, the last level clamped to `target`.",
            reference=_level_densities,
            cases=({"K": 0.7, "target": 0.1}, {"K": 0.7, "target": 0.04},
                   {"K": 0.8, "target": 0.3}, {"K": 0.5, "target": 0.125},
                   {"K": 0.9, "target": 0.5}, {"K": 0.6, "target": 0.05}),
            mistakes=(
                Mistake("not clamped to the target", "The last level would go below the "
                        "target: keep max(density·K, target) there.",
                        lambda K, target: densities_by(K, target, above, clamp=False)),
                Mistake("stopped before the target", "Go on while the density is above the "
                        "target; the last level is the target itself.",
                        lambda K, target: densities_by(
                            K, target, lambda d, K, t: d * K > t * (1 + 1e-9))),
                Mistake("the dense level left out", "Level 0 is the dense network, density 1:"
                        " the list starts with 1.0.",
                        lambda K, target: densities_by(K, target, above, dense=False)),
                Mistake("a share of the original weights, not of the remaining ones", "Each "
                        "level keeps K of the *previous* density (K, K², ...), it does not "
                        "take 1 − K of the original weights away again.",
                        lambda K, target: densities_by(K, target, above, linear=True)),
            )),
        Exercise(
            "05.2", "schedule_starts(T, rewind_steps_lr, levels)",
            "the learning-rate schedule position at which each of the first `levels` levels "
            "starts, when every level trains T steps and the position then moves back by "
            "`rewind_steps_lr` from where the level ended (never below 0).",
            reference=_schedule_starts,
            cases=({"T": 400, "rewind_steps_lr": 0, "levels": 4},
                   {"T": 400, "rewind_steps_lr": 400, "levels": 4},
                   {"T": 72_000, "rewind_steps_lr": 70_000, "levels": 3},
                   {"T": 100, "rewind_steps_lr": 30, "levels": 5},
                   {"T": 100, "rewind_steps_lr": 150, "levels": 3}),
            mistakes=(
                Mistake("rewound *to* rewind_steps_lr instead of *by* it", "The position "
                        "moves back by rewind_steps_lr from the end of the level: "
                        "max(0, end − rewind_steps_lr).",
                        lambda T, rewind_steps_lr, levels:
                        [0] + [rewind_steps_lr] * (levels - 1)),
                Mistake("the position does not carry over", "Each level ends T steps after "
                        "it *started*, which need not be 0: fine-tuning reads the schedule "
                        "past its end (0, T, 2T, ...).",
                        lambda T, rewind_steps_lr, levels:
                        [0] + [max(0, T - rewind_steps_lr)] * (levels - 1)),
                Mistake("not clamped at 0", "A rewind longer than the position goes back to "
                        "the start of the schedule, never below 0.",
                        lambda T, rewind_steps_lr, levels:
                        [i * (T - rewind_steps_lr) for i in range(levels)]),
            )),
    ]


def _rewind_point(T: int, percent: float) -> int:
    """sGIMP(percent %): the step of the finished cycle whose state the next level starts
    from (06.1)."""
    return gimp.sgimp(T, 0.5, rewind_fraction=percent / 100).rewind_point(0)


def _first_learning_rate(schedule: schedules.Schedule, rewind_steps_lr: int) -> float:
    """The learning rate of level 1's first step, after level 0 trained ``schedule.steps``
    steps (06.2)."""
    return schedule(_schedule_starts(schedule.steps, rewind_steps_lr, 2)[1])


def _exercises_06() -> list[Exercise]:
    resnet, vgg = schedules.resnet(), schedules.vgg()
    return [
        Exercise(
            "06.1", "rewind_point(T, percent)",
            "sGIMP(percent %) rewinds the weights by percent % of T (rounded to the nearest "
            "step): the step of the T-step cycle that just ended whose weights the next "
            "level starts from.",
            reference=_rewind_point,
            cases=({"T": 400, "percent": 75}, {"T": 72_000, "percent": 25},
                   {"T": 333, "percent": 75}, {"T": 1000, "percent": 98},
                   {"T": 400, "percent": 0}, {"T": 400, "percent": 100},
                   {"T": 90, "percent": 33}),
            mistakes=(
                Mistake("rewound *to* X % instead of *by* X %", "sGIMP(75 %) goes back 75 % "
                        "of the cycle: to the state after the first 25 %, step T − 0.75·T.",
                        lambda T, percent: round(percent / 100 * T)),
                Mistake("the percentage used as a fraction", "percent is in [0, 100]: divide"
                        " by 100 before multiplying by T.",
                        lambda T, percent: max(0, T - round(percent * T))),
                Mistake("rounded down instead of to nearest", "The rewind is round(X·T) "
                        "steps, not int(X·T).",
                        lambda T, percent: T - int(percent / 100 * T)),
            )),
        Exercise(
            "06.2", "first_learning_rate(schedule, rewind_steps_lr)",
            "the learning rate of the first retraining step after a level of T = "
            "schedule.steps steps, when the schedule position moves back by rewind_steps_lr "
            "(sGIMP uses rewind_steps_lr = T for every X; fine-tuning 0).",
            reference=_first_learning_rate,
            # first a rewind that lands on a boundary, where one step off changes the rate
            cases=({"schedule": resnet, "rewind_steps_lr": 36_000},
                   {"schedule": resnet, "rewind_steps_lr": 72_000},
                   {"schedule": resnet, "rewind_steps_lr": 0},
                   {"schedule": resnet, "rewind_steps_lr": 54_000},
                   {"schedule": resnet, "rewind_steps_lr": 18_000},
                   {"schedule": vgg, "rewind_steps_lr": 48_000},
                   {"schedule": vgg, "rewind_steps_lr": 70_000}),
            mistakes=(
                Mistake("read the schedule *at* rewind_steps_lr", "The position moves back "
                        "*by* rewind_steps_lr from where the level ended, T: read the "
                        "schedule at T − rewind_steps_lr.",
                        lambda schedule, rewind_steps_lr: schedule(rewind_steps_lr)),
                Mistake("one step too early", "The level's T steps used positions 0 … T − 1;"
                        " it ended at position T, and the rewind starts from there.",
                        lambda schedule, rewind_steps_lr:
                        schedule(max(0, schedule.steps - rewind_steps_lr - 1))),
                Mistake("the rewind ignored (fine-tuning's rate)", "Only fine-tuning "
                        "(rewind_steps_lr = 0) keeps the final rate; rewinding moves the "
                        "position back.",
                        lambda schedule, rewind_steps_lr: schedule(schedule.steps)),
            )),
    ]


def _logit_step(logits: torch.Tensor, grad_c: torch.Tensor, lr: float, clip: float,
                logit_clip: float) -> torch.Tensor:
    """One SGD step of TOM's mask logits (07.1), as :class:`pruninglab.tom.MaskTrainer`
    takes it with ``mask_optimizer="sgd"`` and no momentum, without the penalty: the
    gradient reaching the logits is dL/dc through :func:`pruninglab.masking.bernoulli_ste`."""
    b = logits.clone().requires_grad_(True)
    c = masking.bernoulli_ste(b, clip, torch.Generator().manual_seed(0))
    (c * grad_c).sum().backward()  # dL/dc = grad_c, handed straight through (clipped)
    optim.SGD([b], lr=lr).step()
    with torch.no_grad():
        b.clamp_(-logit_clip, logit_clip)
    return b.detach()


def _exercises_07() -> list[Exercise]:
    g = _generator("07.1")
    step_cases = []
    for shape, lr, clip, logit_clip in (((6, 5), 1.0, 0.1, 15.0), ((4, 3, 2), 0.5, 0.1, 15.0),
                                        ((20,), 2.0, 0.05, 3.0)):
        logits = 4 * torch.randn(shape, generator=g)
        logits.view(-1)[:2] = torch.tensor([logit_clip - 0.02, -logit_clip + 0.02])
        grad_c = 0.3 * torch.randn(shape, generator=g)
        grad_c.view(-1)[:2] = torch.tensor([-0.5, 0.5])  # pushes both past the logit clip
        step_cases.append({"logits": logits, "grad_c": grad_c, "lr": lr, "clip": clip,
                           "logit_clip": logit_clip})
    g = _generator("07.2")
    density_cases = []
    for shapes, means in ((((300, 20), (10, 20)), (-3.0, 2.0)),
                          (((50, 8), (8, 8), (8, 2)), (-1.0, 0.5, 4.0))):
        density_cases.append({"logits": [mean + 2 * torch.randn(shape, generator=g)
                                         for shape, mean in zip(shapes, means)]})

    def sgd(logits, step, logit_clip):
        return (logits - step).clamp(-logit_clip, logit_clip)

    return [
        Exercise(
            "07.1", "logit_step(logits, grad_c, lr, clip, logit_clip)",
            "one update of TOM's mask logits b (the thesis's SGD form, without the penalty):"
            " the gradient with respect to the sampled mask, dL/dc = grad_c, clipped to "
            "[−clip, clip], is handed straight to b; then b − lr·(that), clipped to "
            "[−logit_clip, logit_clip]. Same shape as logits.",
            reference=_logit_step,
            cases=tuple(step_cases),
            mistakes=(
                Mistake("dL/dc not clipped", "Clip the gradient to [−clip, clip] before the "
                        "step (thesis: 0.1).",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, lr * grad_c, logit_clip)),
                Mistake("the logits not clipped", "After the step, clip b to "
                        "[−logit_clip, logit_clip] (thesis: ±15).",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        logits - lr * grad_c.clamp(-clip, clip)),
                Mistake("a step up the gradient", "Gradient *descent*: subtract "
                        "lr·clip(dL/dc).",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, -lr * grad_c.clamp(-clip, clip), logit_clip)),
                Mistake("clipped the step, not the gradient", "Clip dL/dc itself, then "
                        "multiply by lr.",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, (lr * grad_c).clamp(-clip, clip), logit_clip)),
                Mistake("through the sigmoid's derivative", "The straight-through estimator "
                        "hands dL/dc to b *unchanged*: no σ'(b) factor.",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, lr * (grad_c * torch.sigmoid(logits)
                                          * (1 - torch.sigmoid(logits))).clamp(-clip, clip),
                            logit_clip)),
            )),
        Exercise(
            "07.2", "expected_density(logits)",
            "the expected density of a mask drawn from the logits (a list of tensors, one "
            "per layer): every weight is kept with probability σ(b).",
            reference=tom.expected_density,
            cases=tuple(density_cases),
            mistakes=(
                Mistake("averaged the layers' expected densities", "A layer of 6,000 "
                        "weights counts far more than one of 200: sum σ(b) over all weights,"
                        " then divide by their number.",
                        lambda logits: sum(float(torch.sigmoid(b).mean()) for b in logits)
                        / len(logits)),
                Mistake("counted the logits above 0", "That is the density of the mask "
                        "that keeps every weight with σ(b) > 0.5; a drawn mask keeps each "
                        "weight with probability σ(b): average σ(b).",
                        lambda logits: sum(int((b > 0).sum()) for b in logits)
                        / sum(b.numel() for b in logits)),
                Mistake("forgot the sigmoid", "A logit is not a probability: σ(b) is.",
                        lambda logits: sum(float(b.sum()) for b in logits)
                        / sum(b.numel() for b in logits)),
            )),
    ]


def _glorot_bound(fan_in: int, fan_out: int) -> float:
    """The bound a of Keras's default initializer for dense layers, Glorot-uniform
    (Glorot & Bengio 2010): weights ~ U(−a, a) with a = √(6 / (fan_in + fan_out)), the
    range ``models.init_layer(layer, "keras")`` draws from (08.1)."""
    return math.sqrt(6.0 / (fan_in + fan_out))


def _kept_per_pixel(mask: torch.Tensor, image_shape: tuple[int, int]) -> torch.Tensor:
    """Kept weights leaving each input pixel of a first Linear layer, as an image (08.2)."""
    return masking.kept_per_input(mask).reshape(image_shape)


def _exercises_08() -> list[Exercise]:
    sizes = list(zip(_integers("08.1", 5, 2, 2000), _integers("08.11", 5, 2, 2000)))
    g = _generator("08.2")
    pixel_cases = []
    for hidden, image_shape, density in ((12, (6, 6), 0.3), (8, (4, 6), 0.5),
                                         (30, (8, 8), 0.1)):
        mask = torch.rand(hidden, image_shape[0] * image_shape[1], generator=g) < density
        pixel_cases.append({"mask": mask, "image_shape": image_shape})
    g = _generator("08.3")
    shuffle_cases = []
    for shape, density in (((6, 5), 0.5), ((10, 8), 0.2), ((4, 3, 3), 0.6)):
        mask = torch.rand(shape, generator=g) < density
        weight = torch.randn(shape, generator=g) * mask  # a ticket: pruned weights are 0
        order = torch.randperm(int(mask.sum()), generator=g)
        shuffle_cases.append({"weight": weight, "mask": mask, "order": order})

    def inverse(weight, mask, order):
        out = weight.clone()
        kept = mask.flatten().nonzero().squeeze(1)
        out.view(-1)[kept[order]] = weight.flatten()[kept]
        return out

    return [
        Exercise(
            "08.1", "glorot_bound(fan_in, fan_out)",
            "the bound a of Keras's default initializer for a dense layer, Glorot-uniform: "
            "weights drawn uniformly from [−a, a] with a = √(6 / (fan_in + fan_out)).",
            reference=_glorot_bound,
            cases=({"fan_in": 784, "fan_out": 400}, {"fan_in": 400, "fan_out": 10},
                   *({"fan_in": a, "fan_out": b} for a, b in sizes)),
            mistakes=(
                Mistake("PyTorch's default bound", "PyTorch's Linear draws from ±1/√fan_in; "
                        "Glorot-uniform uses both fans: √(6 / (fan_in + fan_out)).",
                        lambda fan_in, fan_out: 1 / math.sqrt(fan_in)),
                Mistake("Glorot-normal's standard deviation", "√(2 / (fan_in + fan_out)) is "
                        "the std of the normal variant; a uniform on [−a, a] has std a/√3, so "
                        "its bound is √(6 / (fan_in + fan_out)).",
                        lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
                Mistake("He's bound (fan_in only)", "Glorot averages the two fans: "
                        "fan_in + fan_out, not fan_in alone.",
                        lambda fan_in, fan_out: math.sqrt(6 / fan_in)),
                Mistake("forgot the square root", "a = √(6 / (fan_in + fan_out)).",
                        lambda fan_in, fan_out: 6 / (fan_in + fan_out)),
            )),
        Exercise(
            "08.2", "kept_per_pixel(mask, image_shape)",
            "how many kept weights leave each input pixel of a first Linear layer, as an "
            "image: mask is its (out_features, H·W) bool mask, image_shape (H, W); integer "
            "counts of shape (H, W).",
            reference=_kept_per_pixel,
            cases=tuple(pixel_cases),
            mistakes=(
                Mistake("counted the pruned connections", "True in the mask means kept: "
                        "count the True entries.",
                        lambda mask, image_shape: (~mask).sum(0).reshape(image_shape)),
                Mistake("a share, not a count", "Sum the kept entries of each column; do not "
                        "average them (the figure counts weights).",
                        lambda mask, image_shape: mask.float().mean(0).reshape(image_shape)),
                Mistake("the image reshaped column by column", "The inputs are the image's "
                        "pixels row by row (torch's flatten): reshape to (H, W) directly.",
                        lambda mask, image_shape:
                        mask.sum(0).reshape(image_shape[::-1]).T.contiguous()),
            )),
        Exercise(
            "08.3", "shuffle_within_mask(weight, mask, order)",
            "modification (A) in one layer: a new tensor shaped like weight whose i-th kept "
            "position (row-major) holds the order[i]-th kept value of weight; pruned positions"
            " keep what they hold.",
            reference=lambda weight, mask, order: shuffle.permute_kept(weight, mask, order),
            cases=tuple(shuffle_cases),
            mistakes=(
                Mistake("the inverse permutation", "Position i *receives* value order[i] "
                        "(kept_values[order]); you sent value i to position order[i].",
                        inverse),
                Mistake("returned the kept values only", "Put the shuffled values back into "
                        "a copy of weight, at the kept positions (weight[mask] = ...).",
                        lambda weight, mask, order: weight[mask][order]),
            )),
    ]


def _running_mean_after(old: float, new: float, mu: float, steps: int) -> float:
    """A BN layer's running mean after ``steps`` training batches whose mean is ``new``,
    starting from ``old``, with TensorFlow's momentum ``mu`` (09.1): torch's own BatchNorm1d
    (in float64) with ``models.tf_to_torch_momentum(mu)``."""
    layer = nn.BatchNorm1d(1, momentum=models.tf_to_torch_momentum(mu)).double()
    layer.running_mean.fill_(old)
    batch = torch.full((2, 1), float(new), dtype=torch.float64)
    with torch.no_grad():
        for _ in range(steps):
            layer(batch)
    return float(layer.running_mean[0])


def _steps_to_forget(mu: float, fraction: float) -> int:
    """The fewest training steps after which a running average with TensorFlow's momentum
    ``mu`` keeps at most ``fraction`` of its old value (09.2): the BatchNorm1d of 09.1, its
    running mean started at 1, fed batches of mean 0 until it is at most ``fraction``."""
    layer = nn.BatchNorm1d(1, momentum=models.tf_to_torch_momentum(mu)).double()
    layer.running_mean.fill_(1.0)
    batch = torch.zeros(2, 1, dtype=torch.float64)
    steps = 0
    with torch.no_grad():
        while float(layer.running_mean[0]) > fraction:
            layer(batch)
            steps += 1
    return steps


def _exercises_09() -> list[Exercise]:
    def closed(old, new, mu, steps):
        return mu ** steps * old + (1 - mu ** steps) * new

    def log_steps(mu, fraction):
        return math.ceil(math.log(fraction) / math.log(mu))

    return [
        Exercise(
            "09.1", "running_mean_after(old, new, mu, steps)",
            "a BN running mean (TensorFlow's convention: μ is the weight of the old value) "
            "that starts at old, after `steps` training steps whose batch mean is always "
            "new.",
            reference=_running_mean_after,
            cases=({"old": 2.0, "new": 0.5, "mu": 0.99, "steps": 100},
                   {"old": 1.0, "new": 0.0, "mu": 0.997, "steps": 400},
                   {"old": 0.0, "new": 1.0, "mu": 0.9, "steps": 10},
                   {"old": -1.0, "new": 3.0, "mu": 0.997, "steps": 333},
                   {"old": 0.3, "new": -0.2, "mu": 0.99, "steps": 1},
                   {"old": 1.5, "new": 0.0, "mu": 0.99, "steps": 0}),
            mistakes=(
                Mistake("PyTorch's convention", "In the thesis's (TensorFlow's) convention μ "
                        "weighs the *old* value: μ̂ ← μ·μ̂ + (1 − μ)·μ_B.",
                        lambda old, new, mu, steps: closed(old, new, 1 - mu, steps)),
                Mistake("a straight line, not a geometric decay", "Each step moves the average"
                        " (1 − μ) of the *remaining* way: after n steps μⁿ of the old value is "
                        "left.",
                        lambda old, new, mu, steps:
                        old + min(1.0, steps * (1 - mu)) * (new - old)),
                Mistake("old and new swapped", "The average starts at old and moves towards "
                        "new.", lambda old, new, mu, steps: closed(new, old, mu, steps)),
                Mistake("one step too few", "Every one of the `steps` batches updates the "
                        "average once: μ to the power steps.",
                        lambda old, new, mu, steps: closed(old, new, mu, max(0, steps - 1))),
            )),
        Exercise(
            "09.2", "steps_to_forget(mu, fraction)",
            "the fewest steps n after which a running average with TensorFlow momentum μ keeps"
            " at most `fraction` of its old value: the smallest n with μⁿ ≤ fraction.",
            reference=_steps_to_forget,
            cases=({"mu": 0.99, "fraction": 0.5}, {"mu": 0.997, "fraction": 0.5},
                   {"mu": 0.99, "fraction": 0.01}, {"mu": 0.997, "fraction": 0.01},
                   {"mu": 0.9, "fraction": 0.1}, {"mu": 0.997, "fraction": math.exp(-1)}),
            mistakes=(
                Mistake("the time constant 1/(1 − μ)", "1/(1 − μ) is how long the memory "
                        "lasts to 1/e; for another fraction solve μⁿ ≤ fraction: "
                        "n = ⌈ln(fraction) / ln(μ)⌉.",
                        lambda mu, fraction: round(1 / (1 - mu))),
                Mistake("PyTorch's convention", "μ is the weight of the *old* value here: "
                        "μⁿ of it is left after n steps, not (1 − μ)ⁿ.",
                        lambda mu, fraction: log_steps(1 - mu, fraction)),
                Mistake("rounded down", "n must be a whole number of steps with μⁿ ≤ "
                        "fraction: round ln(fraction) / ln(μ) *up*.",
                        lambda mu, fraction: math.floor(math.log(fraction) / math.log(mu))),
                Mistake("the share forgotten, not the share kept", "`fraction` is what is "
                        "*left* of the old value: μⁿ ≤ fraction, not 1 − μⁿ ≥ fraction.",
                        lambda mu, fraction: log_steps(mu, 1 - fraction)),
            )),
    ]


def _sparse_conv_macs(mask: torch.Tensor, size: int, stride: int, padding: int) -> int:
    """Multiply-accumulates of a Conv2d whose bool ``mask`` is ``(C_out, C_in, k, k)`` on a
    ``size × size`` input, counted by ``efficiency.macs`` (10.1)."""
    c_out, c_in, k, _ = mask.shape
    net = nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False))
    masking.set_masks(net, {"0": mask})
    return int(efficiency.macs(net, (c_in, size, size)).loc["total", "kept_macs"])


_FLOAT_OF_SIZE = {2: torch.float16, 4: torch.float32, 8: torch.float64}
_INDEX_OF_SIZE = {4: torch.int32, 8: torch.int64}


def _csr_bytes(mask: torch.Tensor, value_bytes: int, index_bytes: int) -> int:
    """Bytes of a ``(rows, cols)`` weight stored as CSR under the bool ``mask``, counted by
    ``efficiency.csr_nbytes`` on ``efficiency.to_csr``'s copy (10.2)."""
    rows, cols = mask.shape
    net = nn.Sequential(nn.Linear(cols, rows, bias=False, dtype=_FLOAT_OF_SIZE[value_bytes]))
    masking.set_masks(net, {"0": mask})
    csr = efficiency.to_csr(net, _INDEX_OF_SIZE[index_bytes])["0"]
    return efficiency.csr_nbytes(csr)


def _break_even_density(rows: int, cols: int, value_bytes: int, index_bytes: int) -> float:
    """The density at which a ``(rows, cols)`` weight costs as many bytes in CSR as dense
    (10.3): CSR's bytes grow by ``value_bytes + index_bytes`` per kept weight from the row
    pointers' ``(rows + 1) · index_bytes``; dense costs ``rows · cols · value_bytes``."""
    pointers = _csr_bytes(torch.zeros(rows, cols, dtype=torch.bool), value_bytes, index_bytes)
    return (rows * cols * value_bytes - pointers) / (value_bytes + index_bytes) / (rows * cols)


def _exercises_10() -> list[Exercise]:
    g = _generator("10.1")
    conv_cases = []
    for (c_out, c_in, k), size, stride, padding, density in (
            ((8, 3, 3), 12, 1, 1, 0.3), ((6, 4, 5), 16, 2, 0, 0.2), ((4, 2, 3), 9, 2, 1, 0.5),
            ((16, 8, 1), 7, 1, 0, 0.1)):
        conv_cases.append({"mask": torch.rand(c_out, c_in, k, k, generator=g) < density,
                           "size": size, "stride": stride, "padding": padding})
    g = _generator("10.2")
    csr_cases = []
    for (rows, cols), density, value_bytes, index_bytes in (
            ((20, 30), 0.1, 4, 4), ((400, 784), 0.05, 4, 8), ((10, 10), 0.5, 2, 4),
            ((16, 9), 0.3, 8, 8)):
        csr_cases.append({"mask": torch.rand(rows, cols, generator=g) < density,
                          "value_bytes": value_bytes, "index_bytes": index_bytes})

    def side(size, k, stride, padding):
        return (size + 2 * padding - k) // stride + 1

    def conv_macs(mask, size, stride, padding, count=lambda m: int(m.sum()), positions=None):
        positions = positions or side(size, mask.shape[-1], stride, padding) ** 2
        return count(mask) * positions

    return [
        Exercise(
            "10.1", "sparse_conv_macs(mask, size, stride, padding)",
            "the multiply-accumulates of a pruned Conv2d on one size × size input: mask is "
            "its (C_out, C_in, k, k) bool mask; every kept weight is used once per output "
            "position.",
            reference=_sparse_conv_macs,
            cases=tuple(conv_cases),
            mistakes=(
                Mistake("counted the pruned weights too", "A pruned weight multiplies "
                        "nothing: count the kept ones (mask.sum()).",
                        lambda mask, size, stride, padding:
                        conv_macs(mask, size, stride, padding, count=lambda m: m.numel())),
                Mistake("once per input position", "A weight is used once per *output* "
                        "position: (size + 2·padding − k) // stride + 1 on each side.",
                        lambda mask, size, stride, padding:
                        conv_macs(mask, size, stride, padding, positions=size * size)),
                Mistake("as if it were a Linear layer", "A convolution uses each weight at "
                        "every output position, H_out × W_out times.",
                        lambda mask, size, stride, padding: int(mask.sum())),
                Mistake("the padding left out", "The output side is (size + 2·padding − k) "
                        "// stride + 1.",
                        lambda mask, size, stride, padding: conv_macs(
                            mask, size, stride, padding,
                            positions=side(size, mask.shape[-1], stride, 0) ** 2)),
            )),
        Exercise(
            "10.2", "csr_bytes(mask, value_bytes, index_bytes)",
            "the bytes of a (rows, cols) weight stored in CSR under its bool mask: a value "
            "and a column index per kept weight, and rows + 1 row pointers (indices).",
            reference=_csr_bytes,
            cases=tuple(csr_cases),
            mistakes=(
                Mistake("forgot the row pointers", "CSR also stores rows + 1 row pointers, "
                        "index_bytes each.",
                        lambda mask, value_bytes, index_bytes:
                        int(mask.sum()) * (value_bytes + index_bytes)),
                Mistake("one row pointer per row", "There are rows + 1 of them: pointer i and"
                        " i + 1 bracket row i's entries.",
                        lambda mask, value_bytes, index_bytes:
                        int(mask.sum()) * (value_bytes + index_bytes)
                        + mask.shape[0] * index_bytes),
                Mistake("forgot the column indices", "Each kept value needs its column index "
                        "too: value_bytes + index_bytes per kept weight.",
                        lambda mask, value_bytes, index_bytes:
                        int(mask.sum()) * value_bytes + (mask.shape[0] + 1) * index_bytes),
                Mistake("pointers per column", "CSR compresses rows: one pointer per row "
                        "(plus one), one column index per kept weight.",
                        lambda mask, value_bytes, index_bytes:
                        int(mask.sum()) * (value_bytes + index_bytes)
                        + (mask.shape[1] + 1) * index_bytes),
            )),
        Exercise(
            "10.3", "break_even_density(rows, cols, value_bytes, index_bytes)",
            "the density at which the CSR copy of a (rows, cols) weight takes exactly as "
            "many bytes as the dense one (below it CSR is smaller); use your csr_bytes count.",
            reference=_break_even_density,
            cases=({"rows": 400, "cols": 784, "value_bytes": 4, "index_bytes": 4},
                   {"rows": 400, "cols": 784, "value_bytes": 4, "index_bytes": 8},
                   {"rows": 10, "cols": 10, "value_bytes": 4, "index_bytes": 4},
                   {"rows": 64, "cols": 9, "value_bytes": 2, "index_bytes": 4},
                   {"rows": 3, "cols": 100, "value_bytes": 8, "index_bytes": 8}),
            mistakes=(
                Mistake("forgot the row pointers", "value/(value + index) is the limit for a "
                        "large matrix; the rows + 1 pointers cost bytes too, so the break-even"
                        " density is a little lower.",
                        lambda rows, cols, value_bytes, index_bytes:
                        value_bytes / (value_bytes + index_bytes)),
                Mistake("one row pointer per row", "There are rows + 1 row pointers.",
                        lambda rows, cols, value_bytes, index_bytes:
                        (rows * cols * value_bytes - rows * index_bytes)
                        / (value_bytes + index_bytes) / (rows * cols)),
            )),
    ]


def _catalog() -> dict[str, Exercise]:
    exercises = [*_exercises_01(), *_exercises_02(), *_exercises_03(), *_exercises_04(),
                 *_exercises_05(), *_exercises_06(), *_exercises_07(), *_exercises_08(),
                 *_exercises_09(), *_exercises_10()]
    return {e.id: e for e in sorted(exercises, key=lambda e: e.id)}


_EXERCISES: dict[str, Exercise] = _catalog()
