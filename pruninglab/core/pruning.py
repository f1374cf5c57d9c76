"""Pruning: turn saliency scores into masks (thesis Sections 2.4 and 2.4.3).

``prune(model, density)`` keeps exactly ``round(density * N)`` of the ``N`` prunable weights
(global, "automatic" pruning) or ``round(density * n)`` of every layer's ``n`` weights
(layerwise, "predefined" pruning), choosing those with the largest saliency. Weights that
are already pruned stay pruned. Ties are broken by position (the earlier weight, in module
order and then in the weight's flattened order, is kept), so the result is deterministic.

``prune_channels`` is structured L1 pruning of whole output channels (neurons, filters), for
the teaching notebook (Figure 2.6). ``sparsity_report`` tabulates what is left.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Iterable, Mapping

import pandas as pd
import torch
from torch import nn

from . import checks, masking
from .saliency import Saliency, resolve

__all__ = [
    "SCOPES",
    "EmptyLayerWarning",
    "check_density",
    "prune",
    "prune_channels",
    "sparsity_report",
]

SCOPES = ("global", "layerwise")


class EmptyLayerWarning(UserWarning):
    """Pruning removed every weight of a layer (the caveat of Figure 2.9)."""


def check_density(density: float, arg: str = "density") -> float:
    """Return ``density`` as a float if it is a real number in (0, 1]; else raise
    ``ValueError`` naming ``arg``, the value and the allowed range (NaN is refused too)."""
    return checks.real(density, arg, 0.0, 1.0, low_open=True)


def _layers(model: nn.Module, exclude: Iterable[str]) -> dict[str, nn.Module]:
    """The layers to prune, in module order: the masked ones minus ``exclude``. A model
    without masks first gets masks on every prunable layer that ``exclude`` spares; with
    ``exclude`` given, unmasked prunable layers it does not name get masks too."""
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


# Scores torch.kthvalue selects among on the CPU; other dtypes (unsigned beyond 8 bits) are
# sorted.
_SELECTABLE = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8,
               torch.int8, torch.int16, torch.int32, torch.int64)


def _top_sorted(scores: torch.Tensor, alive: torch.Tensor, k: int) -> torch.Tensor:
    """Flat boolean mask keeping the ``k`` largest ``scores`` among the ``alive`` positions,
    by a stable descending sort (equal scores -> the lower index wins)."""
    index = alive.nonzero().squeeze(1)
    order = torch.sort(scores[index], descending=True, stable=True).indices[:k]
    keep = torch.zeros_like(alive)
    keep[index[order]] = True
    return keep


def _top(scores: torch.Tensor, alive: torch.Tensor, k: int) -> torch.Tensor:
    """What :func:`_top_sorted` keeps. On the CPU the k-th largest score comes from a
    selection (``torch.kthvalue``), not a sort: every score above it is kept, then the
    lowest-indexed scores equal to it until ``k`` are kept: linear in the weights where a
    sort is not (``pruninglab bench prune`` times both on VGG19's 20 million
    weights). On a GPU, where a sort is fast, and for dtypes ``kthvalue`` lacks, it sorts."""
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
    """Prune ``model`` in place to ``density`` of its prunable weights.

    Args:
        model: any ``nn.Module``; masks are added to its Conv/Linear layers on first use.
        density: fraction of the prunable weights to keep, in (0, 1]. It counts every
            weight of the layers being pruned, pruned or not, so ``prune(m, 0.7)`` then
            ``prune(m, 0.49)`` is two 30% steps. Exactly ``round(density * N)`` are kept.
        scope: ``"global"`` (automatic: one threshold for the whole model; layers may end up
            with different densities, or empty) or ``"layerwise"`` (predefined: every layer
            keeps ``round(density * n)`` of its own ``n`` weights).
        saliency: ``"magnitude"``, ``"random"``, :func:`~pruninglab.core.saliency.snip` or any
            callable ``(model, layers) -> {name: scores}``; larger scores are kept.
        exclude: layer names or shell patterns to leave out (see :func:`_layers`): on a
            model without masks they get none; a masked layer named here keeps its mask.

    Returns:
        ``model``, with ``pruning_mask`` buffers updated and pruned weights zeroed.

    Raises:
        ValueError: ``density`` outside (0, 1] or NaN; a density above what is left
            (pruning never revives weights); unknown ``scope``; bad saliency output.

    Warns:
        EmptyLayerWarning: a layer lost its last weight (thesis Figure 2.9's caveat).
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
    """Boolean ``(C_out,)``: the ``max(1, round(density * C_out))`` output channels with the
    largest L1 norm of their (masked) weights; ties -> the lower index."""
    norms = (layer.weight * getattr(layer, masking.MASK)).abs().flatten(1).sum(1)
    k = max(1, round(density * len(norms)))
    keep = torch.zeros(len(norms), dtype=torch.bool, device=norms.device)
    keep[torch.sort(norms, descending=True, stable=True).indices[:k]] = True
    return keep


@torch.no_grad()
def prune_channels(model: nn.Module, density: float, exclude: Iterable[str] = (),
                   chain: bool = False) -> nn.Module:
    """Structured pruning (thesis Section 2.4.1, Figure 2.6): keep the
    ``max(1, round(density * C_out))`` output channels (rows of a Linear weight, filters of a
    Conv) with the largest L1 norm and mask the rest whole. Works in place, returns ``model``.

    Args:
        density: fraction of *channels* kept per layer, in (0, 1].
        exclude: as in :func:`prune`.
        chain: treat the pruned layers, in module order, as a plain chain where each feeds
            the next (an MLP, a conv stack ending in a Linear after flatten or global
            pooling). Then the last layer's outputs (the logits) are kept, and a removed
            channel also removes the next layer's weights that read it (Figure 2.6: a neuron
            goes with its inputs and outputs), so what is left is a smaller dense network;
            its weight density is about ``density**2`` in the inner layers. Without
            ``chain`` every layer loses output rows only, each on its own.

    Raises:
        ValueError: bad ``density``; with ``chain``, a layer whose input size is not a
            multiple of the previous layer's output channels.
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


def sparsity_report(model: nn.Module) -> pd.DataFrame:
    """Per-layer and total counts of the prunable weights, from the masks.

    A model without masks is reported as dense over all its Conv/Linear layers.

    Returns:
        A DataFrame indexed by layer name (last row ``"total"``) with columns ``shape``,
        ``weights``, ``kept``, ``pruned``, ``density`` (kept / weights) and ``compression``
        (weights / kept, the thesis's compression ratio; ``inf`` for an empty layer).

    Raises:
        ValueError: the model has no Conv/Linear layer.
    """
    layers = masking.masked_layers(model) or masking.prunable_layers(model)
    if not layers:
        raise ValueError("sparsity_report: the model has no Conv/Linear layer")
    rows = [{"layer": name, "shape": tuple(layers[name].weight.shape), "weights": weights,
             "kept": kept}
            for name, (kept, weights) in masking.kept_counts(model, layers).items()]
    total_w = sum(r["weights"] for r in rows)
    total_k = sum(r["kept"] for r in rows)
    rows.append({"layer": "total", "shape": (), "weights": total_w, "kept": total_k})
    df = pd.DataFrame(rows).set_index("layer")
    df["pruned"] = df["weights"] - df["kept"]
    df["density"] = df["kept"] / df["weights"]
    df["compression"] = [w / k if k else math.inf for w, k in zip(df["weights"], df["kept"])]
    return df
