"""Saliency: how important each weight is (thesis Section 2.4.2).

A saliency is any ``fn(model, layers) -> {name: scores}``, each ``scores`` shaped like that
layer's weight; larger is kept. Built in: :func:`magnitude` ``|w|`` (Janowsky 1989),
:func:`snip` ``|w * g|`` (Lee et al. 2018) and :func:`random`, the baseline to beat.
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
    """SNIP's ``|w * g|``, ``g`` the cross-entropy's gradient averaged over the first
    ``n_batches`` batches of ``x`` ``(N, ...)`` and ``y`` ``(N,)`` on the model's device. The
    saliency works under ``no_grad`` and leaves ``.grad`` and every buffer (BN's running
    statistics) as they were."""
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
    """Uniform scores from a CPU generator seeded with ``seed``, the same on every call: one
    fixed random order of removal."""

    def scores(model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(int(seed))
        return {name: torch.rand(layer.weight.shape, generator=g).to(layer.weight.device)
                for name, layer in layers.items()}

    return scores


# The built-in criteria (for menus); "snip" is built with data: snip(x, y, n_batches).
NAMES = ("magnitude", "snip", "random")


def resolve(saliency: str | Saliency) -> Saliency:
    """``"magnitude"`` or ``"random"`` by name, a callable as it is (SNIP needs data:
    ``snip(x, y)``)."""
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
