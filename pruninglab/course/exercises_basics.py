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
from .exercise_checks import Exercise, Mistake, generator_for, integers_for, not_half_way

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


def _bn(x, running_mean, running_var, gamma, beta, eps, training):
    return basics.batch_norm_by_hand(x, running_mean, running_var, gamma, beta,
                                     training=training, eps=eps)[0]


# ======================================================================================
# The exercises, notebook by notebook
# ======================================================================================


def _exercises_01() -> list[Exercise]:
    pairs = list(zip(integers_for("01.2", 6, 1, 1000), integers_for("01.21", 6, 1, 1000)))
    g = generator_for("01.1")
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
                   {"widths": integers_for("01.3", 5, 1, 50)}),
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
    channels = list(zip(integers_for("02.2", 6, 1, 64), integers_for("02.21", 6, 1, 64),
                        integers_for("02.22", 6, 1, 7)))
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
    g = generator_for("03.1")
    ema_cases = tuple({"old": torch.randn(4, generator=g), "new": torch.randn(4, generator=g),
                       "momentum": m} for m in (0.1, 0.01, 0.3, 0.003))
    g = generator_for("03.2")
    bn_train_cases = []
    for shape, eps in (((4, 3, 3, 3), 1e-3), ((8, 2, 2, 5), 1e-2), ((3, 4, 4, 4), 0.1)):
        channel_std = torch.logspace(-1.5, 0.5, shape[1])  # small and large variances
        x = 2.0 + channel_std.view(1, -1, 1, 1) * torch.randn(shape, generator=g)
        bn_train_cases.append({"x": x, "eps": eps})
    g = generator_for("03.3")
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
    g = generator_for("04.1")
    mask_cases = []
    for shape, density in (((12, 7), 0.3), ((16, 3, 3, 3), 0.1), ((10, 25), 0.05),
                           ((4, 4), 0.5)):
        weight = torch.randn(shape, generator=g)
        mask_cases.append({"weight": weight,
                           "density": not_half_way(density, weight.numel())})
    g = generator_for("04.2")
    global_cases = []
    for shapes, scales, density in ((((20, 8), (6, 20)), (0.2, 1.0), 0.3),
                                    (((8, 1, 3, 3), (10, 8, 3, 3), (4, 10)), (1.0, 0.1, 0.5),
                                     0.2)):
        weights = [scale * torch.randn(shape, generator=g)
                   for shape, scale in zip(shapes, scales)]
        total = sum(w.numel() for w in weights)
        global_cases.append({"weights": weights, "density": not_half_way(density, total)})
    g = generator_for("04.3")
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

