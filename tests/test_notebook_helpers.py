"""Helpers behind notebooks 07-08: compute beside accuracy (TOM vs one-shot vs iterative),
Table 3.1's summary and claims, the ticket, and the figures of mask training and masks."""

from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pruninglab import gimp, masking, plots, schedules, shuffle, tom  # noqa: E402
from pruninglab.config import Setup  # noqa: E402
from pruninglab.train import TrainConfig  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_cumulative_steps_charges_each_level_all_the_training_before_it():
    records = pd.DataFrame({"method": ["wr"] * 3 + ["one_shot"] * 2,
                            "level": [0, 1, 2, 0, 1], "steps": [10, 10, 10, 10, 10]})  # fmt: skip
    out = tom.cumulative_steps(records)
    assert out["total_steps"].tolist() == [10, 20, 30, 10, 20]
    assert "total_steps" not in records  # a copy
    with pytest.raises(ValueError, match="level 0"):
        tom.cumulative_steps(records.iloc[1:])
    with pytest.raises(ValueError, match="steps"):
        tom.cumulative_steps(records.drop(columns="steps"))


def test_compute_table_merges_seeds_at_one_density_and_counts_steps_in_units_of_T():
    rows = pd.DataFrame({
        "method": ["tom", "tom", "snip", "tom"], "seed": [0, 1, 0, 0],
        "density": [0.0403529, 0.0403531, 0.0403530, 0.1],
        "test_accuracy": [0.90, 0.92, 0.80, 0.95], "total_steps": [135, 135, 100, 135],
    })  # fmt: skip
    table = tom.compute_table(rows, train_steps=100)
    assert table["density"].tolist() == [0.1, 0.0404, 0.0404]
    tom_row = table[(table["method"] == "tom") & (table["density"] == 0.0404)].iloc[0]
    assert tom_row["accuracy"] == pytest.approx(91.0)
    assert tom_row["std"] == pytest.approx(np.std([90, 92], ddof=1))
    assert tom_row["seeds"] == 2 and tom_row["steps / T"] == pytest.approx(1.35)
    assert table.loc[1, "method"] == "snip"  # the cheaper method first within a density
    with pytest.raises(ValueError, match="total_steps"):
        tom.compute_table(rows.drop(columns="total_steps"), 100)
    with pytest.raises(ValueError, match="train_steps"):
        tom.compute_table(rows, 0)


def _table_rows(means: dict[str, float], seeds=(0, 1, 2), spread: float = 0.002):
    return pd.DataFrame([{"modification": name, "seed": s,
                          "test_accuracy": mean + spread * (s - 1)}
                         for name, mean in means.items() for s in seeds])  # fmt: skip


THESIS_LIKE = {name: mean / 100 for name, (mean, _) in shuffle.THESIS_TABLE_3_1.items()}


def test_summarize_gives_table_3_1_with_differences_to_the_unmodified_ticket():
    summary = shuffle.summarize(_table_rows(THESIS_LIKE))
    assert list(summary.index) == list(shuffle.MODIFICATIONS)
    assert summary.loc["none", "difference"] == pytest.approx(0.0)
    assert summary.loc["reinitialize", "difference"] == pytest.approx(98.259 - 98.624)
    assert summary.loc["reinitialize", "thesis difference"] == pytest.approx(-0.365)
    assert summary["std"].iloc[0] == pytest.approx(0.2)  # sample std of ±0.2 points
    assert (summary["rank"] == summary["thesis rank"]).all()
    with pytest.raises(ValueError, match="none"):
        shuffle.summarize(_table_rows({"reinitialize": 0.9}))


def test_claims_hold_for_the_thesis_numbers_and_fail_for_a_reversed_table():
    assert all(shuffle.claims(shuffle.summarize(_table_rows(THESIS_LIKE))).values())
    names = list(shuffle.MODIFICATIONS)
    reversed_means = dict(zip(names, sorted(THESIS_LIKE.values())))
    verdict = shuffle.claims(shuffle.summarize(_table_rows(reversed_means)))
    assert not verdict["every modification lowers the accuracy"]
    assert not verdict["keeping the topology beats changing it"]
    assert not verdict["the order of the five rows is the thesis's"]
    one_seed = shuffle.claims(shuffle.summarize(_table_rows(THESIS_LIKE, seeds=(0,))))
    assert one_seed["shuffling within masks and reinitializing do not differ significantly"] is None


@pytest.fixture(scope="module")
def tiny_ticket(digits, tmp_path_factory):
    setup = Setup("mlp", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    store = tmp_path_factory.mktemp("store")
    return setup, shuffle.ticket(setup, 0.3, data=digits, store=store, progress=False)


def test_the_ticket_is_the_initialization_under_weight_rewindings_final_mask(digits, tiny_ticket):
    setup, net = tiny_ticket
    assert masking.density(net) == pytest.approx(0.3, abs=1e-3)
    init = setup.build_model(digits)
    for name, layer in masking.masked_layers(net).items():
        mask = getattr(layer, masking.MASK)
        assert torch.equal(layer.weight, init.get_submodule(name).weight * mask)
    assert len(gimp.weight_rewinding(10, 0.3).densities()) == 5  # K**4 = 0.24 < 0.3 clamps


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
                          (~mask[2:6, 3:7]).numpy())  # fmt: skip
    with pytest.raises(ValueError, match="origin"):
        plots.mask_panels({"ticket": net}, origin=(0, 64))


def _history(n=4):
    bins = np.array([0.0, 1.0, 2.0, 3.0])
    return bins, [{"step": 10 * (i + 1), "expected_density": 0.5 / (i + 1), "test_accuracy": 0.5,
                   "histogram": [50, 30, 20]} for i in range(n)]  # fmt: skip


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
                          "steps / T": [1.35, 1.0, 1.35]})  # fmt: skip
    axes = plots.accuracy_vs_compute(table)
    assert len(axes) == 2 and "density 0.1" in axes[0].get_title()
