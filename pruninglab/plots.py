"""The thesis's figures as functions of run records (matplotlib; each returns its Axes).

* :func:`accuracy_vs_compression` -- Figures 3.1-3.9: test accuracy against compression
  ratio on a log axis; median over seeds with the min-max spread shaded.
* :func:`accuracy_vs_parameters` -- Figure 1.1: accuracy against remaining parameters.
* :func:`lr_schedule` -- Figure 3.13: learning rate against iteration.
* :func:`layer_densities` -- per-layer density bars (Figure 2.9's point).
* :func:`learning_curves` -- loss/accuracy against step from training callbacks.
* :func:`weight_histogram` -- the distribution of (unpruned) weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

from . import masking
from .schedules import Schedule

__all__ = [
    "accuracy_vs_compression",
    "accuracy_vs_parameters",
    "lr_schedule",
    "rewinding_trace",
    "layer_densities",
    "learning_curves",
    "weight_histogram",
    "summarize",
]


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(7, 4.2))[1]


def summarize(df: pd.DataFrame, by: str = "method", x: str = "compression",
              y: str = "test_accuracy") -> pd.DataFrame:  # fmt: skip
    """Median, min and max of ``y`` over seeds, for every ``by`` group and level.

    Returns:
        Columns ``by, level, x (median), median, low, high, n`` -- one row per group and level.
    """
    keys = [by, "level"] if "level" in df else [by, x]
    g = df.groupby(keys, sort=True)
    out = pd.DataFrame({x: g[x].median(), "median": g[y].median(), "low": g[y].min(),
                        "high": g[y].max(), "n": g[y].count()}).reset_index()  # fmt: skip
    return out


def accuracy_vs_compression(
    df: pd.DataFrame,
    by: str = "method",
    metric: str = "test_accuracy",
    ax=None,
    reference: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    dense: float | None = None,
    title: str | None = None,
):
    """Accuracy (%) against compression ratio (log axis), one line per ``by`` value.

    Args:
        df: run records (:func:`pruninglab.runs.load` or :func:`pruninglab.gimp.run`) with
            ``compression``, ``level``, ``metric`` and ``by`` columns; rows of several seeds
            are summarized by their median with the min-max range shaded.
        reference: optional thesis curves ``{label: (compressions, accuracies %)}`` drawn dashed.
        dense: a dense accuracy (fraction) drawn as a horizontal line.
    """
    ax = _ax(ax)
    stats = summarize(df, by=by, y=metric)
    for label, part in stats.groupby(by, sort=False):
        line, = ax.plot(part["compression"], 100 * part["median"], marker="o", ms=3, label=str(label))
        if (part["n"] > 1).any():
            ax.fill_between(part["compression"], 100 * part["low"], 100 * part["high"],
                            color=line.get_color(), alpha=0.2, lw=0)  # fmt: skip
    for label, (xs, ys) in (reference or {}).items():
        ax.plot(xs, ys, ls="--", marker="x", ms=4, color="gray", label=f"{label} (thesis)")
    if dense is not None:
        ax.axhline(100 * dense, color="black", lw=0.8, ls=":", label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio (dense / remaining weights)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def accuracy_vs_parameters(df: pd.DataFrame, by: str = "model", metric: str = "test_accuracy",
                           ax=None, title: str | None = None):  # fmt: skip
    """Figure 1.1: accuracy (%) against remaining prunable weights (log axis); connected
    dots are one architecture pruned to several densities, the first dot dense."""
    ax = _ax(ax)
    for label, part in df.groupby(by, sort=False):
        g = part.groupby("level")
        xs, ys = g["kept"].median(), 100 * g[metric].median()
        ax.plot(xs, ys, marker="o", ms=3, label=str(label))
        ax.scatter(xs.iloc[:1], ys.iloc[:1], s=60, facecolors="none", edgecolors="black")
    ax.set_xscale("log")
    ax.set_xlabel("remaining weights (Conv/Linear kernels)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", title="circle = dense")
    if title:
        ax.set_title(title)
    return ax


def lr_schedule(schedules: Mapping[str, Schedule], steps: int | None = None, ax=None):
    """Figure 3.13: each schedule's learning rate against iteration (log y axis)."""
    ax = _ax(ax)
    for label, s in schedules.items():
        n = steps or s.steps
        xs = np.arange(0, n + 1, max(1, n // 2000))
        ax.step(xs, [s(int(x)) for x in xs], where="post", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("iteration (schedule position)")
    ax.set_ylabel("learning rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def rewinding_trace(configs: Mapping[str, object], schedule: Schedule, levels: int = 4, ax=None):
    """The learning rate each GIMP config trains with, over its first ``levels`` levels laid
    end to end (x: cumulative training steps). Shows schedule rewinding at a glance.

    Args:
        configs: ``{label: GIMPConfig}``.
        schedule: the learning-rate schedule the training reads.
    """
    from .gimp import schedule_trace

    ax = _ax(ax)
    for i, (label, config) in enumerate(configs.items()):
        xs, ys, done = [], [], 0
        for _, first, last in schedule_trace(config, levels):
            positions = np.linspace(first, last, 200, endpoint=False).astype(int)
            xs.extend(done + positions - first)
            ys.extend(schedule(int(p)) for p in positions)
            done += last - first
        ax.step(xs, np.array(ys) * (1.0 + 0.04 * i), where="post", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("training steps since the start (all levels)")
    ax.set_ylabel("learning rate (lines offset slightly)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def layer_densities(source: nn.Module | Mapping[str, float] | Mapping[str, Mapping[str, float]],
                    ax=None, title: str | None = None):  # fmt: skip
    """Bars of each layer's density: from a masked model, a ``{layer: density}`` dict (a
    record's ``layers``), or ``{label: {layer: density}}`` for grouped bars."""
    ax = _ax(ax)
    if isinstance(source, nn.Module):
        source = {n: float(m.float().mean()) for n, m in masking.get_masks(source).items()}
    groups = source if source and isinstance(next(iter(source.values())), Mapping) else {"": source}
    layers = list(next(iter(groups.values())))
    width = 0.8 / len(groups)
    for i, (label, dens) in enumerate(groups.items()):
        xs = np.arange(len(layers)) + i * width
        ax.bar(xs, [100 * dens[n] for n in layers], width=width, label=label or None)
    ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers, rotation=60, ha="right",
                  fontsize="small")  # fmt: skip
    ax.set_ylabel("density (%)")
    if len(groups) > 1:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def learning_curves(history: pd.DataFrame | Sequence[Mapping], x: str = "step",
                    ys: Sequence[str] = ("loss",), ax=None, title: str | None = None):  # fmt: skip
    """Lines of the ``ys`` columns of ``history`` (rows from training callbacks) against ``x``."""
    ax = _ax(ax)
    frame = pd.DataFrame(history)
    for y in ys:
        if y in frame:
            ax.plot(frame[x], frame[y], label=y)
    ax.set_xlabel(x)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def weight_histogram(model: nn.Module, ax=None, bins: int = 100, label: str | None = None,
                     only_kept: bool = True):  # fmt: skip
    """Histogram of all prunable weights (only the unpruned ones if ``only_kept``)."""
    ax = _ax(ax)
    layers = masking.masked_layers(model) or masking.prunable_layers(model)
    values = []
    for layer in layers.values():
        w = layer.weight.detach().flatten().cpu()
        mask = getattr(layer, masking.MASK, None)
        if only_kept and mask is not None:
            w = w[mask.flatten().cpu()]
        values.append(w)
    ax.hist(torch.cat(values).numpy(), bins=bins, alpha=0.6, label=label)
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    if label:
        ax.legend(fontsize="small")
    return ax
