"""Saliency: how important each weight is (thesis Section 2.4.2).

A saliency is any callable ``fn(model, layers) -> {name: scores}`` where ``layers`` maps
layer names to the ``Conv``/``Linear`` modules being pruned and each ``scores`` tensor has
the shape of that layer's weight. Larger scores are kept. Three are built in:

* :func:`magnitude` -- ``|w|`` (Janowsky 1989; Frankle & Carbin 2019).
* :func:`snip` -- ``|w * g|`` with ``g`` the loss gradient (Lee et al. 2018).
* :func:`random` -- uniform noise, the baseline every criterion must beat.

Pass your own function to :func:`pruninglab.pruning.prune` to try another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Saliency", "magnitude", "snip", "random", "resolve"]

Saliency = Callable[[nn.Module, Mapping[str, nn.Module]], dict[str, torch.Tensor]]


@torch.no_grad()
def magnitude(model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """``|w|`` for every layer's weight."""
    return {name: layer.weight.detach().abs() for name, layer in layers.items()}


def snip(x: torch.Tensor, y: torch.Tensor, n_batches: int = 1, batch_size: int = 128) -> Saliency:
    """SNIP connection sensitivity ``|w * g|`` (Lee et al. 2018), ``g`` being the gradient of
    the cross-entropy loss with respect to ``w``, averaged over ``n_batches`` consecutive
    batches of ``(x, y)`` (the first ``n_batches * batch_size`` examples).

    Args:
        x: inputs ``(N, ...)`` on the model's device; y: labels ``(N,)``.
        n_batches: batches to average the gradient over (>= 1).
        batch_size: examples per batch.

    Returns:
        A saliency function. The model's ``.grad`` fields are left as they were found
        (cleared); BN layers see the batches in the model's current mode.
    """
    if not isinstance(n_batches, int) or n_batches < 1:
        raise ValueError(f"n_batches must be a positive integer, got {n_batches!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if n_batches * batch_size > len(x):
        raise ValueError(
            f"n_batches * batch_size = {n_batches * batch_size} exceeds the {len(x)} examples given")

    def scores(model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        weights = [layer.weight for layer in layers.values()]
        total = [torch.zeros_like(w) for w in weights]
        for b in range(n_batches):
            xb = x[b * batch_size : (b + 1) * batch_size]
            yb = y[b * batch_size : (b + 1) * batch_size]
            loss = F.cross_entropy(model(xb), yb)
            grads = torch.autograd.grad(loss, weights)
            for acc, g in zip(total, grads):
                acc += g
        return {name: (w.detach() * g / n_batches).abs()
                for name, w, g in zip(layers, weights, total)}  # fmt: skip

    return scores


def random(seed: int = 0) -> Saliency:
    """Uniform random scores from a generator seeded with ``seed``: random pruning."""

    def scores(model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(int(seed))
        return {name: torch.rand(layer.weight.shape, generator=g).to(layer.weight.device)
                for name, layer in layers.items()}  # fmt: skip

    return scores


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
