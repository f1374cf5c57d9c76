"""Saliency: how important each weight is (thesis Section 2.4.2).

A saliency is any callable ``fn(model, layers) -> {name: scores}`` where ``layers`` maps
layer names to the ``Conv``/``Linear`` modules being pruned and each ``scores`` tensor has
the shape of that layer's weight. Larger scores are kept. Three are built in:

* :func:`magnitude` -- ``|w|`` (Janowsky 1989; Frankle & Carbin 2019).
* :func:`snip` -- ``|w * g|`` with ``g`` the loss gradient (Lee et al. 2018).
* :func:`random` -- uniform noise, the baseline every criterion must beat.

Pass your own function to :func:`pruninglab.core.pruning.prune` to try another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NAMES", "Saliency", "magnitude", "random", "resolve", "snip"]

Saliency = Callable[[nn.Module, Mapping[str, nn.Module]], dict[str, torch.Tensor]]


@torch.no_grad()
def magnitude(model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """``|w|`` for every layer's weight."""
    return {name: layer.weight.detach().abs() for name, layer in layers.items()}


def snip(x: torch.Tensor, y: torch.Tensor, n_batches: int = 1, batch_size: int = 128) -> Saliency:
    """SNIP connection sensitivity ``|w * g|`` (Lee et al. 2018; thesis Section 2.4.2), ``g``
    being the gradient of the mean cross-entropy loss with respect to ``w``, accumulated
    (averaged) over ``n_batches`` consecutive batches of ``(x, y)``: the first
    ``n_batches * batch_size`` examples.

    Args:
        x: inputs ``(N, ...)`` on the model's device; y: labels ``(N,)``.
        n_batches: batches to accumulate the gradient over (>= 1).
        batch_size: examples per batch.

    Returns:
        A saliency function. It computes gradients even when called under ``torch.no_grad``,
        leaves the parameters' ``.grad`` untouched (it uses ``torch.autograd.grad``), and
        restores every buffer afterwards, so BN running statistics are not moved by the
        scoring batches (BN normalizes them in the model's current train/eval mode).
    """
    for arg, value in (("n_batches", n_batches), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if len(x) != len(y):
        raise ValueError(
            f"x and y must hold the same number of examples, got {len(x)} and {len(y)}")
    if n_batches * batch_size > len(x):
        raise ValueError(
            f"n_batches * batch_size = {n_batches * batch_size} exceeds the {len(x)} "
            "examples given")

    def scores(model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        weights = [layer.weight for layer in layers.values()]
        total = [torch.zeros_like(w) for w in weights]
        saved = {name: b.clone() for name, b in model.named_buffers()}
        try:
            with torch.enable_grad():
                for b in range(n_batches):
                    xb = x[b * batch_size : (b + 1) * batch_size]
                    yb = y[b * batch_size : (b + 1) * batch_size]
                    loss = F.cross_entropy(model(xb), yb)
                    grads = torch.autograd.grad(loss, weights, allow_unused=True)
                    for acc, g in zip(total, grads):
                        if g is not None:
                            acc += g
        finally:
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(saved[name])
        return {name: (w.detach() * g / n_batches).abs()
                for name, w, g in zip(layers, weights, total)}

    return scores


def random(seed: int = 0) -> Saliency:
    """Uniform random scores from a CPU generator seeded with ``seed``: random pruning.
    The same seed gives the same scores on every call, so pruning a model repeatedly with
    one ``random(seed)`` removes weights in one fixed random order."""

    def scores(model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(int(seed))
        return {name: torch.rand(layer.weight.shape, generator=g).to(layer.weight.device)
                for name, layer in layers.items()}

    return scores


# The built-in criteria (for menus); "snip" is built with data: snip(x, y, n_batches).
NAMES = ("magnitude", "snip", "random")


def resolve(saliency: str | Saliency) -> Saliency:
    """``"magnitude"`` / ``"random"`` by name, or a callable as it is. SNIP needs data, so it
    is passed as ``snip(x, y)``."""
    if callable(saliency):
        return saliency
    if saliency == "magnitude":
        return magnitude
    if saliency == "random":
        return random()
    if saliency == "snip":
        raise ValueError("saliency='snip' needs data: pass saliency=snip(x, y, n_batches)")
    raise ValueError(
        f"unknown saliency {saliency!r}; use 'magnitude', 'random', snip(x, y) or a callable")
