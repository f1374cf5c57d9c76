"""Interleaved timing and ratios to a baseline measured in the same run."""

from __future__ import annotations

from pruninglab import timing

import pytest


def test_interleaved_times_every_variant_once_per_round_in_rotating_order():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = timing.interleaved(variants, rounds=3, steps=2, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    timed = calls[3:]  # after one warm-up call each
    assert timed[::2] == list("abc" "bca" "cab")


def test_interleaved_rejects_zero_rounds():
    with pytest.raises(ValueError, match="rounds"):
        timing.interleaved({"a": lambda: None}, rounds=0, steps=1, warmup=0)


def test_ratio_table_gives_medians_and_ratios_to_the_baseline():
    table = timing.ratio_table({"dense": [1.0, 2.0, 3.0], "other": [3.0, 3.0, 9.0]},
                               baseline="dense")
    assert table.loc["other", "ratio"] == pytest.approx(1.5)
    assert table.loc["dense", "median_ms"] == pytest.approx(2000.0)
    with pytest.raises(ValueError, match="baseline"):
        timing.ratio_table({"a": [1.0]}, baseline="b")
