"""Small teaching functions for the first notebooks (thesis Chapter 2, Sections 2.1-2.3).

Everything here is written out the long way on purpose, so that a notebook can compare it
with PyTorch's fast version and show that the two agree.

* Section 2.1, neurons and layers: :func:`relu`, :func:`neuron`, :func:`linear_layer`,
  :func:`linear_layer_parameters`, :func:`mlp_parameters`; XOR needs a hidden layer with a
  non-linearity: :func:`xor_data`, :func:`xor_net`, :func:`hand_made_xor`,
  :func:`train_xor`, :func:`predict_grid`.
* Section 2.2, convolutions: :func:`conv_output_size`, :func:`zero_pad`,
  :func:`window_positions`, :func:`conv2d_by_hand`, :func:`conv2d_parameters`, and Table
  1.1's parameter counts: :func:`parameters_by_layer_type` (the table itself is
  :func:`pruninglab.core.models.table_1_1`).
* Section 2.3, batch normalization: :func:`ema_update`, :func:`running_average`,
  :func:`forgetting_steps`, :func:`drifting_batches`, :func:`batch_norm_by_hand`.

Momentum conventions (Section 2.3). The thesis writes the running average as
``x' = mu*x + (1 - mu)*y`` (TensorFlow's convention: ``mu`` weighs the *old* value, thesis
values 0.99 and 0.997). PyTorch's ``momentum`` weighs the *new* value:
``x' = (1 - momentum)*x + momentum*y``. So TF's ``mu = 0.99`` is PyTorch's ``momentum =
0.01`` (:func:`pruninglab.core.models.tf_to_torch_momentum`). Functions that take a momentum say
which convention they use; :func:`ema_update` and :func:`running_average` take both.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import optim

__all__ = [
    "CONVENTIONS",
    "XORResult",
    "batch_norm_by_hand",
    "conv2d_by_hand",
    "conv2d_parameters",
    "conv_output_size",
    "drifting_batches",
    "ema_update",
    "forgetting_steps",
    "hand_made_xor",
    "linear_layer",
    "linear_layer_parameters",
    "mlp_parameters",
    "neuron",
    "parameters_by_layer_type",
    "predict_grid",
    "relu",
    "running_average",
    "train_xor",
    "window_positions",
    "xor_data",
    "xor_net",
    "zero_pad",
]

# ======================================================================================
# Section 2.1: neurons and layers
# ======================================================================================


def relu(x: torch.Tensor) -> torch.Tensor:
    """``ReLU(x) = x if x > 0 else 0``, elementwise (thesis Section 2.1)."""
    return torch.where(x > 0, x, torch.zeros_like(x))


def neuron(y: torch.Tensor, w: torch.Tensor, b: float | torch.Tensor = 0.0,
           activation: str | None = None) -> torch.Tensor:
    """One neuron (thesis Figure 2.1): the weighted sum ``w_1*y_1 + ... + w_N*y_N + b``,
    optionally followed by ReLU.

    Args:
        y: inputs, shape ``(..., N)`` (any leading batch dimensions).
        w: weights, shape ``(N,)``.
        b: the bias, a number or a 0-d tensor.
        activation: ``None`` (a linear neuron) or ``"relu"``.

    Returns:
        The output, shape ``(...)``.
    """
    if activation not in (None, "relu"):
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    if w.dim() != 1 or y.shape[-1:] != w.shape:
        raise ValueError(f"w must have shape (N,) with N = y.shape[-1]; got y {tuple(y.shape)}, "
                         f"w {tuple(w.shape)}")
    out = (y * w).sum(dim=-1) + b
    return relu(out) if activation == "relu" else out


def linear_layer(x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    """A fully connected layer as ``M`` neurons side by side: output ``m`` is
    ``neuron(x, weight[m], bias[m])``. Equals ``F.linear(x, weight, bias)``.

    Args:
        x: inputs ``(B, N)``.
        weight: ``(M, N)``, one row per output neuron (PyTorch's layout).
        bias: ``(M,)`` or ``None``.

    Returns:
        ``(B, M)``.
    """
    if weight.dim() != 2 or x.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"need x (B, N) and weight (M, N); got x {tuple(x.shape)}, "
                         f"weight {tuple(weight.shape)}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    outputs = [neuron(x, weight[m], 0.0 if bias is None else bias[m])
               for m in range(weight.shape[0])]
    return torch.stack(outputs, dim=1)


def linear_layer_parameters(n_in: int, n_out: int, bias: bool = True) -> int:
    """Parameters of a linear layer with ``N = n_in`` inputs and ``M = n_out`` outputs:
    ``N*M`` connections plus ``M`` biases, ``(N + 1)*M`` (thesis Section 2.1)."""
    for arg, value in (("n_in", n_in), ("n_out", n_out)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    return (n_in + 1) * n_out if bias else n_in * n_out


def mlp_parameters(widths: Sequence[int], bias: bool = True) -> int:
    """Parameters of a fully connected network with layer widths ``widths`` (inputs first,
    outputs last): the sum of :func:`linear_layer_parameters` over consecutive pairs.
    ``mlp_parameters([784, 400, 400, 400, 10])`` is the thesis's MLP (Section 3.3.2)."""
    widths = list(widths)
    if len(widths) < 2:
        raise ValueError(f"widths needs at least an input and an output width, got {widths!r}")
    return sum(linear_layer_parameters(a, b, bias) for a, b in itertools.pairwise(widths))


def xor_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The XOR truth table: inputs ``(4, 2)`` float32 in {0, 1} and targets ``(4,)`` float32,
    ``1`` where exactly one input is 1."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    return x, y


def xor_net(hidden: int = 0, activation: str | None = "relu", seed: int = 0) -> nn.Sequential:
    """A network from 2 inputs to 1 output logit (class 1 where the logit is > 0).

    Args:
        hidden: width of one hidden layer; ``0`` means none (a single linear neuron).
        activation: ``"relu"`` or ``None`` after the hidden layer. Without it the network is
            a product of linear maps, hence still linear (thesis Section 2.1).
        seed: seeds the initial weights.
    """
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 0:
        raise ValueError(f"hidden must be a non-negative integer, got {hidden!r}")
    if activation not in (None, "relu"):
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    torch.manual_seed(seed)
    if hidden == 0:
        return nn.Sequential(nn.Linear(2, 1))
    layers: list[nn.Module] = [nn.Linear(2, hidden)]
    if activation == "relu":
        layers.append(nn.ReLU())
    layers.append(nn.Linear(hidden, 1))
    return nn.Sequential(*layers)


def hand_made_xor() -> nn.Sequential:
    """Two hidden ReLU neurons with weights set by hand so that the logit is exactly
    ``10*XOR(x1, x2) - 5`` on the four corners:

    ``h1 = ReLU(x1 + x2)``, ``h2 = ReLU(x1 + x2 - 1)``, ``logit = 10*h1 - 20*h2 - 5``.
    ``h1`` counts the ones; ``h2`` is 1 only when both are on and cancels ``h1`` there.
    """
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
        net[0].bias.copy_(torch.tensor([0.0, -1.0]))
        net[2].weight.copy_(torch.tensor([[10.0, -20.0]]))
        net[2].bias.copy_(torch.tensor([-5.0]))
    return net


@dataclass
class XORResult:
    """What :func:`train_xor` returns.

    Attributes:
        model: the trained network (2 inputs -> 1 logit).
        losses: binary cross-entropy (nats) on the four points after each step.
        accuracy: fraction of the four points classified right at the end (logit > 0 -> 1).
    """

    model: nn.Sequential
    losses: list[float]
    accuracy: float


def train_xor(hidden: int = 0, activation: str | None = "relu", steps: int = 500,
              lr: float = 0.1, seed: int = 0) -> XORResult:
    """Train :func:`xor_net` on the four XOR points: full batch, SGD with momentum 0.9,
    binary cross-entropy on the logit.

    A linear network (``hidden=0``, or ``activation=None``) cannot do better than a loss of
    ln 2 = 0.693 nats: XOR is unchanged by ``x -> 1 - x``, so the best linear model can be
    averaged with its mirror image into a constant one, whose best value is ``logit = 0``.

    Returns:
        :class:`XORResult` with the loss after every step and the final accuracy.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    x, y = xor_data()
    model = xor_net(hidden, activation, seed)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            losses.append(float(F.binary_cross_entropy_with_logits(model(x).squeeze(1), y)))
    with torch.no_grad():
        accuracy = float(((model(x).squeeze(1) > 0).float() == y).float().mean())
    return XORResult(model, losses, accuracy)


def predict_grid(model: nn.Module, lim: tuple[float, float] = (-0.5, 1.5),
                 n: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probability of class 1 (sigmoid of the logit) of a 2-input model on an
    ``n x n`` grid over ``lim x lim``, for decision-boundary plots.

    Returns:
        ``(xx, yy, p)``, each ``(n, n)`` numpy arrays (``plt.contourf(xx, yy, p)``).
    """
    axis = torch.linspace(lim[0], lim[1], n)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    with torch.no_grad():
        logits = model(torch.stack([xx.flatten(), yy.flatten()], dim=1)).reshape(n, n)
    return xx.numpy(), yy.numpy(), torch.sigmoid(logits).numpy()


# ======================================================================================
# Section 2.2: convolutions
# ======================================================================================


def _pair(value: int | tuple[int, int], arg: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(pair, tuple) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                       for v in pair)):
        raise ValueError(f"{arg} must be an integer >= {minimum} or a pair of them, "
                         f"got {value!r}")
    return pair


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output height (or width) of a convolution: ``floor((size + 2*padding - kernel) /
    stride) + 1`` -- the number of window positions along one axis (thesis Figure 2.4).

    Args:
        size: input height or width in pixels.
        kernel: window size in pixels.
        stride: pixels the window moves per step.
        padding: zeros added on each side.
    """
    for arg, value, minimum in (("size", size, 1), ("kernel", kernel, 1),
                                ("stride", stride, 1), ("padding", padding, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{arg} must be an integer >= {minimum}, got {value!r}")
    if size + 2 * padding < kernel:
        raise ValueError(f"the kernel ({kernel}) is larger than the padded input "
                         f"({size} + 2*{padding})")
    return (size + 2 * padding - kernel) // stride + 1


def zero_pad(x: torch.Tensor, padding: int | tuple[int, int]) -> torch.Tensor:
    """``x`` of shape ``(N, C, H, W)`` framed by ``padding`` rows/columns of zeros:
    ``(N, C, H + 2*ph, W + 2*pw)``."""
    ph, pw = _pair(padding, "padding", 0)
    n, c, h, w = x.shape
    out = x.new_zeros((n, c, h + 2 * ph, w + 2 * pw))
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def window_positions(height: int, width: int, kernel: int | tuple[int, int],
                     stride: int | tuple[int, int] = 1,
                     padding: int | tuple[int, int] = 0) -> list[tuple[int, int]]:
    """The top-left corners ``(row, col)`` of the sliding window, in the order it visits
    them (row by row, thesis Figure 2.4), in coordinates of the *padded* input.

    There are ``conv_output_size(height, ...) * conv_output_size(width, ...)`` of them;
    position ``k`` fills output pixel ``(k // out_w, k % out_w)``.
    """
    kh, kw = _pair(kernel, "kernel", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    out_h = conv_output_size(height, kh, sh, ph)
    out_w = conv_output_size(width, kw, sw, pw)
    return [(i * sh, j * sw) for i in range(out_h) for j in range(out_w)]


def conv2d_by_hand(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   stride: int | tuple[int, int] = 1,
                   padding: int | tuple[int, int] = 0) -> torch.Tensor:
    """A 2-D convolution as a sliding window (thesis Figures 2.4 and 2.5): zero-pad the
    input, then at every window position take the dot product of the window with each
    filter. Equals ``F.conv2d(x, weight, bias, stride, padding)`` (which, like every deep
    learning library, computes a cross-correlation: the filter is not flipped).

    Args:
        x: input images ``(N, C, H, W)``.
        weight: ``O`` filters ``(O, C, kh, kw)``; each covers all ``C`` input channels.
        bias: ``(O,)`` or ``None``.
        stride: pixels per step, an int or ``(sh, sw)``.
        padding: zeros on each side, an int or ``(ph, pw)``.

    Returns:
        ``(N, O, H', W')`` with ``H' = conv_output_size(H, kh, sh, ph)`` and likewise ``W'``.
    """
    if x.dim() != 4 or weight.dim() != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"need x (N, C, H, W) and weight (O, C, kh, kw) with the same C; "
                         f"got x {tuple(x.shape)}, weight {tuple(weight.shape)}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    n, _, h, w = x.shape
    kh, kw = weight.shape[2:]
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    out_h, out_w = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    positions = window_positions(h, w, (kh, kw), (sh, sw), (ph, pw))
    padded = zero_pad(x, (ph, pw))
    out = x.new_zeros((n, weight.shape[0], out_h, out_w))
    for k, (row, col) in enumerate(positions):
        window = padded[:, :, row:row + kh, col:col + kw]  # (N, C, kh, kw)
        # one dot product per image and filter: sum over channels and the window
        out[:, :, k // out_w, k % out_w] = torch.einsum("nchw,ochw->no", window, weight)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def conv2d_parameters(c_in: int, c_out: int, kernel: int | tuple[int, int],
                      bias: bool = True) -> int:
    """Parameters of a convolutional layer: ``c_out`` filters of ``c_in*kh*kw`` weights,
    plus one bias each if ``bias``. Independent of the image size."""
    kh, kw = _pair(kernel, "kernel", 1)
    for arg, value in (("c_in", c_in), ("c_out", c_out)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    return c_out * (c_in * kh * kw + int(bias))


def parameters_by_layer_type(model: nn.Module) -> dict[str, int]:
    """Trainable parameters grouped by the type of the layer that owns them, e.g.
    ``{"Conv2d": ..., "BatchNorm2d": ..., "Linear": ...}`` (largest first)."""
    counts: dict[str, int] = {}
    for module in model.modules():
        n = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
        if n:
            counts[type(module).__name__] = counts.get(type(module).__name__, 0) + n
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


# ======================================================================================
# Section 2.3: batch normalization
# ======================================================================================

CONVENTIONS = ("torch", "tf")


def _check_momentum(momentum: float, convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be 'torch' or 'tf', got {convention!r}")
    if not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum!r}")


def ema_update(old, new, momentum: float, convention: str = "torch"):
    """One step of a running (exponential moving) average.

    * ``convention="tf"`` (the thesis's, Section 2.3): ``old*momentum + new*(1 - momentum)``.
    * ``convention="torch"``: ``old*(1 - momentum) + new*momentum``.

    ``old`` and ``new`` are numbers or tensors of the same shape.
    """
    _check_momentum(momentum, convention)
    keep = momentum if convention == "tf" else 1.0 - momentum
    return keep * old + (1.0 - keep) * new


def running_average(values: Sequence[float] | torch.Tensor, momentum: float,
                    convention: str = "torch", initial: float = 0.0) -> torch.Tensor:
    """The running average after each of ``values`` (e.g. the batch means a BN layer sees),
    starting from ``initial`` (PyTorch starts the running mean at 0 and the variance at 1).

    Returns:
        float64 tensor of ``len(values)`` running values; item ``t`` includes ``values[t]``.
    """
    _check_momentum(momentum, convention)
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    out = torch.empty_like(values)
    current = torch.tensor(float(initial), dtype=torch.float64)
    for t, value in enumerate(values):
        current = ema_update(current, value, momentum, convention)
        out[t] = current
    return out


def forgetting_steps(momentum: float, fraction: float = 0.01, convention: str = "tf") -> int:
    """Steps until the starting value's weight in a running average falls to ``fraction``
    or below: the smallest ``k`` with ``keep**k <= fraction``, where ``keep`` is the weight of
    the old value (TF's ``mu``, or ``1 - momentum`` in PyTorch's convention).

    ``forgetting_steps(0.99)`` is 459; ``forgetting_steps(0.997)`` is 1,533 (thesis ResNets).
    """
    _check_momentum(momentum, convention)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    keep = momentum if convention == "tf" else 1.0 - momentum
    if keep == 0.0:
        return 1
    if keep == 1.0:
        raise ValueError("a running average with old-value weight 1 never forgets")
    k = math.ceil(math.log(fraction) / math.log(keep))
    while keep**k > fraction:  # guard against rounding in the logarithms
        k += 1
    return k


def drifting_batches(steps: int, batch_size: int, mean_start: float = 2.0,
                     mean_end: float = 2.0, std: float = 1.0,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Batches of one channel whose true mean drifts linearly from ``mean_start`` (step 0) to
    ``mean_end`` (last step): what a BN layer sees while the layers before it train.

    Returns:
        ``(batches, means)``: ``(steps, batch_size)`` float32 samples of
        ``N(means[t], std**2)``, and the ``(steps,)`` true means.
    """
    for arg, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    generator = torch.Generator().manual_seed(seed)
    means = torch.linspace(mean_start, mean_end, steps)
    noise = torch.randn((steps, batch_size), generator=generator)
    return means[:, None] + std * noise, means


def batch_norm_by_hand(
    x: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    gamma: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch normalization written out (thesis Section 2.3), matching ``nn.BatchNorm1d/2d``.

    ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per channel, where

    * training: ``mean``/``var`` are the batch's own (over every axis but the channel axis;
      the biased variance, dividing by ``n``), and the running statistics move towards
      them: ``running = (1 - momentum)*running + momentum*batch`` -- **PyTorch's
      convention** (TF's ``mu`` is ``1 - momentum``). Like PyTorch, the running variance
      is updated with the *unbiased* batch variance (dividing by ``n - 1``).
    * evaluation: ``mean``/``var`` are the running statistics, which stay unchanged.

    Args:
        x: ``(N, C)`` or ``(N, C, H, W)``.
        running_mean, running_var: ``(C,)`` (PyTorch starts them at 0 and 1).
        gamma, beta: ``(C,)`` scale and shift; ``None`` means 1 and 0.
        training: batch statistics (True) or running statistics (False).
        momentum: PyTorch's momentum, the weight of the new batch statistic.
        eps: added to the variance under the square root.

    Returns:
        ``(y, new_running_mean, new_running_var)``; ``y`` has ``x``'s shape.
    """
    if x.dim() not in (2, 4):
        raise ValueError(f"x must be (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    _check_momentum(momentum, "torch")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    channels = x.shape[1]
    for arg, t in (("running_mean", running_mean), ("running_var", running_var),
                   ("gamma", gamma), ("beta", beta)):
        if t is not None and t.shape != (channels,):
            raise ValueError(f"{arg} must have shape ({channels},), got {tuple(t.shape)}")
    dims = [0] + list(range(2, x.dim()))
    shape = [1, channels] + [1] * (x.dim() - 2)
    if training:
        n = x.numel() // channels
        if n < 2:
            raise ValueError("training mode needs more than one value per channel")
        mean = x.mean(dim=dims)
        var = ((x - mean.view(shape)) ** 2).mean(dim=dims)
        new_mean = ema_update(running_mean, mean.detach(), momentum, "torch")
        new_var = ema_update(running_var, var.detach() * n / (n - 1), momentum, "torch")
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean.clone(), running_var.clone()
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    if gamma is not None:
        y = y * gamma.view(shape)
    if beta is not None:
        y = y + beta.view(shape)
    return y, new_mean, new_var
