"""The thesis's figures as functions: each draws what its records say (checked on the
drawn artists), and the tables behind them."""

from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")

from pruninglab import gimp, masking, models, plots, pruning, schedules, shuffle  # noqa: E402
from pruninglab.core.train import TrainConfig  # noqa: E402
from pruninglab.experiments.config import Setup  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tiny_ticket(digits, tmp_path_factory):
    setup = Setup("mlp", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    store = tmp_path_factory.mktemp("store")
    return setup, shuffle.ticket(setup, 0.3, data=digits, store=store, progress=False)


def _levels(method: str, accuracies: list[float], seed: int = 0) -> pd.DataFrame:
    densities = [0.7**i for i in range(len(accuracies))]
    return pd.DataFrame({"method": method, "seed": seed, "level": range(len(accuracies)),
                         "density": densities, "compression": [1 / d for d in densities],
                         "test_accuracy": accuracies})


def test_median_range_gives_the_median_and_spread_over_seeds_per_level():
    df = pd.concat([_levels("a", [0.9, 0.8], seed=s) for s in range(3)], ignore_index=True)
    df.loc[df["seed"] == 2, "test_accuracy"] += 0.03
    table = plots.median_range(df)
    row = table[(table["method"] == "a") & (table["level"] == 1)].iloc[0]
    assert (row["median"], row["low"], row["high"], row["n"]) == pytest.approx((0.8, 0.8, 0.83, 3))


def test_accuracy_vs_compression_draws_one_line_per_method_in_percent():
    df = pd.concat([_levels("a", [0.9, 0.85, 0.8]), _levels("b", [0.9, 0.7, 0.5])])
    ax = plots.accuracy_vs_compression(df, dense=0.9)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["a"].get_ydata()) == pytest.approx([90.0, 85.0, 80.0])
    assert list(lines["b"].get_xdata()) == pytest.approx([1.0, 1 / 0.7, 1 / 0.49])
    assert ax.get_xscale() == "log"


def test_layer_densities_draw_one_bar_per_masked_layer():
    model = pruning.prune(models.create("lenet300", 1, 10, 8), 0.2, scope="layerwise")
    ax = plots.layer_densities(model)
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([100 * d for d in masking.layer_densities(model).values()])
    assert heights == pytest.approx([20.0, 20.0, 20.0], abs=0.1)


def test_rewinding_trace_restarts_the_schedule_only_where_the_preset_rewinds():
    schedule = schedules.resnet(100)
    ax = plots.rewinding_trace({"FT": gimp.finetune(100, 0.3), "LRR": gimp.lr_rewinding(100, 0.3)},
                               schedule, levels=2)
    lines = {line.get_label(): line for line in ax.get_lines()}
    ft, lrr = lines["FT"].get_ydata(), lines["LRR"].get_ydata()
    assert ft[-1] == pytest.approx(0.001, rel=0.1) and lrr[-1] == pytest.approx(0.001, rel=0.1)
    assert max(lrr[len(lrr) // 2:]) > 10 * max(ft[len(ft) // 2:])  # LRR is back at 0.1


def test_compute_table_merges_seeds_at_one_density_and_counts_steps_in_units_of_T():
    rows = pd.DataFrame({
        "method": ["tom", "tom", "snip", "tom"], "seed": [0, 1, 0, 0],
        "density": [0.0403529, 0.0403531, 0.0403530, 0.1],
        "test_accuracy": [0.90, 0.92, 0.80, 0.95], "total_steps": [135, 135, 100, 135],
    })
    table = plots.compute_table(rows, train_steps=100)
    assert table["density"].tolist() == [0.1, 0.0404, 0.0404]
    tom_row = table[(table["method"] == "tom") & (table["density"] == 0.0404)].iloc[0]
    assert tom_row["accuracy"] == pytest.approx(91.0)
    assert tom_row["std"] == pytest.approx(np.std([90, 92], ddof=1))
    assert tom_row["seeds"] == 2 and tom_row["steps / T"] == pytest.approx(1.35)
    assert table.loc[1, "method"] == "snip"  # the cheaper method first within a density
    with pytest.raises(ValueError, match="total_steps"):
        plots.compute_table(rows.drop(columns="total_steps"), 100)
    with pytest.raises(ValueError, match="train_steps"):
        plots.compute_table(rows, 0)


def test_mask_panels_draw_kept_weights_and_their_input_coverage(tiny_ticket):
    _, net = tiny_ticket
    shuffled = shuffle.shuffle_masks_and_weights(copy.deepcopy(net), 0)
    axes = plots.mask_panels({"ticket": net, "(B)": shuffled}, crop=8, image_shape=(8, 8))
    assert axes.shape == (2, 2)
    first = next(iter(masking.masked_layers(net).values()))
    mask = getattr(first, masking.MASK)
    block = axes[0, 0].get_images()[0].get_array()
    assert np.isnan(np.ma.filled(block, np.nan)).sum() == int((~mask[:8, :8]).sum())  # pruned
    coverage = axes[1, 0].get_images()[0].get_array()
    assert coverage.sum() == int(mask.sum()) and coverage.shape == (8, 8)
    with pytest.raises(ValueError, match="image_shape"):
        plots.mask_panels({"ticket": net}, image_shape=(7, 7))
    moved = plots.mask_panels({"ticket": net}, crop=4, origin=(2, 3))[0, 0].get_images()[0]
    assert np.array_equal(np.isnan(np.ma.filled(moved.get_array(), np.nan)),
                          (~mask[2:6, 3:7]).numpy())
    with pytest.raises(ValueError, match="origin"):
        plots.mask_panels({"ticket": net}, origin=(0, 64))


def _history(n=4):
    bins = np.array([0.0, 1.0, 2.0, 3.0])
    return bins, [{"step": 10 * (i + 1), "expected_density": 0.5 / (i + 1), "test_accuracy": 0.5,
                   "histogram": [50, 30, 20]} for i in range(n)]


@pytest.mark.parametrize("density, edge", [(0.2, 2.0), (0.5, 1.0), (0.3, 1.0), (1.0, 0.0)])
def test_logit_histograms_mark_where_the_top_t_mask_cuts(density, edge):
    bins, history = _history()
    axes = plots.logit_histograms(history, bins, target_density=density, columns=3)
    assert len(axes) == 4 and all(ax.get_yscale() == "log" for ax in axes)
    assert axes[0].get_lines()[0].get_xdata()[0] == edge
    assert "step 40" in axes[3].get_title()


def test_mask_training_and_compute_plots_draw_one_point_per_record():
    _, history = _history()
    ax, twin = plots.mask_training(history, target_density=0.04)
    assert list(ax.get_lines()[0].get_ydata()) == [h["expected_density"] for h in history]
    assert len(twin.get_lines()[0].get_xdata()) == 4
    table = pd.DataFrame({"method": ["tom", "snip", "tom"], "density": [0.1, 0.1, 0.04],
                          "accuracy": [90.0, 85.0, 88.0], "std": [np.nan, 1.0, 0.5],
                          "steps / T": [1.35, 1.0, 1.35]})
    axes = plots.accuracy_vs_compute(table)
    assert len(axes) == 2 and "density 0.1" in axes[0].get_title()


def test_methods_at_equal_compute_are_drawn_side_by_side_with_the_tick_at_their_steps():
    table = pd.DataFrame({"method": ["tom", "one-shot", "iterative"], "density": [0.01] * 3,
                          "accuracy": [90.0, 90.0, 93.0], "std": [0.5, 0.5, 0.2],
                          "steps / T": [2.0, 2.0, 14.0]})
    ax = plots.accuracy_vs_compute(table)[0]
    x = {c.get_label(): c.lines[0].get_xdata()[0] for c in ax.containers}
    assert x["tom"] < 2.0 < x["one-shot"] and x["one-shot"] / x["tom"] < 1.1
    assert x["iterative"] == 14.0  # alone at its compute: not moved
    assert list(ax.get_xticks()) == [2.0, 14.0]
    plt.close(ax.figure)


def test_line_end_labels_that_would_overlap_are_spread_apart_inside_the_axes_height():
    figure, ax = plt.subplots(figsize=(6, 4))
    for k in range(5):
        ax.plot([0, 1], [0, 1 + 0.001 * k])  # five ends at nearly the same height
    ax.plot([0, 1], [0, 0.0])  # one far below: keeps its own height
    ends = {f"line {k}": (1.0, 1 + 0.001 * k) for k in range(5)} | {"low": (1.0, 0.0)}
    labels = plots.label_line_ends(ax, ends, min_gap=0.06)
    heights = {a.get_text(): a.get_position()[1] for a in labels}
    top = sorted(v for k, v in heights.items() if k != "low")
    assert all(b - a >= 0.06 - 1e-9 for a, b in zip(top, top[1:]))
    assert min(heights.values()) >= 0 and max(heights.values()) <= 1
    low_fraction = (ax.transScale + ax.transLimits).transform((1.0, 0.0))[1]
    assert heights["low"] == pytest.approx(low_fraction)
    assert all(a.get_position()[0] > 1 for a in labels)  # in the right margin
    plt.close(figure)


def test_same_density_makes_one_key_of_targets_that_differ_in_the_last_digits():
    assert plots.same_density(0.7**18) == plots.same_density(0.001628413597910447 * (1 + 1e-12))
    assert plots.same_density(0.0403529) == 0.0404
    assert plots.same_density(0.0403529, digits=2) == 0.04
