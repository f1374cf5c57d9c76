"""The one experiment runner: stored runs come back without work, interrupted ones continue
from the latest trusted checkpoint, damaged ones are recomputed, and nothing trains before
the store is known to be writable."""

from __future__ import annotations

from pruninglab import runner, runs

import errno
import subprocess
import sys
import time

import pytest
import torch


def counting_experiment(calls: list, stages: int = 4) -> runner.Experiment:
    """A toy experiment: stage i adds i + 1 to a tensor; ``calls`` records each stage run."""

    def stage(index: int, state: dict) -> tuple[dict, dict | None]:
        calls.append(index)
        value = state["value"] + (index + 1)
        record = {"stage": index, "total": float(value.sum())}
        return record, {"value": value, "position": state["position"] + 1}

    return runner.Experiment(
        kind="toy", config={"kind": "toy", "stages": stages},
        stages=[f"stage {i}" for i in range(stages)],
        start=lambda: {"value": torch.zeros(3), "position": 0}, stage=stage,
        columns={"method": "toy", "seed": 0})


def test_a_finished_run_comes_back_without_running_a_stage(tmp_path):
    calls = []
    first = runner.run(counting_experiment(calls), tmp_path, progress=False)
    assert calls == [0, 1, 2, 3]
    assert list(first.columns[:2]) == ["method", "seed"]
    assert first["total"].tolist() == [3.0, 9.0, 18.0, 30.0]
    seen = []
    again = runner.run(counting_experiment(calls), tmp_path, progress=False, on_record=seen.append)
    assert calls == [0, 1, 2, 3] and again.equals(first)
    assert [r["stage"] for r in seen] == [0, 1, 2, 3]


def test_a_run_missing_its_last_records_continues_from_the_checkpoint_before_them(tmp_path):
    calls = []
    reference = runner.run(counting_experiment(calls), tmp_path / "a", progress=False)
    runner.run(counting_experiment([]), tmp_path / "b", progress=False)
    run = next(runs.iter_runs(tmp_path / "b", "toy"))
    for index in (2, 3):
        (run.path / f"record_{index:03d}.json").unlink()
    calls.clear()
    seen = []
    again = runner.run(counting_experiment(calls), tmp_path / "b", progress=False,
                       on_record=seen.append)
    assert calls == [2, 3] and again.equals(reference)
    assert [r["stage"] for r in seen] == [0, 1, 2, 3]


def test_a_damaged_checkpoint_recomputes_the_stage_before_it(tmp_path):
    runner.run(counting_experiment([]), tmp_path, progress=False)
    run = next(runs.iter_runs(tmp_path, "toy"))
    (run.path / "record_003.json").unlink()
    run.save_checkpoint(3, {"value": torch.zeros(5), "position": 3})  # wrong shape
    calls = []
    with pytest.warns(runs.CorruptRecordWarning, match="wrong thing"):
        again = runner.run(counting_experiment(calls), tmp_path, progress=False)
    assert calls == [2, 3] and again["total"].tolist() == [3.0, 9.0, 18.0, 30.0]


def test_state_at_loads_a_trusted_checkpoint_and_recomputes_a_damaged_one(tmp_path):
    runner.run(counting_experiment([]), tmp_path, progress=False)
    calls = []
    state = runner.state_at(counting_experiment(calls), 2, tmp_path, progress=False)
    assert calls == [] and state["value"].tolist() == [3.0, 3.0, 3.0]
    run = next(runs.iter_runs(tmp_path, "toy"))
    (run.path / "checkpoint_002.pt").write_bytes(b"garbage")
    with pytest.warns(runs.CorruptRecordWarning):
        state = runner.state_at(counting_experiment(calls), 2, tmp_path, progress=False)
    assert calls == [1] and state["value"].tolist() == [3.0, 3.0, 3.0]
    assert len(run.records()) == 4  # the later records are kept
    assert runner.state_at(counting_experiment(calls), 0, tmp_path)["position"] == 0
    with pytest.raises(ValueError, match="index"):
        runner.state_at(counting_experiment(calls), 4, tmp_path)


def test_folders_named_like_records_are_ignored_until_a_record_must_go_there(tmp_path):
    runner.run(counting_experiment([]), tmp_path, progress=False)
    run = next(runs.iter_runs(tmp_path, "toy"))
    (run.path / "record_004.json").mkdir()  # past the last stage: never read
    calls = []
    assert len(runner.run(counting_experiment(calls), tmp_path, progress=False)) == 4
    (run.path / "record_002.json").unlink()
    (run.path / "record_002.json").mkdir()  # where stage 2's record must be written
    with pytest.raises(IsADirectoryError, match="record_002.json is a folder"):
        runner.run(counting_experiment(calls), tmp_path, progress=False)
    assert calls == [2]


def test_a_new_run_whose_inputs_are_bad_leaves_no_folder(tmp_path):
    def bad_start() -> dict:
        raise ValueError("exclude=['*'] leaves no prunable layer")

    experiment = counting_experiment([])
    experiment.start = bad_start
    with pytest.raises(ValueError, match="no prunable layer"):
        runner.run(experiment, tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_a_new_run_in_a_store_that_cannot_be_written_says_so(tmp_path, read_only):
    read_only(tmp_path)
    with pytest.raises(PermissionError, match="run store .* is not writable"):
        runner.run(counting_experiment([]), tmp_path, progress=False)


def test_fetch_only_neither_runs_nor_creates_a_folder(tmp_path):
    calls = []
    assert runner.run(counting_experiment(calls), tmp_path, fetch_only=True) is None
    assert not any(tmp_path.iterdir()) and calls == []
    runner.run(counting_experiment([]), tmp_path, progress=False)
    run = next(runs.iter_runs(tmp_path, "toy"))
    (run.path / "record_003.json").unlink()
    assert runner.run(counting_experiment(calls), tmp_path, fetch_only=True) is None
    assert calls == []


def test_an_unfinished_run_in_a_store_that_cannot_be_written_fails_before_any_stage(
        tmp_path, read_only):
    runner.run(counting_experiment([]), tmp_path, progress=False)
    runner.run(counting_experiment([], stages=2), tmp_path, progress=False)
    unfinished = next(r for r in runs.iter_runs(tmp_path, "toy") if r.config["stages"] == 4)
    (unfinished.path / "record_003.json").unlink()
    read_only(tmp_path)
    calls = []
    with pytest.raises(PermissionError, match="not writable"):
        runner.run(counting_experiment(calls), tmp_path, progress=False)
    assert calls == []
    finished = runner.run(counting_experiment(calls, stages=2), tmp_path, progress=False)
    assert len(finished) == 2 and calls == []  # a finished run reads from a read-only store


# A toy run of three stages in a process of its own, which says what it trains.
SAME_RUN_ELSEWHERE = """
import sys, time, torch
from pruninglab import runner

def stage(index, state):
    time.sleep(0.2)
    print(f"trained stage {index}", flush=True)
    return {"stage": index}, {"value": state["value"] + 1}

experiment = runner.Experiment(kind="toy", config={"kind": "toy", "stages": 3},
                               stages=["a", "b", "c"], start=lambda: {"value": torch.zeros(1)},
                               stage=stage)
print("records", runner.run(experiment, sys.argv[1], progress=False)["stage"].tolist())
"""


def test_two_processes_computing_the_same_run_train_each_stage_once(tmp_path):
    run_dir = runs.RunDir.open("toy", {"kind": "toy", "stages": 3}, tmp_path / "store")
    logs = [tmp_path / f"process{i}.log" for i in range(2)]
    with run_dir.lock():  # held here while both start: both must wait for it
        processes = [subprocess.Popen([sys.executable, "-c", SAME_RUN_ELSEWHERE,
                                       str(tmp_path / "store")], stdout=log.open("w"),
                                      stderr=subprocess.STDOUT) for log in logs]
        deadline = time.monotonic() + 120
        while not all("waiting for it to finish" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            assert all(p.poll() is None for p in processes), [log.read_text() for log in logs]
            time.sleep(0.1)
    for process in processes:
        assert process.wait(timeout=120) == 0
    said = [log.read_text() for log in logs]
    assert all("another process is computing the run" in text for text in said)
    assert all("records [0, 1, 2]" in text for text in said)
    trained = sorted(line for text in said for line in text.splitlines()
                     if line.startswith("trained"))
    assert trained == ["trained stage 0", "trained stage 1", "trained stage 2"]


def test_a_store_whose_disk_refuses_locks_warns_and_computes_without_one(tmp_path,
                                                                         monkeypatch):
    def no_locks(handle, operation):  # NFS without its lock service answers so
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runs.fcntl, "lockf", no_locks)
    calls = []
    with pytest.warns(RuntimeWarning, match="cannot be locked .No locks available.; two"):
        runner.run(counting_experiment(calls), tmp_path, progress=False)
    assert calls == [0, 1, 2, 3]
