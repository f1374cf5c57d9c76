"""`python -m pruninglab.bench` runs at a tiny size and prints its table (no timing checks)."""

from __future__ import annotations

import pytest

from pruninglab import bench

TINY = ["--input-size", "4", "--batch-size", "8", "--rounds", "2", "--steps", "1", "--warmup", "1"]


def test_masking_section_runs_at_a_tiny_size_and_prints_machine_and_ratios(capsys):
    assert bench.main(["masking", *TINY]) == 0
    out = capsys.readouterr().out
    assert "torch " in out and "logical cores" in out
    for variant in ("dense", "masked (ours)", "torch.nn.utils.prune hooks"):
        assert variant in out
    assert "median_ms" in out and "ratio" in out


def test_interleaved_times_every_variant_once_per_round_in_rotating_order():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = bench.interleaved(variants, rounds=3, steps=2, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    timed = calls[3:]  # after one warm-up call each
    assert timed[::2] == list("abc" "bca" "cab")


def test_interleaved_rejects_zero_rounds():
    with pytest.raises(ValueError, match="rounds"):
        bench.interleaved({"a": lambda: None}, rounds=0, steps=1, warmup=0)


def test_summarize_gives_ratios_to_the_baseline():
    table = bench.summarize({"dense": [1.0, 2.0, 3.0], "other": [3.0, 3.0, 9.0]}, baseline="dense")
    assert table.loc["other", "ratio"] == pytest.approx(1.5)
    assert table.loc["dense", "median_ms"] == pytest.approx(2000.0)


def test_unknown_section_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["nonsense"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
