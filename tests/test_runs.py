"""The run store: hashing, atomic JSON records with checksums, safe checkpoints, DataFrames."""

from __future__ import annotations

import pytest
import torch

from pruninglab import runs


def test_the_folder_is_named_by_kind_and_config_hash(tmp_path):
    run = runs.RunDir.open("gimp", {"a": 1, "b": [1, 2]}, tmp_path)
    assert run.path.name == f"gimp-{runs.config_hash({'b': [1, 2], 'a': 1})}"
    assert runs.config_hash({"a": 1}) != runs.config_hash({"a": 2})
    assert (run.path / "config.json").is_file() and (run.path / "environment.json").is_file()


def test_the_store_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNINGLAB_RUNS", str(tmp_path / "elsewhere"))
    run = runs.RunDir.open("x", {"a": 1})
    assert run.path.parent == tmp_path / "elsewhere"


def test_records_round_trip_and_stop_at_the_first_gap(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.write_record(0, {"level": 0, "acc": 0.5})
    run.write_record(1, {"level": 1, "acc": 0.25})
    run.write_record(3, {"level": 3, "acc": 0.125})
    assert run.records() == [{"level": 0, "acc": 0.5}, {"level": 1, "acc": 0.25}]


def test_writes_leave_no_temporary_files(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.write_record(0, {"v": 1})
    run.save_checkpoint(1, {"w": torch.ones(3)})
    assert sorted(p.name for p in run.path.iterdir()) == [
        "checkpoint_001.pt", "config.json", "environment.json", "record_000.json"]


def test_an_unparsable_record_warns_and_reads_as_missing(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.write_record(0, {"v": 1})
    (run.path / "record_000.json").write_text('{"index": 0, "rec')
    with pytest.warns(runs.CorruptRecordWarning):
        assert run.read_record(0) is None


class NotData:
    """An arbitrary object: unpickling it would run code, which weights_only=True forbids."""


def test_checkpoints_load_with_weights_only(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.save_checkpoint(0, {"w": torch.arange(4.0), "position": 7})
    state = run.load_checkpoint(0)
    assert torch.equal(state["w"], torch.arange(4.0)) and state["position"] == 7

    torch.save({"evil": NotData()}, run.path / "checkpoint_001.pt")  # weights_only must refuse
    with pytest.warns(runs.CorruptRecordWarning):
        assert run.load_checkpoint(1) is None


def test_a_different_config_under_the_same_folder_is_refused(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    (run.path / "config.json").write_text('{"a": 2}')
    with pytest.raises(ValueError, match="different config"):
        runs.RunDir.open("x", {"a": 1}, tmp_path)


def test_many_runs_load_as_one_dataframe(tmp_path):
    for seed in (0, 1):
        config = {"setup": {"seed": seed}, "method": {"method": "m"}}
        run = runs.RunDir.open("gimp", config, tmp_path)
        for level, density in enumerate((1.0, 0.5)):
            run.write_record(level, {"level": level, "density": density,
                                     "test_accuracy": 0.9 - level / 10, "layers": {"fc": density}})
    other = runs.RunDir.open("tom", {"x": 1}, tmp_path)
    other.write_record(0, {"level": 0, "density": 1.0})
    df = runs.load(tmp_path, kind="gimp")
    assert len(df) == 4
    assert sorted(df["setup.seed"].unique()) == [0, 1]
    assert list(df["compression"].round(6).unique()) == [1.0, 2.0]
    assert "layers.fc" in df
    assert len(runs.load([tmp_path, tmp_path / "missing"])) == 5
