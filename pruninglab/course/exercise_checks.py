"""How an answer to an exercise is checked: what an exercise is, how a result is compared
with the reference's, and how a known mistake is recognised (:mod:`pruninglab.course.exercises` is
the public side: ``check``, ``names``, ``describe``, ``solution``).

:func:`judge` calls the answer and the reference on the same inputs (at least
:data:`CASES` of them), drawn with fixed seeds (:func:`generator_for`, :func:`draw_int`,
:func:`draw_float`), so a hint is the same every time it is shown; :func:`difference`
describes the first difference between two results, :func:`value_difference` that of a
value exercise without showing the expected value; a :class:`Mistake` is a plausible wrong
answer whose hint is added when the answer behaves like it. An answer whose parameters
cannot take the inputs by the stub's names is told so before it is called.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

__all__ = ["CASES", "Exercise", "Mistake", "difference", "draw_choice", "draw_float", "draw_int",
           "generator_for", "integers_for", "judge", "not_half_way", "one_line",
           "value_difference"]

T = TypeVar("T")

CASES = 30
"""Every function exercise is tried on at least this many inputs: its readable, hand-picked
ones first (a hint quotes the first input an answer fails on), its edge cases, then drawn
ones with fixed seeds."""


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
        cases: keyword arguments of the inputs the answer is tried on (``None`` for a value),
            at least :data:`CASES` of them, the readable hand-picked ones first.
        mistakes: known wrong answers, recognised in the hint.
        tolerance: relative tolerance for floating-point results (integers, counts and
            masks must match exactly).
        absolute: absolute tolerance for floating-point tensors, on the scale of the
            result: a standardized output near 0 computed another correct way (in another
            order, in float64) differs from the reference by float32 rounding, about 1e-6,
            which no relative tolerance forgives.
    """

    id: str
    signature: str
    task: str
    reference: object
    cases: tuple[dict, ...] | None
    mistakes: tuple[Mistake, ...] = ()
    tolerance: float = 1e-5
    absolute: float = 1e-7



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


def difference(expected: object, got: object, tolerance: float = 1e-5,
               absolute: float = 1e-7) -> str | None:
    """``None`` if ``got`` agrees with ``expected``, else a short description of the first
    difference: the type, the length, the shape, the dtype, the count of a mask, the value.

    Integers must match exactly (``12.0`` for ``12`` is a type error: a count is an int);
    floats and float tensors to ``tolerance`` relative (and ``absolute`` for tensors)."""
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"expected a list of {len(expected)} items, got {_kind(got)}"
        if len(got) != len(expected):
            return f"expected {len(expected)} items, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = difference(e, g, tolerance, absolute)
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
        close = torch.isclose(got, expected, rtol=tolerance, atol=absolute)
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


def value_difference(expected: object, got: object, tolerance: float = 1e-5) -> str | None:
    """:func:`difference` for a value exercise, whose expected value *is* the answer: a
    description to follow the value's name that never shows the expected value (in no
    formatting), only the type problem or, for a number, the direction: ``"should be an int,
    got a str"``, ``"= 0.03 is not right: it is too large"``; ``None`` if ``got`` agrees."""
    if difference(expected, got, tolerance) is None:
        return None
    number = got.item() if isinstance(got, torch.Tensor) and got.dim() == 0 else got
    if isinstance(expected, bool) or not isinstance(expected, numbers.Real):
        if type(got) is not type(expected):
            return f"should be a {type(expected).__name__}, got {_kind(got)}"
        return "is not right"
    if isinstance(expected, numbers.Integral) and (
            isinstance(number, bool) or not isinstance(number, numbers.Integral)):
        return f"should be an int, got {_kind(got)}"
    if isinstance(number, bool) or not isinstance(number, numbers.Real):
        return f"should be a number (a float), got {_kind(got)}"
    # the student's own number, as they wrote it (repr: never rounded, so that it cannot
    # read like another number), and only the direction of the error
    shown = repr(number) if len(repr(number)) <= 40 else repr(float(number))
    if math.isnan(number):
        return f"= {shown} is not a number (nan)"
    return f"= {shown} is not right: it is too {'large' if number > expected else 'small'}"


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


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__



def _is_stub_value(value: object) -> bool:
    return value is None or value is Ellipsis

# ======================================================================================
# Judging an answer: pass, fail with a hint, or a stub
# ======================================================================================


def judge(exercise: Exercise, answer: object) -> tuple[bool | None, str]:
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
        problem = value_difference(exercise.reference, answer, exercise.tolerance)
        if problem is None:
            return True, f"passed: {name} = {answer!r}."
        # never difference's "expected ...": here the expected value is the answer itself
        return False, _with_mistake(exercise, f"{name} {problem}", None, [answer])
    if _is_stub_value(answer):
        return None, f"write {exercise.signature}, then run this cell again."
    if not callable(answer):
        return False, f"{name} should be a function {exercise.signature}, got {_kind(answer)}"
    renamed = _renamed_parameters(exercise, answer)
    if renamed:
        return False, renamed
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
            return False, f"{_call_text(name, case)} raised {one_line(got)}"
        if _is_stub_value(got):
            return None, (f"{name} returned {got!r}: write its body ({exercise.signature}), "
                          "then run this cell again.")
        problem = difference(exercise.reference(**copy.deepcopy(case)), got,
                             exercise.tolerance, exercise.absolute)
        if problem:
            return False, _with_mistake(exercise, f"{_call_text(name, case)}: {problem}",
                                        case, outputs)
    return True, f"passed: {name} agrees with the reference on {len(exercise.cases)} inputs."


def _renamed_parameters(exercise: Exercise, answer: object) -> str | None:
    """The hint for an answer that cannot take the inputs by the stub's parameter names
    (renamed, missing, an extra one without a default, positional-only), found from its
    signature before any call, so that a ``TypeError`` raised *inside* a well-named answer
    is never taken for a rename; ``None`` if it takes them (``**kwargs`` does) or if its
    signature cannot be read (then calling it tells)."""
    try:
        signature = inspect.signature(answer)
    except (TypeError, ValueError):  # some builtins and C functions have none
        return None
    for keys in {tuple(case) for case in exercise.cases}:
        try:
            signature.bind(**dict.fromkeys(keys))
        except TypeError:
            break
    else:
        return None
    wanted = exercise.signature.partition("(")[2].rstrip(")") or ", ".join(exercise.cases[0])
    return (f"keep the stub's parameter names ({wanted}): your function takes "
            f"({_parameters_text(signature)}); the check passes the inputs by name")


def _parameters_text(signature: inspect.Signature) -> str:
    """The parameter names of ``signature`` with Python's markers (``*args``, ``**kwargs``,
    ``/``, ``*``), without annotations and defaults."""
    kinds = inspect.Parameter
    out, previous = [], None
    for p in signature.parameters.values():
        if previous == kinds.POSITIONAL_ONLY and p.kind != kinds.POSITIONAL_ONLY:
            out.append("/")
        if p.kind == kinds.KEYWORD_ONLY and previous not in (kinds.KEYWORD_ONLY,
                                                              kinds.VAR_POSITIONAL):
            out.append("*")
        prefix = {kinds.VAR_POSITIONAL: "*", kinds.VAR_KEYWORD: "**"}.get(p.kind, "")
        out.append(prefix + p.name)
        previous = p.kind
    if previous == kinds.POSITIONAL_ONLY:
        out.append("/")
    return ", ".join(out)


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
                and difference(theirs, output, exercise.tolerance,
                               exercise.absolute) is None)

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



# ======================================================================================
# The inputs the answers are tried on (fixed seeds: the same hint every time)
# ======================================================================================


def generator_for(id: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(id.replace(".", "")))


def integers_for(id: str, count: int, low: int, high: int) -> list[int]:
    return torch.randint(low, high + 1, (count,), generator=generator_for(id)).tolist()


def draw_int(generator: torch.Generator, low: int, high: int) -> int:
    """An integer in ``[low, high]`` from ``generator``."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def draw_choice(generator: torch.Generator, options: Sequence[T]) -> T:
    """One of ``options``, each as likely, drawn from ``generator``."""
    return options[draw_int(generator, 0, len(options) - 1)]


def draw_float(generator: torch.Generator, low: float, high: float) -> float:
    """A float in ``[low, high)`` from ``generator``."""
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def not_half_way(density: float, n: int) -> float:
    """A density whose ``density * n`` ends in .75: rounding to nearest and rounding down
    then keep different counts, so the two are told apart."""
    return (math.floor(density * n) + 0.75) / n
