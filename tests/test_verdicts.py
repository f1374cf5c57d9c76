"""One rule turns per-seed accuracies into verdicts: the interval of the difference (paired
where runs share seeds, Welch otherwise) against a tolerance band. The claim checks of
notebooks 05, 06 and 11 read gimp.run's rows with it."""

from __future__ import annotations

from pruninglab import verdicts

import math

import pandas as pd
import pytest
from scipy import stats

# Three planted differences (A minus B, per seed, in points): a clear gain, a clear loss,
# and a small gain inside the seed-to-seed noise. Every check must tell them apart.
GAIN, LOSS, NOISE = [2.0, 2.1, 1.9], [-2.0, -2.1, -1.9], [1.2, -0.8, 0.2]
CASES = [(GAIN, "reproduced"), (LOSS, "contradicted"), (NOISE, "inconclusive")]


def series(*values: float, seeds=None) -> pd.Series:
    return pd.Series(values, index=seeds or range(len(values)), dtype=float)


def test_a_paired_interval_matches_the_t_interval_of_the_per_seed_differences():
    a, b = series(94.0, 93.0, 95.0), series(93.0, 92.5, 93.5)
    c = verdicts.compare(a, b)
    d = [1.0, 0.5, 1.5]  # mean 1, standard deviation 0.5, t(0.975, 2) = 4.303
    half = 4.302653 * 0.5 / math.sqrt(3)
    assert c.kind == "paired" and c.seeds == 3
    assert c.difference == pytest.approx(sum(d) / 3)
    assert (c.low, c.high) == pytest.approx((1 - half, 1 + half), abs=1e-5)
    assert "[-0.24, +2.24] (95% paired t, n=3)" in str(c)


def test_runs_without_two_shared_seeds_get_welchs_interval():
    a, b = series(94.0, 93.0, seeds=[0, 1]), series(92.0, 91.0, 93.0, seeds=[2, 3, 4])
    c = verdicts.compare(a, b)
    va, vb = 0.5 / 2, 1.0 / 3  # sample variances over n
    df = (va + vb) ** 2 / (va**2 / 1 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert c.kind == "Welch" and c.seeds == 2
    assert (c.low, c.high) == pytest.approx((1.5 - half, 1.5 + half))


def test_one_seed_gives_no_interval_and_never_a_verdict_either_way():
    c = verdicts.compare(series(99.0), series(50.0))
    assert c.kind == "none" and math.isinf(c.low) and math.isinf(c.high)
    assert "too few seeds" in str(c)
    assert verdicts.better(series(99.0), series(50.0), 0.3).verdict == "inconclusive"
    assert verdicts.at_least(series(50.0), series(99.0), 0.3).verdict == "inconclusive"


def test_a_fixed_reference_gets_the_one_sample_interval():
    c = verdicts.compare(series(91.0, 92.0, 93.0), 90.0)
    assert c.kind == "one-sample" and c.difference == pytest.approx(2.0)
    assert verdicts.at_least(series(91.0, 92.0, 93.0), 90.0, 0.5).verdict == "reproduced"


@pytest.mark.parametrize("claim", ["better", "at least"])
@pytest.mark.parametrize("offsets, expected", CASES)
def test_better_and_at_least_tell_a_gain_a_loss_and_noise_apart(claim, offsets, expected):
    b = series(93.0, 92.0, 94.0)
    a = b + series(*offsets)
    judge = verdicts.better if claim == "better" else verdicts.at_least
    assert judge(a, b, tolerance=0.3).verdict == expected


def test_the_tolerance_band_separates_better_from_at_least():
    # a tight gain of 0.2 points: "matches or beats", but not "beats" by more than 0.3
    b = series(93.0, 92.0, 94.0)
    a = b + series(0.19, 0.2, 0.21)
    assert verdicts.better(a, b, 0.3).verdict == "inconclusive"
    assert verdicts.at_least(a, b, 0.3).verdict == "reproduced"
    assert verdicts.better(a, b, 0.1).verdict == "reproduced"
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        verdicts.better(a, b, -1)
    with pytest.raises(ValueError, match="claim must be"):
        verdicts.judge(verdicts.compare(a, b), 0.3, claim="worse")


def test_a_combined_claim_is_contradicted_by_one_part_and_reproduced_by_all():
    yes = verdicts.Judgement("reproduced")
    maybe, no = verdicts.Judgement("inconclusive"), verdicts.Judgement("contradicted")
    assert verdicts.combine([yes, yes]).verdict == "reproduced"
    assert verdicts.combine([yes, maybe]).verdict == "inconclusive"
    assert verdicts.combine([yes, maybe, no]).verdict == "contradicted"


@pytest.mark.parametrize("offsets, expected", CASES)
def test_a_ranking_applies_the_rule_to_each_adjacent_pair(offsets, expected):
    base = series(90.0, 89.0, 91.0)
    ordered = {name: base - i * series(*offsets) for i, name in enumerate("abcd")}
    found = verdicts.ranking(ordered, 0.3)
    assert found.verdict == expected and len(found.comparisons) == 3
    with pytest.raises(ValueError, match="not ranked"):
        verdicts.ranking(ordered, 0.3, ties={"z"})


def test_runs_that_share_seeds_are_compared_seed_by_seed():
    a = pd.Series([94.0, 90.0], index=[0, 1])
    b = pd.Series([93.0, 80.0, 99.0], index=[0, 5, 6])
    first, second = verdicts.paired(a, b)
    assert first.tolist() == [94.0] and second.tolist() == [93.0]


def _rows(method: str, accuracies: list[float], seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"method": method, "seed": seed, "level": range(len(accuracies)),
                         "test_accuracy": accuracies})


def _finals(planted: dict[str, list[float]], base=(0.93, 0.92, 0.94)) -> pd.DataFrame:
    """gimp.run rows whose last level is ``base`` plus the planted points, per method."""
    return pd.concat([_rows(m, [0.95, base[s] + offsets[s] / 100], seed=s)
                      for m, offsets in planted.items() for s in range(3)])


@pytest.mark.parametrize("offsets, expected", CASES)
def test_fine_tuning_worst_follows_the_planted_gap(offsets, expected):
    final = verdicts.final_accuracy(_finals(
        {"finetune": [0, 0, 0], "lr_rewinding": offsets,
         "weight_rewinding": [o + 0.5 for o in offsets]}))
    found = verdicts.finetune_worst(final, 0.3)
    assert found.verdict == expected and found.seeds == 3 and "paired t" in found.interval


@pytest.mark.parametrize("offsets, expected", CASES)
def test_lrr_at_least_swr_follows_the_planted_gap(offsets, expected):
    final = verdicts.final_accuracy(_finals(
        {"stable_weight_rewinding(20)": [0, 0, 0], "lr_rewinding": offsets}))
    assert verdicts.lrr_at_least_swr(final, 0.3).verdict == expected


@pytest.mark.parametrize("offsets, expected", CASES)
def test_the_early_rise_follows_the_planted_gain(offsets, expected):
    dense = (0.93, 0.92, 0.94)
    results = pd.concat([_rows("lr_rewinding", [dense[s], dense[s] + offsets[s] / 100,
                                                dense[s] - 0.01, 0.90], seed=s)
                         for s in range(3)])
    assert verdicts.early_rise(results, tolerance=0.3).verdict == expected


@pytest.mark.parametrize("offsets, expected", CASES)
def test_the_width_claim_follows_the_planted_difference_of_gaps(offsets, expected):
    narrow = _finals({"lr_rewinding": [0, 0, 0], "sgimp(75%)": [0.5, 0.5, 0.5]})
    wide = _finals({"lr_rewinding": [0, 0, 0], "sgimp(75%)": [0.5 + o for o in offsets]})
    found = verdicts.width_gap(wide, narrow, ("wrn", "resnet"), tolerance=0.3)
    assert found.verdict == expected
    assert verdicts.width_gap(wide, wide.iloc[:2], ("a", "b"), 0.3).verdict == "not run yet"


def test_the_claims_read_the_last_level_of_each_run():
    results = pd.concat([_rows(m, [0.94, 0.93, final], seed=s)
                         for m, final in [("finetune", 0.90), ("lr_rewinding", 0.935)]
                         for s in (0, 1)])
    final = verdicts.final_accuracy(results)
    assert final["finetune"].tolist() == pytest.approx([90.0, 90.0])
    table = verdicts.table([verdicts.finetune_worst(final, 0.3)])
    assert list(table.columns) == ["claim", "ours", "verdict", "seeds", "interval"]
    assert verdicts.finetune_worst({"finetune": series(90.0)}, 0.3).verdict == "not run yet"
    with pytest.raises(ValueError, match="seed"):
        verdicts.final_accuracy(results.drop(columns="seed"))
