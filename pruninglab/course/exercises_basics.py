"""The exercises of notebooks 01-04: neurons and layers, convolutions, batch normalization,
pruning basics. Each is checked against the library's own function
(:mod:`pruninglab.course.basics`, masks through :func:`pruninglab.core.pruning.prune`);
:mod:`pruninglab.course.exercises` checks them."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from ..core import masking, models, pruning
from . import basics
from .exercise_checks import (
    CASES,
    Exercise,
    Mistake,
    draw_choice,
    draw_float,
    draw_int,
    generator_for,
    integers_for,
    not_half_way,
)

__all__ = ["exercises"]


def exercises() -> list[Exercise]:
    """The exercises of notebooks 01-04, in no particular order."""
    return [*_exercises_01(), *_exercises_02(), *_exercises_03(), *_exercises_04()]


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


# BN's outputs are O(1) (standardized, then scaled by γ ~ 1): a correct float32 answer that
# takes the mean, the variance or the root in another order (F.batch_norm, var_mean with
# rsqrt, float64 and back) differs from the reference by a few float32 roundings, up to about
# 4e-6 on these inputs; near an output of 0 no relative tolerance forgives that
_BN_ABSOLUTE = 1e-5


def _bn(x, running_mean, running_var, gamma, beta, eps, training):
    """The library's BN, computed in float64 and returned in ``x``'s dtype, so that the
    reference carries no float32 rounding of its own (03.3, 03.4)."""
    def wide(t):
        return None if t is None else t.double()

    y = basics.batch_norm_by_hand(wide(x), wide(running_mean), wide(running_var), wide(gamma),
                                  wide(beta), training=training, eps=eps)[0]
    return y.to(x.dtype)


# ======================================================================================
# The exercises, notebook by notebook
# ======================================================================================


def _exercises_01() -> list[Exercise]:
    pairs = list(zip(integers_for("01.2", 6, 1, 1000), integers_for("01.21", 6, 1, 1000)))
    parameter_cases = [{"n_in": 784, "n_out": 400}, {"n_in": 1, "n_out": 1},
                       *({"n_in": a, "n_out": b} for a, b in pairs),
                       {"n_in": 1, "n_out": 7}, {"n_in": 9, "n_out": 1}]  # edges: one in, one out
    g = generator_for("01.29")  # not integers_for's seeds: other draws
    parameter_cases += [{"n_in": draw_int(g, 1, 2000), "n_out": draw_int(g, 1, 2000)}
                        for _ in range(CASES - len(parameter_cases))]
    g = generator_for("01.1")
    neuron_cases = [
        {"y": torch.randn(5, n, generator=g), "w": torch.randn(n, generator=g),
         "b": float(torch.randn((), generator=g))} for n in (3, 4, 7)]
    neuron_cases += [
        # edges: one input and one row without a bias; every sum negative (all outputs 0)
        {"y": torch.randn(1, 1, generator=g), "w": torch.randn(1, generator=g), "b": 0.0},
        {"y": torch.rand(4, 5, generator=g), "w": -torch.rand(5, generator=g), "b": -0.5}]
    for _ in range(CASES - len(neuron_cases)):
        n = draw_int(g, 1, 9)
        neuron_cases.append({"y": torch.randn(draw_int(g, 1, 6), n, generator=g),
                             "w": torch.randn(n, generator=g),
                             "b": float(torch.randn((), generator=g))})
    g = generator_for("01.39")
    mlp_cases = [{"widths": [784, 400, 400, 400, 10]}, {"widths": [2, 2, 1]},
                 {"widths": [784, 300, 100, 10]}, {"widths": [5, 3]},
                 {"widths": integers_for("01.3", 5, 1, 50)},
                 # edges: one layer of one weight, widths of 1 (a layer per pair), odd widths
                 {"widths": [1, 1]}, {"widths": [1, 1, 1, 1]}, {"widths": [3, 7, 5]}]
    mlp_cases += [{"widths": [draw_int(g, 1, 100) for _ in range(draw_int(g, 2, 7))]}
                  for _ in range(CASES - len(mlp_cases))]
    return [
        Exercise(
            "01.2", "linear_parameters(n_in, n_out)",
            "the number of parameters (weights and biases) of a linear layer with n_in "
            "inputs and n_out outputs.",
            reference=basics.linear_layer_parameters,
            cases=tuple(parameter_cases),
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
            cases=tuple(neuron_cases),
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
            cases=tuple(mlp_cases),
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
    sizes = integers_for("02.1", 8, 5, 64)
    kernels = integers_for("02.11", 8, 1, 5)
    strides = integers_for("02.12", 8, 1, 3)
    paddings = integers_for("02.13", 8, 0, 2)
    cases = [{"size": 32, "kernel": 3, "stride": 2, "padding": 1},
             {"size": 28, "kernel": 5, "stride": 1, "padding": 0},
             {"size": 8, "kernel": 3, "stride": 3, "padding": 0}]
    cases += [{"size": s, "kernel": k, "stride": st, "padding": p}
              for s, k, st, p in zip(sizes, kernels, strides, paddings)]
    # edges: the window fills the padded input (one position); a 1×1 window; a stride
    # longer than the input; odd sizes with padding
    cases += [{"size": 5, "kernel": 7, "stride": 1, "padding": 1},
              {"size": 9, "kernel": 9, "stride": 2, "padding": 0},
              {"size": 7, "kernel": 1, "stride": 1, "padding": 0},
              {"size": 6, "kernel": 2, "stride": 10, "padding": 0},
              {"size": 15, "kernel": 4, "stride": 3, "padding": 2}]
    g = generator_for("02.19")
    while len(cases) < CASES:
        size, kernel, padding = draw_int(g, 1, 40), draw_int(g, 1, 7), draw_int(g, 0, 3)
        if size + 2 * padding >= kernel:  # the window fits
            cases.append({"size": size, "kernel": kernel, "stride": draw_int(g, 1, 4),
                          "padding": padding})
    channels = list(zip(integers_for("02.2", 6, 1, 64), integers_for("02.21", 6, 1, 64),
                        integers_for("02.22", 6, 1, 7)))
    conv_cases = [{"c_in": 3, "c_out": 16, "kernel": 3, "bias": False},
                  {"c_in": 3, "c_out": 16, "kernel": 3, "bias": True},
                  *({"c_in": a, "c_out": b, "kernel": k, "bias": i % 2 == 0}
                    for i, (a, b, k) in enumerate(channels)),
                  # edges: one channel in and out, a 1×1 kernel, with and without a bias
                  {"c_in": 1, "c_out": 1, "kernel": 1, "bias": True},
                  {"c_in": 1, "c_out": 5, "kernel": 1, "bias": False},
                  {"c_in": 7, "c_out": 1, "kernel": 5, "bias": True}]
    g = generator_for("02.29")
    conv_cases += [{"c_in": draw_int(g, 1, 128), "c_out": draw_int(g, 1, 128),
                    "kernel": draw_int(g, 1, 7), "bias": bool(draw_int(g, 0, 1))}
                   for _ in range(CASES - len(conv_cases))]
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
            cases=tuple(conv_cases),
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


def _bn_train_case(g: torch.Generator, shape: tuple[int, ...], eps: float) -> dict:
    """03.3's input: channels of very different scales and offsets (the offsets scale with
    the spread, so that x − mean loses no precision and float32 answers agree)."""
    channel_std = torch.logspace(-1.5, 0.5, shape[1]).view(1, -1, 1, 1)
    offset = 2 * channel_std * torch.randn(1, shape[1], 1, 1, generator=g)
    return {"x": offset + channel_std * torch.randn(shape, generator=g), "eps": eps}


def _bn_eval_case(g: torch.Generator, shape: tuple[int, ...], eps: float = 1e-3) -> dict:
    c = shape[1]
    return {"x": 1.0 + torch.randn(shape, generator=g),
            "running_mean": torch.randn(c, generator=g),
            "running_var": 0.2 + torch.rand(c, generator=g) * 3,
            "gamma": 0.5 + torch.rand(c, generator=g), "beta": torch.randn(c, generator=g),
            "eps": eps}


def _random_shape(g: torch.Generator, dims: int, high: int) -> tuple[int, ...]:
    return tuple(draw_int(g, 1, high) for _ in range(dims))


def _exercises_03() -> list[Exercise]:
    g = generator_for("03.1")
    ema_cases = [{"old": torch.randn(4, generator=g), "new": torch.randn(4, generator=g),
                  "momentum": m} for m in (0.1, 0.01, 0.3, 0.003)]
    same = torch.randn(3, generator=g)
    ema_cases += [  # edges: momentum 0 (keep the old value) and 1 (take the new one), a
        # new value equal to the old one, odd and one-element shapes, momentum 1/2
        {"old": torch.randn(5, generator=g), "new": torch.randn(5, generator=g), "momentum": 0.0},
        {"old": torch.randn(5, generator=g), "new": torch.randn(5, generator=g), "momentum": 1.0},
        {"old": same, "new": same.clone(), "momentum": 0.1},
        {"old": torch.randn(1, generator=g), "new": torch.randn(1, generator=g), "momentum": 0.7},
        {"old": torch.randn(3, 3, generator=g), "new": torch.randn(3, 3, generator=g),
         "momentum": 0.5}]
    for _ in range(CASES - len(ema_cases)):
        shape = _random_shape(g, draw_int(g, 1, 3), 5)
        ema_cases.append({"old": torch.randn(shape, generator=g),
                          "new": torch.randn(shape, generator=g),
                          "momentum": round(draw_float(g, 0.0, 1.0), 3)})
    g = generator_for("03.2")
    bn_train_cases = []
    for shape, eps in (((4, 3, 3, 3), 1e-3), ((8, 2, 2, 5), 1e-2), ((3, 4, 4, 4), 0.1)):
        channel_std = torch.logspace(-1.5, 0.5, shape[1])  # small and large variances
        x = 2.0 + channel_std.view(1, -1, 1, 1) * torch.randn(shape, generator=g)
        bn_train_cases.append({"x": x, "eps": eps})
    # edges: one image (the batch's statistics are the image's), 1×1 images (only the
    # batch to average over), odd sizes, a constant channel (variance 0: only ε divides;
    # 2.0 is exact in float32, so every way to take the mean gives exactly 0 after it)
    bn_train_cases += [_bn_train_case(g, (1, 3, 3, 5), 1e-3), _bn_train_case(g, (6, 3, 1, 1), 1e-3),
                       _bn_train_case(g, (5, 3, 3, 3), 1e-5)]
    constant = _bn_train_case(g, (4, 3, 3, 3), 1e-2)
    constant["x"][:, 1] = 2.0
    bn_train_cases.append(constant)
    while len(bn_train_cases) < CASES:
        shape = (draw_int(g, 1, 5), draw_int(g, 1, 4), draw_int(g, 1, 4), draw_int(g, 1, 4))
        if shape[0] * shape[2] * shape[3] >= 2:  # BN needs two values per channel
            bn_train_cases.append(_bn_train_case(g, shape,
                                                 draw_choice(g, (1e-5, 1e-3, 1e-2, 0.1))))
    g = generator_for("03.3")
    bn_eval_cases = [_bn_eval_case(g, shape)
                     for shape in ((4, 3, 3, 3), (2, 5, 2, 2), (6, 2, 4, 4))]
    # edges: a running variance of 0 (only ε under the root), γ = 1 and β = 0, one image
    # of 1×1 pixels, odd sizes
    zero_var = _bn_eval_case(g, (3, 3, 2, 2))
    zero_var["running_var"][0] = 0.0
    identity = _bn_eval_case(g, (2, 3, 3, 3), eps=1e-5)
    identity["gamma"], identity["beta"] = torch.ones(3), torch.zeros(3)
    bn_eval_cases += [zero_var, identity, _bn_eval_case(g, (1, 4, 1, 1), eps=0.1),
                      _bn_eval_case(g, (5, 3, 3, 5))]
    for _ in range(CASES - len(bn_eval_cases)):
        bn_eval_cases.append(_bn_eval_case(g, _random_shape(g, 4, 4),
                                           draw_choice(g, (1e-5, 1e-3, 1e-2, 0.1))))

    def view(t):
        return t.view(1, -1, 1, 1)

    return [
        Exercise(
            "03.1", "running_average_step(old, new, momentum)",
            "one update of a running average in PyTorch's convention, where `momentum` "
            "(e.g. 0.1) is the weight of the new value.",
            reference=lambda old, new, momentum: basics.ema_update(old, new, momentum, "torch"),
            cases=tuple(ema_cases),
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
                Mistake("instance norm (per image and channel)", "BN's statistics are "
                        "shared across the batch: dim=(0, 2, 3); dim=(2, 3) normalizes each "
                        "image's channel on its own (instance norm).",
                        lambda x, eps: _standardize(x, eps, dims=(2, 3))),
                Mistake("normalized over the wrong axis (per pixel)", "Average over the "
                        "pixels too, not only the batch: dim=(0, 2, 3).",
                        lambda x, eps: _standardize(x, eps, dims=(0,))),
                Mistake("the unbiased variance", "Training-mode BN divides by n, not n − 1 "
                        "(unbiased=False); only the running variance uses n − 1.",
                        lambda x, eps: _standardize(x, eps, unbiased=True)),
                Mistake("eps outside the square root", "ε is added to the variance: "
                        "sqrt(var + eps).",
                        lambda x, eps: _standardize(x, eps, eps_under_root=False)),
            ),
            absolute=_BN_ABSOLUTE),
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
            ),
            absolute=_BN_ABSOLUTE),
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


def _tied_weights(g: torch.Generator, shapes: Sequence[tuple[int, ...]],
                  keep: int) -> list[torch.Tensor]:
    """Weights of ``shapes`` whose ``keep`` largest |w| (of all of them together) take a few
    values, as do the others, with a gap between the two groups: tied magnitudes (and
    equal values of either sign) well above and below the cut, none at it, so that which
    weights round(density·N) keeps is not a matter of how ties are broken."""
    total = sum(math.prod(shape) for shape in shapes)
    high = torch.randint(6, 10, (keep,), generator=g)
    low = torch.randint(1, 5, (total - keep,), generator=g)
    values = 0.1 * torch.cat([high, low])[torch.randperm(total, generator=g)].float()
    values *= torch.where(torch.rand(total, generator=g) < 0.5, -1.0, 1.0)
    return [v.view(shape) for v, shape in
            zip(values.split([math.prod(shape) for shape in shapes]), shapes)]


def _random_weight_shape(g: torch.Generator) -> tuple[int, ...]:
    """A Linear (out, in) or Conv2d (out, in, k, k) weight of at most 180 entries."""
    if draw_int(g, 0, 1):
        return draw_int(g, 1, 12), draw_int(g, 1, 15)
    k = draw_int(g, 1, 3)
    return draw_int(g, 1, 5), draw_int(g, 1, 4), k, k


def _random_density(g: torch.Generator, n: int) -> float:
    """A density in (0, 1] with three decimals whose density·n is not near a half, where
    rounding conventions (and float error) could disagree."""
    while True:
        density = max(0.001, round(draw_float(g, 0.0, 1.0), 3))
        if abs(density * n % 1 - 0.5) > 1e-3:
            return density


def _distinct(weights: Sequence[torch.Tensor]) -> bool:
    """Whether no two |w| are equal: drawn weights must not tie by chance (ties are
    chosen, away from the cut: :func:`_tied_weights`)."""
    magnitudes = torch.cat([w.abs().flatten() for w in weights])
    return magnitudes.unique().numel() == magnitudes.numel()


def _exercises_04() -> list[Exercise]:
    g = generator_for("04.1")
    mask_cases = []
    for shape, density in (((12, 7), 0.3), ((16, 3, 3, 3), 0.1), ((10, 25), 0.05),
                           ((4, 4), 0.5)):
        weight = torch.randn(shape, generator=g)
        mask_cases.append({"weight": weight,
                           "density": not_half_way(density, weight.numel())})
    mask_cases += [
        # N = 106, d = 0.23: keep round(24.38) = 24; the 0.77 quantile of |w| lies between
        # the 81st and 82nd smallest, so a quantile threshold keeps 25
        {"weight": torch.randn(2, 53, generator=g), "density": 0.23},
        # edges: density 1 (keep all, N odd), a density whose round(d·N) is 0 (keep none:
        # pruning.prune refuses density 0 but takes any density in (0, 1], keeping
        # round(d·N)), ties away from the cut
        {"weight": torch.randn(5, 7, generator=g), "density": 1.0},
        {"weight": torch.randn(3, 5, generator=g), "density": 0.03},
        {"weight": _tied_weights(g, [(3, 7)], 8)[0], "density": 8.25 / 21},
        {"weight": _tied_weights(g, [(3, 1, 3, 3)], 13)[0], "density": 13.3 / 27}]
    while len(mask_cases) < CASES:
        shape = _random_weight_shape(g)
        n = math.prod(shape)
        if len(mask_cases) % 4 == 0:  # every fourth drawn input has ties
            density = _random_density(g, n)
            weight = _tied_weights(g, [shape], round(density * n))[0]
        else:
            weight, density = torch.randn(shape, generator=g), _random_density(g, n)
            if not _distinct([weight]):
                continue
        mask_cases.append({"weight": weight, "density": density})
    g = generator_for("04.2")
    global_cases = []
    for shapes, scales, density in ((((20, 8), (6, 20)), (0.2, 1.0), 0.3),
                                    (((8, 1, 3, 3), (10, 8, 3, 3), (4, 10)), (1.0, 0.1, 0.5),
                                     0.2)):
        weights = [scale * torch.randn(shape, generator=g)
                   for shape, scale in zip(shapes, scales)]
        total = sum(w.numel() for w in weights)
        global_cases.append({"weights": weights, "density": not_half_way(density, total)})
    global_cases += [
        # N = 60 + 46 = 106, d = 0.23: 24 kept, 25 above the 0.77 quantile (as in 04.1)
        {"weights": [torch.randn(6, 10, generator=g), torch.randn(2, 23, generator=g)],
         "density": 0.23},
        # edges: density 1 (N = 33, odd), a density whose round(d·N) is 0, one layer, ties
        # away from the cut across layers
        {"weights": [torch.randn(3, 5, generator=g), torch.randn(1, 2, 3, 3, generator=g)],
         "density": 1.0},
        {"weights": [torch.randn(4, 5, generator=g), torch.randn(3, 3, generator=g)],
         "density": 0.01},
        {"weights": [torch.randn(7, 9, generator=g)], "density": not_half_way(0.4, 63)},
        {"weights": _tied_weights(g, [(4, 5), (2, 1, 3, 3), (3, 3)], 17),
         "density": 17.2 / 47}]
    while len(global_cases) < CASES:
        shapes = [_random_weight_shape(g) for _ in range(draw_int(g, 1, 3))]
        n = sum(math.prod(shape) for shape in shapes)
        density = _random_density(g, n)
        if len(global_cases) % 4 == 0:
            weights = _tied_weights(g, shapes, round(density * n))
        else:  # layers of different scales: global pruning thins them differently
            weights = [draw_float(g, 0.1, 1.0) * torch.randn(shape, generator=g)
                       for shape in shapes]
            if not _distinct(weights):
                continue
        global_cases.append({"weights": weights, "density": density})
    g = generator_for("04.3")
    density_cases = []
    for shapes in (((100, 10), (10, 10)), ((30, 4), (5, 6), (2, 2))):
        density_cases.append({"masks": [torch.rand(s, generator=g) < p for s, p in
                                        zip(shapes, (0.1, 0.8, 0.5))]})
    # edges: nothing kept (density 0), everything kept (1), one mask of odd size, a Conv2d
    # mask beside a Linear one
    density_cases += [
        {"masks": [torch.zeros(4, 5, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)]},
        {"masks": [torch.ones(3, 3, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)]},
        {"masks": [torch.rand(7, 9, generator=g) < 0.3]},
        {"masks": [torch.rand(4, 3, 3, 3, generator=g) < 0.6, torch.rand(10, 36, generator=g)
                   < 0.1]}]
    while len(density_cases) < CASES:
        masks = []
        for _ in range(draw_int(g, 1, 4)):
            share = draw_choice(g, (0.0, 1.0, draw_float(g, 0.0, 1.0)))
            masks.append(torch.rand(_random_weight_shape(g), generator=g) < share)
        density_cases.append({"masks": masks})

    quantile_hint = ("torch.quantile interpolates between values, so a threshold at the "
                     "(1 − density) quantile need not keep exactly round(density·N) weights:"
                     " count k = round(density·N) and keep the k largest |w| (topk or sort).")

    def quantile_masks(weights, density, strict):
        threshold = torch.quantile(torch.cat([w.abs().flatten() for w in weights]),
                                   1 - density)
        return [w.abs() > threshold if strict else w.abs() >= threshold for w in weights]

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
                # one name for both ways to compare with the threshold
                Mistake("a quantile threshold", quantile_hint,
                        lambda weight, density: weight.abs() >= torch.quantile(
                            weight.abs().flatten(), 1 - density)),
                Mistake("a quantile threshold", quantile_hint,
                        lambda weight, density: weight.abs() > torch.quantile(
                            weight.abs().flatten(), 1 - density)),
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
                Mistake("a quantile threshold", quantile_hint,
                        lambda weights, density: quantile_masks(weights, density, strict=False)),
                Mistake("a quantile threshold", quantile_hint,
                        lambda weights, density: quantile_masks(weights, density, strict=True)),
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

