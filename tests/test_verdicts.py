"""One rule turns per-seed accuracies into verdicts; the claim checks of notebooks 05, 06 and
11 read gimp.run's rows with it."""

from __future__ import annotations

from pruninglab import verdicts

import pandas as pd
import pytest


def series(*values: float) -> pd.Series:
    return pd.Series(values, index=range(len(values)), dtype=float)


def test_better_needs_a_gap_beyond_the_noise_in_either_direction():
    assert verdicts.better(series(94.0), series(93.0), tolerance=0.3) == "reproduced"
    assert verdicts.better(series(93.0), series(94.0), tolerance=0.3) == "contradicted"
    assert verdicts.better(series(93.2), series(93.0), tolerance=0.3) == "inconclusive"
    # a spread over seeds of 1 point widens the allowance past a 0.8-point gap
    assert verdicts.better(series(93.0, 95.0, 94.4), series(93.4, 93.5, 93.6),
                           tolerance=0.3) == "inconclusive"


def test_at_least_is_contradicted_only_beyond_the_noise():
    assert verdicts.at_least(series(93.0), series(93.2), tolerance=0.3) == "reproduced"
    assert verdicts.at_least(series(92.0), series(93.2), tolerance=0.3) == "contradicted"


def test_runs_that_share_seeds_are_compared_seed_by_seed():
    a = pd.Series([94.0, 90.0], index=[0, 1])
    b = pd.Series([93.0, 80.0, 99.0], index=[0, 5, 6])
    first, second = verdicts.paired(a, b)
    assert first.tolist() == [94.0] and second.tolist() == [93.0]


def _rows(method: str, accuracies: list[float], seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"method": method, "seed": seed, "level": range(len(accuracies)),
                         "test_accuracy": accuracies})


def test_a_slightly_negative_early_gain_is_inconclusive_not_reproduced():
    results = pd.concat([_rows("lr_rewinding", [0.940, 0.939, 0.938, 0.93]),
                         _rows("finetune", [0.940, 0.95, 0.95, 0.90])])
    found = verdicts.early_rise(results, tolerance=0.3)
    assert found.verdict == "inconclusive" and "(-0.10)" in found.ours
    results = pd.concat([_rows("lr_rewinding", [0.94, 0.95, 0.94, 0.93])])
    assert verdicts.early_rise(results, tolerance=0.3).verdict == "reproduced"


def test_the_claims_read_the_last_level_of_each_run():
    results = pd.concat([_rows(m, [0.94, 0.93, final], seed=s)
                         for m, final in [("finetune", 0.90), ("lr_rewinding", 0.935),
                                          ("weight_rewinding", 0.93),
                                          ("stable_weight_rewinding(20)", 0.93)]
                         for s in (0, 1)])
    final = verdicts.final_accuracy(results)
    assert final["finetune"].tolist() == pytest.approx([90.0, 90.0])
    assert verdicts.finetune_worst(final, 0.3).verdict == "reproduced"
    assert verdicts.lrr_at_least_swr(final, 0.3).verdict == "reproduced"
    table = verdicts.table([verdicts.finetune_worst(final, 0.3)])
    assert list(table.columns) == ["claim", "ours", "verdict"]
    assert verdicts.finetune_worst({"finetune": series(90.0)}, 0.3).verdict == "not run yet"
    with pytest.raises(ValueError, match="seed"):
        verdicts.final_accuracy(results.drop(columns="seed"))


def test_the_width_claim_compares_the_gap_of_the_wider_network_with_the_narrower():
    wide = pd.concat([_rows("lr_rewinding", [0.9, 0.90]), _rows("sgimp(75%)", [0.9, 0.93])])
    narrow = pd.concat([_rows("lr_rewinding", [0.9, 0.90]), _rows("sgimp(75%)", [0.9, 0.905])])
    found = verdicts.width_gap(wide, narrow, ("wrn", "resnet"), tolerance=0.3)
    assert found.verdict == "reproduced" and "+3.00 (wrn)" in found.ours
    assert verdicts.width_gap(narrow, wide, ("a", "b"), 0.3).verdict == "contradicted"
    assert verdicts.width_gap(wide, wide.iloc[:2], ("a", "b"), 0.3).verdict == "not run yet"
