"""Pruning: saliency scores to masks (thesis Sections 2.4 and 2.4.3).

``prune(model, density)`` keeps exactly ``round(density * N)`` of the ``N`` prunable weights
with the largest saliency, over the whole model ("global", automatic) or in every layer
("layerwise", predefined). Pruned weights stay pruned; ties go to the earlier weight (module
order, then flattened order), so the result is deterministic. ``prune_channels`` removes
whole output channels (Figure 2.6).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from . import checks, masking
from .saliency import Saliency, resolve
from .sparsity import sparsity_report  # noqa: F401  (the table of what is left)

__all__ = ["SCOPES", "EmptyLayerWarning", "check_density", "prune", "prune_channels",
           "sparsity_report"]

SCOPES = ("global", "layerwise")


class EmptyLayerWarning(UserWarning):
    """Pruning removed every weight of a layer (the caveat of Figure 2.9)."""


def check_density(density: float, arg: str = "density") -> float:
    """``density`` as a float in (0, 1], else a ``ValueError`` naming ``arg``."""
    return checks.real(density, arg, 0.0, 1.0, low_open=True)


def _layers(model: nn.Module, exclude: Iterable[str]) -> dict[str, nn.Module]:
    # the masked layers minus `exclude`; unmasked prunable layers `exclude` spares get masks
    # when the model has none or when `exclude` is given
    patterns = [exclude] if isinstance(exclude, str) else list(exclude)
    if patterns or not masking.masked_layers(model):
        masking.add_masks(model, patterns)
        wanted = masking.prunable_layers(model, patterns)
        return {n: m for n, m in masking.masked_layers(model).items() if n in wanted}
    return masking.masked_layers(model)


def _check_scores(scores: object, layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    if not hasattr(scores, "get"):
        raise ValueError("saliency must return a dict {layer: scores}, "
                         f"got {type(scores).__name__}")
    out = {}
    for name, layer in layers.items():
        s = scores.get(name)
        if not isinstance(s, torch.Tensor) or s.shape != layer.weight.shape:
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else s
            raise ValueError(f"saliency gave {got!r} for layer {name!r}, expected a tensor of "
                             f"shape {tuple(layer.weight.shape)}")
        if s.dtype == torch.bool or s.is_complex():
            raise ValueError(
                f"saliency scores of layer {name!r} must be real numbers, got {s.dtype}")
        if s.is_floating_point() and torch.isnan(s).any():
            raise ValueError(f"saliency returned NaN scores for layer {name!r}")
        out[name] = s.detach()
    return out


# Scores torch.kthvalue selects among on the CPU; other dtypes are sorted.
_SELECTABLE = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8,
               torch.int8, torch.int16, torch.int32, torch.int64)


def _top_sorted(scores: torch.Tensor, alive: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` largest ``scores`` among the ``alive`` positions (flat bool), by a stable
    sort: of equal scores the lower index wins."""
    index = alive.nonzero().squeeze(1)
    order = torch.sort(scores[index], descending=True, stable=True).indices[:k]
    keep = torch.zeros_like(alive)
    keep[index[order]] = True
    return keep


def _top(scores: torch.Tensor, alive: torch.Tensor, k: int) -> torch.Tensor:
    """What :func:`_top_sorted` keeps, by selecting the k-th largest score on the CPU (linear
    time; ``pruninglab bench prune``), by sorting on a GPU."""
    if scores.is_cuda or scores.dtype not in _SELECTABLE:
        return _top_sorted(scores, alive, k)
    index = alive.nonzero().squeeze(1)
    values = scores[index]
    keep = torch.zeros_like(alive)
    if k <= 0:
        return keep
    if k >= len(values):
        keep[index] = True
        return keep
    kth = torch.kthvalue(values, len(values) - k + 1).values  # the k-th largest
    chosen = values > kth
    ties = (values == kth).nonzero().squeeze(1)  # in index order
    chosen[ties[:k - int(chosen.sum())]] = True
    keep[index[chosen]] = True
    return keep


def prune(
    model: nn.Module,
    density: float,
    scope: str = "global",
    saliency: str | Saliency = "magnitude",
    exclude: Iterable[str] = (),
) -> nn.Module:
    """Prune ``model`` in place to ``density`` of its prunable weights and return it.

    ``density`` counts every weight of the pruned layers, pruned or not: ``prune(m, 0.7)``
    then ``prune(m, 0.49)`` is two 30 % steps. ``saliency``: ``"magnitude"``, ``"random"``,
    ``snip(x, y)`` or any ``(model, layers) -> {name: scores}``, larger kept. ``exclude``:
    layer names or shell patterns left out (a masked layer named there keeps its mask).
    ValueError: a density outside (0, 1] or above what is left (pruning never revives
    weights), an unknown scope, bad scores. Warns ``EmptyLayerWarning`` when a layer loses
    its last weight (Figure 2.9).
    """
    density = check_density(density)
    if scope not in SCOPES:
        raise ValueError(f"scope must be 'global' or 'layerwise', got {scope!r}")
    saliency_fn = resolve(saliency)
    layers = _layers(model, exclude)
    if not layers:
        raise ValueError("the model has no prunable (Conv/Linear) layer left to prune")
    scores = _check_scores(saliency_fn(model, layers), layers)

    masks = {n: getattr(m, masking.MASK) for n, m in layers.items()}
    with torch.no_grad():
        if scope == "global":
            alive = torch.cat([m.flatten() for m in masks.values()])
            k = round(density * alive.numel())
            _check_alive(k, alive, density, "the model")
            dtype = functools.reduce(torch.promote_types, [s.dtype for s in scores.values()])
            flat = torch.cat([scores[n].flatten().to(alive.device, dtype) for n in masks])
            keep = _top(flat, alive, k)
            new = dict(zip(masks, keep.split([m.numel() for m in masks.values()])))
        else:
            new = {}
            for name, mask in masks.items():
                alive = mask.flatten()
                k = round(density * alive.numel())
                _check_alive(k, alive, density, f"layer {name!r}")
                new[name] = _top(scores[name].flatten().to(alive.device), alive, k)
        emptied = [n for n, keep in new.items() if masks[n].any() and not keep.any()]
        for name, keep in new.items():
            masks[name].copy_(keep.view_as(masks[name]))
        masking.apply_masks(model)
    for name in emptied:
        warnings.warn(
            f"{scope} pruning to density {density:g} removed every weight of layer {name!r}; "
            "the network may be disconnected (thesis Figure 2.9). Consider "
            "scope='layerwise' or exclude=[...].", EmptyLayerWarning, stacklevel=2)
    return model


def _check_alive(k: int, alive: torch.Tensor, density: float, where: str) -> None:
    n_alive = int(alive.sum())
    if k > n_alive:
        raise ValueError(
            f"density={density:g} would keep {k} weights of {where}, but only {n_alive} are "
            f"unpruned (density {n_alive / alive.numel():.4g}); pruning never revives weights")


def _channel_keep(layer: nn.Module, density: float) -> torch.Tensor:
    # bool (C_out,): the max(1, round(density * C_out)) channels of largest masked L1 norm
    norms = (layer.weight * getattr(layer, masking.MASK)).abs().flatten(1).sum(1)
    k = max(1, round(density * len(norms)))
    keep = torch.zeros(len(norms), dtype=torch.bool, device=norms.device)
    keep[torch.sort(norms, descending=True, stable=True).indices[:k]] = True
    return keep


@torch.no_grad()
def prune_channels(model: nn.Module, density: float, exclude: Iterable[str] = (),
                   chain: bool = False) -> nn.Module:
    """Structured pruning (Section 2.4.1, Figure 2.6), in place: every layer keeps the
    ``max(1, round(density * C_out))`` output channels (rows, filters) of largest L1 norm.
    ``chain``: the layers feed each other in module order (an MLP, a conv stack), so the
    logits stay and a removed channel also takes the next layer's weights that read it
    (inner layers end near ``density**2``); a layer whose inputs are not a multiple of the
    previous one's channels is a ValueError.
    """
    density = check_density(density)
    layers = _layers(model, exclude)
    names = list(layers)
    rows = {n: _channel_keep(layers[n], density) for n in (names[:-1] if chain else names)}
    for name, keep in rows.items():
        mask = getattr(layers[name], masking.MASK)
        mask &= keep.view(-1, *([1] * (mask.dim() - 1)))
    if chain:
        for a, b in itertools.pairwise(names):
            channels, n_in = len(rows[a]), layers[b].weight.shape[1]
            if n_in % channels:
                raise ValueError(
                    f"chain=True: layer {b!r} reads {n_in} inputs, not a multiple of the "
                    f"{channels} output channels of {a!r}; the layers do not form a chain")
            mask = getattr(layers[b], masking.MASK)
            columns = rows[a].repeat_interleave(n_in // channels)  # flatten is channel-major
            mask &= columns.view(1, -1, *([1] * (mask.dim() - 2)))
    masking.apply_masks(model)
    return model
