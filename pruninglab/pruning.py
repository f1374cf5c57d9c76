"""Pruning: turn saliency scores into masks (thesis Sections 2.4 and 2.4.3).

``prune(model, density)`` keeps exactly ``round(density * N)`` of the ``N`` prunable weights
(global, "automatic" pruning) or ``round(density * n)`` of every layer's ``n`` weights
(layerwise, "predefined" pruning), choosing those with the largest saliency. Weights that
are already pruned stay pruned. Ties are broken by position (the earlier weight, in module
order, is kept), so the result is deterministic.

``prune_channels`` is structured L1 pruning of whole output channels, for the teaching
notebook (Figure 2.6). ``sparsity_report`` tabulates what is left.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import pandas as pd
import torch
from torch import nn

from . import masking
from .saliency import Saliency, resolve

__all__ = ["prune", "prune_channels", "sparsity_report", "check_density", "EmptyLayerWarning"]


class EmptyLayerWarning(UserWarning):
    """Global pruning removed every weight of a layer (the caveat of Figure 2.9)."""


def check_density(density: float, arg: str = "density") -> float:
    """Return ``density`` as a float if it lies in (0, 1]; else raise ``ValueError``."""
    if isinstance(density, bool) or not isinstance(density, (int, float)):
        raise ValueError(f"{arg} must be a number in (0, 1], got {density!r}")
    if math.isnan(density) or not 0.0 < density <= 1.0:
        raise ValueError(f"{arg} must be a number in (0, 1], got {density!r}")
    return float(density)


def _layers(model: nn.Module, exclude: Iterable[str]) -> dict[str, nn.Module]:
    exclude = list([exclude] if isinstance(exclude, str) else exclude)
    if exclude or not masking.masked_layers(model):
        masking.add_masks(model, exclude)
        wanted = masking.prunable_layers(model, exclude)
        return {n: m for n, m in masking.masked_layers(model).items() if n in wanted}
    return masking.masked_layers(model)


def _top(scores: torch.Tensor, alive: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask keeping the ``k`` largest alive scores; ties -> lower index wins."""
    scores = torch.where(alive, scores.float(), torch.tensor(-math.inf, device=scores.device))
    order = torch.sort(scores, descending=True, stable=True).indices[:k]
    keep = torch.zeros_like(alive)
    keep[order] = True
    return keep


@torch.no_grad()
def prune(
    model: nn.Module,
    density: float,
    scope: str = "global",
    saliency: str | Saliency = "magnitude",
    exclude: Iterable[str] = (),
) -> nn.Module:
    """Prune ``model`` in place to ``density`` of its prunable weights.

    Args:
        model: any ``nn.Module``; masks are added to its Conv/Linear layers on first use.
        density: fraction of prunable weights to keep, in (0, 1]. It counts every prunable
            weight, pruned or not, so ``prune(m, 0.7)`` then ``prune(m, 0.49)`` is two
            30% steps.
        scope: ``"global"`` (one threshold for the whole model; layers may end up with
            different densities, or empty: a warning says so) or ``"layerwise"`` (every layer
            keeps ``density`` of its own weights).
        saliency: ``"magnitude"``, ``"random"``, :func:`~pruninglab.saliency.snip` or any
            callable ``(model, layers) -> {name: scores}``.
        exclude: layer names or patterns never to prune (only used when masks are added).

    Returns:
        ``model``, with ``pruning_mask`` buffers updated and pruned weights zeroed.

    Raises:
        ValueError: ``density`` outside (0, 1] or NaN; a density above the current one
            (pruning never revives weights); unknown ``scope``; bad saliency output.
    """
    density = check_density(density)
    if scope not in ("global", "layerwise"):
        raise ValueError(f"scope must be 'global' or 'layerwise', got {scope!r}")
    layers = _layers(model, exclude)
    scores = resolve(saliency)(model, layers)
    for name, layer in layers.items():
        s = scores.get(name)
        if s is None or s.shape != layer.weight.shape:
            got = None if s is None else tuple(s.shape)
            raise ValueError(f"saliency gave shape {got} for layer {name!r}, "
                             f"expected {tuple(layer.weight.shape)}")  # fmt: skip
        if torch.isnan(s).any():
            raise ValueError(f"saliency returned NaN scores for layer {name!r}")

    masks = {n: getattr(m, masking.MASK) for n, m in layers.items()}
    if scope == "global":
        alive = torch.cat([m.flatten() for m in masks.values()])
        k = round(density * alive.numel())
        _check_alive(k, alive, density, "the model")
        flat = torch.cat([scores[n].flatten().to(alive.device) for n in masks])
        keep = _top(flat, alive, k)
        new = dict(zip(masks, keep.split([m.numel() for m in masks.values()])))
    else:
        new = {}
        for name, mask in masks.items():
            alive = mask.flatten()
            k = round(density * alive.numel())
            _check_alive(k, alive, density, f"layer {name!r}")
            new[name] = _top(scores[name].flatten().to(alive.device), alive, k)
    for name, keep in new.items():
        masks[name].copy_(keep.view_as(masks[name]))
        if scope == "global" and not keep.any():
            warnings.warn(
                f"global pruning to density {density:g} removed every weight of layer {name!r}; "
                "the network may be disconnected (thesis Figure 2.9). Consider "
                "scope='layerwise' or exclude=[...].", EmptyLayerWarning, stacklevel=2)
    masking.apply_masks(model)
    return model


def _check_alive(k: int, alive: torch.Tensor, density: float, where: str) -> None:
    n_alive = int(alive.sum())
    if k > n_alive:
        raise ValueError(
            f"density={density:g} would keep {k} weights of {where}, but only {n_alive} are "
            f"unpruned (density {n_alive / alive.numel():.4g}); pruning never revives weights")


@torch.no_grad()
def prune_channels(model: nn.Module, density: float, exclude: Iterable[str] = ()) -> nn.Module:
    """Structured pruning: in every prunable layer keep the ``round(density * C_out)`` output
    channels (rows of a Linear weight, filters of a Conv) with the largest L1 norm and mask
    the rest whole (at least one channel is kept). Works in place and returns ``model``."""
    density = check_density(density)
    for layer in _layers(model, exclude).values():
        mask = getattr(layer, masking.MASK)
        norms = (layer.weight * mask).abs().flatten(1).sum(1)
        k = max(1, round(density * len(norms)))
        keep = torch.zeros(len(norms), dtype=torch.bool, device=norms.device)
        keep[torch.sort(norms, descending=True, stable=True).indices[:k]] = True
        mask &= keep.view(-1, *([1] * (mask.dim() - 1)))
    masking.apply_masks(model)
    return model


def sparsity_report(model: nn.Module) -> pd.DataFrame:
    """Per-layer and total counts of a masked model.

    Returns:
        A DataFrame indexed by layer name (last row ``"total"``) with columns ``shape``,
        ``weights``, ``kept``, ``density`` (kept / weights) and ``compression``
        (weights / kept; ``inf`` for an empty layer).
    """
    rows = []
    for name, layer in masking.masked_layers(model).items():
        mask = getattr(layer, masking.MASK)
        rows.append({"layer": name, "shape": tuple(mask.shape), "weights": mask.numel(),
                     "kept": int(mask.sum())})  # fmt: skip
    if not rows:
        raise ValueError("sparsity_report: the model has no masks; prune it first (or add_masks)")
    total_w = sum(r["weights"] for r in rows)
    total_k = sum(r["kept"] for r in rows)
    rows.append({"layer": "total", "shape": (), "weights": total_w, "kept": total_k})
    df = pd.DataFrame(rows).set_index("layer")
    df["density"] = df["kept"] / df["weights"]
    df["compression"] = df["weights"] / df["kept"].where(df["kept"] > 0, float("nan"))
    df["compression"] = df["compression"].fillna(math.inf)
    return df
