"""The thesis's figures as functions of run records (matplotlib; each returns the Axes it
drew on).

* :func:`accuracy_vs_compression` -- Figures 3.1-3.9: test accuracy against compression
  ratio on a log axis; median over seeds with the min-max spread shaded.
* :func:`accuracy_vs_parameters` -- Figure 1.1: accuracy against remaining parameters.
* :func:`lr_schedule` -- Figure 3.13: learning rate against iteration.
* :func:`rewinding_trace` -- the learning rate each GIMP config trains with, level after
  level: schedule rewinding at a glance.
* :func:`layer_densities` -- per-layer density bars (Figure 2.9's point).
* :func:`learning_curves` -- loss/accuracy against step from training callbacks.
* :func:`weight_histogram` -- the distribution of (unpruned) weights.
* :func:`logit_histograms` -- Training Optimal Masks: histograms of the mask logits during
  mask training (Section 3.3.1).
* :func:`mask_training` -- Training Optimal Masks: expected density and the top-t mask's
  accuracy against mask-training step.
* :func:`accuracy_vs_compute` -- accuracy against the training steps a method needed
  (Section 3.3.1, Figure 3.10); :func:`compute_table` is the table it draws.
* :func:`label_line_ends` -- names lines at their right ends, in the margin, without
  overlaps (instead of a legend when lines are many and grey).
* :func:`mask_panels` -- Figure 3.11 for real networks: a masked layer's weights and mask
  per model.

:func:`median_range` is the median/min/max table behind :func:`accuracy_vs_compression`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core import masking
from ..core.schedules import Schedule
from ..experiments import gimp, tom

__all__ = [
    "accuracy_vs_compression",
    "same_density",
    "accuracy_vs_parameters",
    "lr_schedule",
    "rewinding_trace",
    "layer_densities",
    "learning_curves",
    "weight_histogram",
    "logit_histograms",
    "mask_training",
    "accuracy_vs_compute",
    "compute_table",
    "mask_panels",
    "median_range",
    "label_line_ends",
]


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(7, 4.2))[1]


def median_range(df: pd.DataFrame, by: str = "method", x: str = "compression",
              y: str = "test_accuracy") -> pd.DataFrame:
    """Median, min and max of ``y`` over seeds, for every ``by`` group and level.

    Returns:
        Columns ``by, level, x (median), median, low, high, n`` -- one row per group and level.
    """
    keys = [by, "level"] if "level" in df else [by, x]
    g = df.groupby(keys, sort=True)
    out = pd.DataFrame({x: g[x].median(), "median": g[y].median(), "low": g[y].min(),
                        "high": g[y].max(), "n": g[y].count()}).reset_index()
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
        df: run records (:func:`pruninglab.experiments.runs.load` or
            :func:`pruninglab.experiments.gimp_runs.run`) with
            ``compression``, ``level``, ``metric`` and ``by`` columns; rows of several seeds
            are summarized by their median with the min-max range shaded.
        reference: optional thesis curves ``{label: (compressions, accuracies %)}`` drawn dashed.
        dense: a dense accuracy (fraction) drawn as a horizontal line.
    """
    ax = _ax(ax)
    stats = median_range(df, by=by, y=metric)
    for label, part in stats.groupby(by, sort=False):
        (line,) = ax.plot(part["compression"], 100 * part["median"], marker="o", ms=3,
                          label=str(label))
        if (part["n"] > 1).any():
            ax.fill_between(part["compression"], 100 * part["low"], 100 * part["high"],
                            color=line.get_color(), alpha=0.2, lw=0)
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


def label_line_ends(ax, ends: Mapping[str, tuple[float, float]], min_gap: float = 0.07,
                    color: str = "0.4", fontsize: str = "small") -> list:
    """Name lines at their right ends: each label sits in the margin right of the axes,
    level with its line's last point, pushed up or down just enough that no two labels
    overlap, and a thin line joins it to the point. Call it after everything is drawn on
    ``ax`` (it reads the final y limits).

    Args:
        ax: the Axes the lines are on.
        ends: ``{label: (x, y)}``, each line's last point in data coordinates.
        min_gap: the least vertical distance between two labels, as a fraction of the
            axes' height (0.07 fits small text in a figure 4 inches high).

    Returns:
        The annotations, in the order of ``ends``.
    """
    if not ends:
        return []
    ax.get_ylim()  # settles autoscaling before data are mapped to axes fractions
    to_axes = ax.transScale + ax.transLimits
    heights = {label: float(to_axes.transform(point)[1]) for label, point in ends.items()}
    order = sorted(heights, key=heights.get)
    placed = [min(max(heights[label], 0.0), 1.0) for label in order]
    for i in range(1, len(placed)):  # push up so that labels are min_gap apart
        placed[i] = max(placed[i], placed[i - 1] + min_gap)
    placed[-1] = min(placed[-1], 1.0)
    for i in range(len(placed) - 2, -1, -1):  # then down from the top, within the axes
        placed[i] = min(placed[i], placed[i + 1] - min_gap)
    where = dict(zip(order, placed))
    return [ax.annotate(label, xy=ends[label], xycoords="data", xytext=(1.03, where[label]),
                        textcoords="axes fraction", va="center", color=color,
                        fontsize=fontsize, annotation_clip=False,
                        arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5,
                                    "shrinkA": 1, "shrinkB": 2})
            for label in ends]


def accuracy_vs_parameters(df: pd.DataFrame, by: str = "model", metric: str = "test_accuracy",
                           ax=None, title: str | None = None):
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
    return _lr_axes(ax, "iteration (schedule position)", "learning rate")


def _lr_axes(ax, xlabel: str, ylabel: str):
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
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
    ax = _ax(ax)
    for i, (label, config) in enumerate(configs.items()):
        xs, ys, done = [], [], 0
        for _, first, last in gimp.schedule_trace(config, levels):
            positions = np.linspace(first, last, 200, endpoint=False).astype(int)
            xs.extend(done + positions - first)
            ys.extend(schedule(int(p)) for p in positions)
            done += last - first
        ax.step(xs, np.array(ys) * (1.0 + 0.04 * i), where="post", label=label)
    return _lr_axes(ax, "training steps since the start (all levels)",
                    "learning rate (lines offset slightly)")


def layer_densities(source: nn.Module | Mapping[str, float] | Mapping[str, Mapping[str, float]],
                    ax=None, title: str | None = None):
    """Bars of each layer's density: from a masked model, a ``{layer: density}`` dict (a
    record's ``layers``), or ``{label: {layer: density}}`` for grouped bars."""
    ax = _ax(ax)
    if isinstance(source, nn.Module):
        source = masking.layer_densities(source)
    groups = source if source and isinstance(next(iter(source.values())), Mapping) else {"": source}
    layers = list(next(iter(groups.values())))
    width = 0.8 / len(groups)
    for i, (label, dens) in enumerate(groups.items()):
        xs = np.arange(len(layers)) + i * width
        ax.bar(xs, [100 * dens[n] for n in layers], width=width, label=label or None)
    ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers, rotation=60, ha="right",
                  fontsize="small")
    ax.set_ylabel("density (%)")
    if len(groups) > 1:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def learning_curves(history: pd.DataFrame | Sequence[Mapping], x: str = "step",
                    ys: Sequence[str] = ("loss",), ax=None, title: str | None = None):
    """Lines of the ``ys`` columns of ``history`` (rows from training callbacks) against ``x``."""
    frame = pd.DataFrame(history)
    missing = [c for c in (x, *ys) if c not in frame]
    if missing:
        raise ValueError(f"history has no column(s) {missing}; it has {list(frame.columns)}")
    ax = _ax(ax)
    for y in ys:
        ax.plot(frame[x], frame[y], label=y)
    ax.set_xlabel(x)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def weight_histogram(model: nn.Module, ax=None, bins: int = 100, label: str | None = None,
                     only_kept: bool = True):
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


# --------------------------------------------------------------------------------------
# Training Optimal Masks (Section 3.3.1), mask modifications (Figure 3.11), compute
# --------------------------------------------------------------------------------------


def _threshold_edge(counts: np.ndarray, bins: np.ndarray, density: float) -> float:
    """The bin edge above which (about) ``density`` of the histogram's values lie."""
    above = np.cumsum(counts[::-1])[::-1]  # values in this bin or higher
    k = int(np.searchsorted(-above, -density * counts.sum(), side="right"))
    return float(bins[max(0, k - 1)])


def logit_histograms(history: Sequence[Mapping], bins: Sequence[float] | None = None,
                     target_density: float | None = None, columns: int = 5,
                     axes=None):
    """Histograms of the mask logits ``b`` during mask training, one panel per recorded
    step, counts on a log axis (Training Optimal Masks, Section 3.3.1).

    Args:
        history: the ``history`` of :func:`pruninglab.experiments.tom_runs.run`'s ``masks`` row:
            dicts with ``step``, ``expected_density`` and ``histogram`` (counts over ``bins``).
        bins: the bin edges (default :data:`pruninglab.experiments.tom.HIST_BINS`, [-15, 15]).
        target_density: if given, each panel marks the bin edge above which that share of
            the logits lies -- where the top-t evaluation mask cuts.
        columns: panels per row.
        axes: a flat sequence of at least ``len(history)`` Axes (default: a new figure).

    Returns:
        The Axes used, one per step.
    """
    bins = np.asarray(tom.HIST_BINS if bins is None else bins, dtype=float)
    if not history:
        raise ValueError("history is empty: the masks phase recorded no steps")
    n = len(history)
    if axes is None:
        rows = -(-n // columns)
        width = min(n, columns)
        _, grid = plt.subplots(rows, width, figsize=(2.4 * width, 2.1 * rows), sharex=True,
                               sharey=True, squeeze=False, layout="constrained")
        axes = grid.flatten()
        for ax in axes[n:]:
            ax.set_visible(False)
    axes = list(axes)[:n]
    for ax, point in zip(axes, history):
        counts = np.asarray(point["histogram"], dtype=float)
        if len(counts) != len(bins) - 1:
            raise ValueError(f"a histogram has {len(counts)} counts but bins has {len(bins)} edges")
        ax.stairs(np.where(counts > 0, counts, np.nan), bins, fill=True, alpha=0.7)
        ax.set_yscale("log")
        if target_density is not None:
            ax.axvline(_threshold_edge(counts, bins, target_density), color="C3", lw=1, ls="--")
        ax.set_title(f"step {point['step']}: E[density] {point['expected_density']:.3f}",
                     fontsize="small")
        ax.tick_params(labelsize="x-small")
    axes[0].set_ylabel("count (log)")
    axes[-1].set_xlabel("logit b")
    return axes


def mask_training(history: Sequence[Mapping], target_density: float | None = None, ax=None):
    """Expected density ``mean(sigmoid(b))`` (left, log axis) and the test accuracy of the
    top-t mask on the frozen weights (right) against mask-training step.

    Returns:
        ``(ax, twin)``: the density Axes and the accuracy Axes.
    """
    ax = _ax(ax)
    frame = pd.DataFrame(list(history))
    ax.plot(frame["step"], frame["expected_density"], "o-", color="C0", ms=3,
            label="expected density E[σ(b)]")
    if target_density is not None:
        ax.axhline(target_density, color="C0", ls=":", lw=1,
                   label=f"target t = {target_density:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("mask-training step")
    ax.set_ylabel("expected density", color="C0")
    twin = ax.twinx()
    twin.plot(frame["step"], 100 * frame["test_accuracy"], "s-", color="C1", ms=3,
              label="test accuracy, top-t mask")
    twin.set_ylabel("test accuracy (%), frozen weights", color="C1")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], fontsize="small", loc="center right")
    ax.grid(True, alpha=0.3)
    return ax, twin


def same_density(density: float, digits: int = 3) -> float:
    """``density`` rounded to ``digits`` significant digits: the same target reached by
    different methods (a level ``K**n``, a one-shot target, TOM's top-t mask) differs only
    in the last digits, and this makes them one key."""
    return float(f"{density:.{digits}g}")


def compute_table(results: pd.DataFrame, train_steps: int, metric: str = "test_accuracy",
                  digits: int = 3) -> pd.DataFrame:
    """Accuracy beside the compute that bought it: one row per method and density.

    Args:
        results: rows with ``method``, ``seed``, ``density``, ``total_steps`` and ``metric``
            (a fraction) -- TOM's ``final`` rows, :func:`pruninglab.experiments.at_init.run`
            rows, GIMP rows after :func:`pruninglab.experiments.gimp_runs.cumulative_steps`,
            concatenated.
        train_steps: T, the unit of the ``steps / T`` column.
        metric: the accuracy column.
        digits: densities that agree to this many significant digits are one density (the
            same target reached by different methods differs only in the last digits).

    Returns:
        Columns ``method, density, accuracy`` (mean over seeds, %), ``std`` (%, sample std;
        NaN for one seed), ``seeds``, ``steps`` (training steps, forward-backward passes) and
        ``steps / T``; sorted by density (highest first), then steps.
    """
    missing = {"method", "seed", "density", "total_steps", metric} - set(results)
    if missing:
        raise ValueError(f"results lacks the columns {sorted(missing)}")
    if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps < 1:
        raise ValueError(f"train_steps must be a positive integer, got {train_steps!r}")
    frame = results.assign(density=results["density"].map(lambda d: same_density(d, digits)))
    g = frame.groupby(["method", "density"], sort=False)
    table = pd.DataFrame({"accuracy": 100 * g[metric].mean(), "std": 100 * g[metric].std(),
                          "seeds": g["seed"].nunique(),
                          "steps": g["total_steps"].mean()}).reset_index()
    table["steps / T"] = table["steps"] / train_steps
    return table.sort_values(["density", "steps"], ascending=[False, True], ignore_index=True)


def accuracy_vs_compute(table: pd.DataFrame, axes=None,
                        reference: Mapping[str, float] | None = None):
    """One panel per density: each method's accuracy (mean ± std, %) against the training
    steps it needed, in units of T (a table of :func:`compute_table`).

    Args:
        table: columns ``method, density, accuracy, std, steps / T``.
        axes: one Axes per density (default: a new row of panels).
        reference: optional ``{label: accuracy %}`` drawn as dotted horizontal lines on
            every panel (e.g. the dense network).

    Returns:
        The Axes, one per density (highest density first).
    """
    densities = sorted(table["density"].unique(), reverse=True)
    if axes is None:
        _, axes = plt.subplots(1, len(densities), figsize=(4.2 * len(densities), 3.6),
                               sharey=True, squeeze=False, layout="constrained")
        axes = axes[0]
    methods = list(dict.fromkeys(table["method"]))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for ax, density in zip(axes, densities):
        part = table[table["density"] == density]
        # methods at equal compute (TOM and one-shot: 2 T) side by side, not on top of
        # each other: a small offset on the log axis, the tick stays at the true value
        rank = part.groupby("steps / T").cumcount()
        count = part.groupby("steps / T")["method"].transform("size")
        for (_, row), i, k in zip(part.iterrows(), rank, count):
            x = row["steps / T"] * math.exp(0.05 * (i - (k - 1) / 2))
            ax.errorbar(x, row["accuracy"], yerr=np.nan_to_num(row["std"]), fmt="o",
                        color=colors[row["method"]], label=row["method"], capsize=3)
        for label, value in (reference or {}).items():
            ax.axhline(value, color="k", lw=0.8, ls=":", label=label)
        ax.set_xscale("log")
        ticks = sorted(part["steps / T"].unique())
        ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks], fontsize="small")
        ax.minorticks_off()
        ax.set_xlabel("training steps / T (log)")
        ax.set_title(f"density {density:.3g} ({1 / density:.0f}x compression)", fontsize="medium")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[-1].legend(fontsize="x-small", loc="lower right")
    return list(axes)


def mask_panels(models: Mapping[str, nn.Module], layer: str | None = None, crop: int = 20,
                origin: tuple[int, int] = (0, 0), image_shape: tuple[int, int] | None = None,
                axes=None):
    """Figure 3.11 for real networks: one column per model (e.g. a ticket before and after
    each modification of Table 3.1), showing one masked layer.

    Row 1: a ``crop x crop`` block of the layer's weight matrix (rows: output units,
    columns: inputs) starting at ``origin``; kept weights in a diverging colour map, pruned
    ones light grey. Row 2 (with ``image_shape``, for a first
    layer on images): how many kept weights leave each input pixel, as an image -- a
    lottery ticket's mask concentrates on the pixels that matter, a shuffled one does not.

    Args:
        models: ``{label: masked model}``.
        layer: the masked layer's name (default: the first).
        crop: side of the weight block drawn.
        origin: ``(row, column)`` of the block's top-left corner (for a first layer on
            images, column ``r * W + c`` is pixel ``(r, c)``).
        image_shape: ``(H, W)`` of the input, with ``H * W`` equal to the layer's inputs.
        axes: a ``(rows, len(models))`` array of Axes (default: a new figure).

    Returns:
        The Axes array.
    """
    if not models:
        raise ValueError("models is empty")
    rows = 2 if image_shape is not None else 1
    if axes is None:
        _, axes = plt.subplots(rows, len(models), figsize=(2.3 * len(models), 2.4 * rows),
                               squeeze=False, layout="constrained")
    axes = np.asarray(axes).reshape(rows, len(models))
    blocks, coverage = {}, {}
    for label, model in models.items():
        layers = masking.masked_layers(model)
        if not layers:
            raise ValueError(f"model {label!r} has no masks")
        name = layer or next(iter(layers))
        if name not in layers:
            raise ValueError(f"layer must be one of {list(layers)}, got {name!r}")
        weight = layers[name].weight.detach().cpu().flatten(1)
        mask = getattr(layers[name], masking.MASK).detach().cpu().flatten(1)
        r, c = origin
        if not (0 <= r < weight.shape[0] and 0 <= c < weight.shape[1]):
            raise ValueError(f"origin must lie within the layer's {tuple(weight.shape)} weight "
                             f"matrix, got {origin!r}")
        block = torch.where(mask, weight, torch.nan)[r:r + crop, c:c + crop]
        blocks[label] = block.numpy()
        if image_shape is not None:
            if weight.shape[1] != image_shape[0] * image_shape[1]:
                raise ValueError(f"image_shape {image_shape} does not match the layer's "
                                 f"{weight.shape[1]} inputs")
            coverage[label] = masking.kept_per_input(mask).reshape(image_shape).numpy()
    scale = max(float(np.nanpercentile(np.abs(b), 95)) if np.isfinite(b).any() else 1.0
                for b in blocks.values())
    cmap = plt.get_cmap("coolwarm").with_extremes(bad="0.9")
    top = max((float(c.max()) for c in coverage.values()), default=1.0)
    for j, label in enumerate(models):
        ax = axes[0, j]
        ax.imshow(blocks[label], cmap=cmap, vmin=-scale, vmax=scale, interpolation="nearest")
        ax.set_title(label, fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        if rows == 2:
            ax = axes[1, j]
            ax.imshow(coverage[label], cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel(f"weights {crop}x{crop}\n(grey: pruned)", fontsize="small")
    if rows == 2:
        axes[1, 0].set_ylabel("kept weights\nper input pixel", fontsize="small")
    return axes
