"""Hostile and careless run stores: records and checkpoints copied from another run's folder
or renamed to another stage are recomputed, not used; numbers that cannot occur are
refused; links the store did not make are not followed, a FIFO does not block it, and
messages say what is wrong (a record that cannot be read is not called damaged; a folder
name that is not UTF-8 lists)."""

from __future__ import annotations

from pruninglab import notebooks, runner, runs
from pruninglab.experiments import catalog
from pruninglab.scale import cli

import contextlib
import errno
import hashlib
import json
import os
import signal
import warnings

import pytest
import torch


def toy(calls: list, offset: float = 0.0, stages: int = 4) -> runner.Experiment:
    """Stage i adds i + 1 (+ ``offset``) to a tensor; ``calls`` records each stage run."""

    def stage(index: int, state: dict) -> tuple[dict, dict | None]:
        calls.append(index)
        value = state["value"] + (index + 1 + offset)
        record = {"stage": index, "test_accuracy": float(value.sum()), "test_loss": 1.0}
        return record, {"value": value}

    return runner.Experiment(
        kind="toy", config={"kind": "toy", "stages": stages, "offset": offset},
        stages=[f"stage {i}" for i in range(stages)], start=lambda: {"value": torch.zeros(3)},
        stage=stage, columns={"method": "toy", "seed": 0})


def folder(experiment: runner.Experiment, store) -> runs.RunDir:
    return runs.RunDir(runs.RunDir.path_for(experiment.kind, experiment.config, store),
                       experiment.config)


@contextlib.contextmanager
def within(seconds: int):
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""
    def alarm(signum, frame):
        raise TimeoutError(f"took more than {seconds} s: it hangs")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def rewrite_record(path, edit) -> None:
    """Edit a stored record's body and recompute its checksum, as a careful hand would."""
    body = json.loads(path.read_text())
    body.pop("sha256")
    edit(body)
    body["sha256"] = hashlib.sha256(runs._canonical(body).encode()).hexdigest()
    path.write_text(json.dumps(body))


# --------------------------------------------------------------------------------------
# Trust: a record or checkpoint belongs to its run and stage
# --------------------------------------------------------------------------------------


def test_records_copied_from_another_runs_folder_are_recomputed_not_used(tmp_path):
    mine, other = toy([], offset=0.0), toy([], offset=10.0)
    reference = runner.run(toy([]), tmp_path / "reference", progress=False)
    runner.run(mine, tmp_path, progress=False)
    runner.run(other, tmp_path, progress=False)
    for index in (1, 2, 3):  # another seed's results, copied by hand
        name = f"record_{index:03d}.json"
        (folder(mine, tmp_path).path / name).write_bytes(
            (folder(other, tmp_path).path / name).read_bytes())
    calls = []
    with pytest.warns(runs.CorruptRecordWarning, match="belongs to another run"):
        again = runner.run(toy(calls), tmp_path, progress=False)
    assert calls == [1, 2, 3]
    assert again.equals(reference)


def test_a_record_renamed_to_another_stage_is_not_that_stages_record(tmp_path):
    experiment = toy([])
    runner.run(experiment, tmp_path, progress=False)
    run = folder(experiment, tmp_path)
    (run.path / "record_001.json").replace(run.path / "record_002.json")
    with pytest.warns(runs.CorruptRecordWarning, match="stage 2"):
        assert run.read_record(2) is None


def test_a_checkpoint_copied_from_another_run_is_not_trusted(tmp_path):
    mine, other = toy([]), toy([], offset=10.0)
    runner.run(mine, tmp_path, progress=False)
    runner.run(other, tmp_path, progress=False)
    (folder(mine, tmp_path).path / "checkpoint_002.pt").write_bytes(
        (folder(other, tmp_path).path / "checkpoint_002.pt").read_bytes())
    with pytest.warns(runs.CorruptRecordWarning, match="belongs to another run"):
        assert folder(mine, tmp_path).load_checkpoint(2) is None


def test_a_checkpoint_with_nan_weights_and_a_valid_checksum_is_recomputed(tmp_path):
    reference = runner.run(toy([]), tmp_path / "reference", progress=False)
    experiment = toy([])
    runner.run(experiment, tmp_path, progress=False)
    run = folder(experiment, tmp_path)
    run.save_checkpoint(2, {"value": torch.full((3,), float("nan"))})  # its checksum holds
    for index in (2, 3):
        (run.path / f"record_{index:03d}.json").unlink()
    calls = []
    with pytest.warns(runs.CorruptRecordWarning, match="NaN or infinite"):
        again = runner.run(toy(calls), tmp_path, progress=False)
    assert calls == [1, 2, 3]  # from checkpoint 1, the last one that can be trusted
    assert again.equals(reference)


def test_a_checkpoint_written_by_the_previous_format_is_recomputed_with_its_reason(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    state = {"w": torch.ones(2)}
    torch.save({"format": "pruninglab-checkpoint/1", "sha256": runs._digest(state),
                "state": state}, run.path / "checkpoint_001.pt")
    with pytest.warns(runs.CorruptRecordWarning, match="older pruninglab"):
        assert run.load_checkpoint(1) is None


def test_a_record_that_names_no_run_is_recomputed_with_its_reason(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.write_record(0, {"test_accuracy": 0.5})
    rewrite_record(run.path / "record_000.json", lambda body: body.pop("config_hash"))
    with pytest.warns(runs.CorruptRecordWarning, match="names no run"):
        assert run.read_record(0) is None


def test_every_packaged_record_is_tied_to_its_run():
    from pruninglab.experiments import reproduction

    store = reproduction.packaged_results("quick")
    with warnings.catch_warnings():
        warnings.simplefilter("error", runs.CorruptRecordWarning)
        table = catalog.table(store)
    assert table["status"].isin(["finished", "interrupted"]).all()  # nothing distrusted
    assert (table["status"] == "finished").sum() > 150


# --------------------------------------------------------------------------------------
# Numbers that cannot occur
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_record_holding_a_number_that_cannot_occur_is_refused(written, tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.write_record(0, {"test_accuracy": 0.5, "test_loss": 1.0})
    path = run.path / "record_000.json"  # the checksum holds: a hand that recomputed it
    rewrite_record(path, lambda body: body["record"].update(test_accuracy=json.loads(written)))
    if written == "1e400":  # reads as inf
        path.write_text(path.read_text().replace("Infinity", written))
    with pytest.warns(runs.CorruptRecordWarning, match="test_accuracy'\\] = (nan|-?inf)"):
        assert run.read_record(0) is None


def test_a_hand_edit_to_nan_with_a_recomputed_checksum_names_the_number(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.write_record(0, {"test_accuracy": 0.5, "history": [{"test_accuracy": 0.5}]})
    rewrite_record(run.path / "record_000.json",
                   lambda body: body["record"]["history"][0].update(test_accuracy=float("nan")))
    with pytest.warns(runs.CorruptRecordWarning,
                      match=r"record\['history'\]\[0\]\['test_accuracy'\] = nan"):
        assert run.read_record(0) is None


def test_a_record_file_larger_than_any_record_is_not_read(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    with open(run.path / "record_000.json", "wb") as f:
        f.truncate(runs.MAX_JSON_BYTES + 1)  # sparse: GBs would be as cheap to make
    with pytest.warns(runs.CorruptRecordWarning, match="more than the store's files can be"):
        assert run.read_record(0) is None


def test_a_diverged_loss_and_an_empty_running_mean_are_stored_as_they_are(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    record = {"test_loss": float("inf"), "train_loss": float("nan"), "test_accuracy": 0.1,
              "train_accuracy_running": float("nan"), "compression": float("inf")}
    run.write_record(0, record)
    got = run.read_record(0)
    assert got["test_loss"] == float("inf") and got["train_loss"] != got["train_loss"]
    assert got["compression"] == float("inf")


def test_a_record_with_a_nan_accuracy_is_not_written(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    with pytest.raises(ValueError, match=r"record\['test_accuracy'\] = nan"):
        run.write_record(0, {"test_accuracy": float("nan")})
    assert not (run.path / "record_000.json").exists()


# --------------------------------------------------------------------------------------
# Links the store did not make, and what is not a regular file
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_run_folder_that_is_a_link_is_refused_and_nothing_is_written_through_it(
        target_exists, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    if target_exists:
        elsewhere.mkdir()
    experiment = toy([])
    store = tmp_path / "store"
    store.mkdir()
    folder(experiment, store).path.symlink_to(elsewhere)
    with pytest.raises(OSError, match="is a symbolic link") as caught:
        runner.run(experiment, store, progress=False)
    assert folder(experiment, store).path.name in str(caught.value)
    assert not elsewhere.exists() or list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(target_exists, tmp_path):
    experiment = toy([], stages=2)
    runs.RunDir.open(experiment.kind, experiment.config, tmp_path)
    target = tmp_path.parent / f"{tmp_path.name}-outside"
    if target_exists:
        target.write_text("someone's file")
    (folder(experiment, tmp_path).path / ".lock").symlink_to(target)
    with pytest.raises(OSError, match="lock file .* is a symbolic link"):
        runner.run(experiment, tmp_path, progress=False)
    assert (target.read_text() == "someone's file") if target_exists else not target.exists()


def test_a_record_that_is_a_link_is_not_read_and_its_target_not_overwritten(tmp_path):
    experiment = toy([], stages=2)
    runner.run(experiment, tmp_path / "other", progress=False)
    outside = folder(experiment, tmp_path / "other").path / "record_001.json"
    before = outside.read_bytes()
    run = runs.RunDir.open(experiment.kind, experiment.config, tmp_path)
    (run.path / "record_000.json").symlink_to(outside)
    with pytest.warns(runs.CorruptRecordWarning, match="symbolic link"):
        runner.run(experiment, tmp_path, progress=False)
    assert outside.read_bytes() == before
    assert not (run.path / "record_000.json").is_symlink()  # replaced by the store's own


def test_a_checkpoint_that_is_a_link_is_not_loaded(tmp_path):
    experiment = toy([], stages=3)
    runner.run(experiment, tmp_path / "other", progress=False)
    outside = folder(experiment, tmp_path / "other").path / "checkpoint_001.pt"
    run = runs.RunDir.open(experiment.kind, experiment.config, tmp_path)
    (run.path / "checkpoint_001.pt").symlink_to(outside)  # the right run's, but not here
    with pytest.warns(runs.CorruptRecordWarning, match="symbolic link"):
        assert run.load_checkpoint(1) is None


def test_a_config_json_that_is_a_link_is_refused(tmp_path):
    experiment = toy([])
    path = folder(experiment, tmp_path).path
    path.mkdir(parents=True)
    (tmp_path / "config-elsewhere.json").write_text(json.dumps(experiment.config))
    (path / "config.json").symlink_to(tmp_path / "config-elsewhere.json")
    with pytest.raises(OSError, match="config.json is a symbolic link"):
        runs.RunDir.open(experiment.kind, experiment.config, tmp_path)


def test_a_fifo_named_like_a_store_file_does_not_block_anything(tmp_path):
    experiment, other = toy([], stages=2), toy([], offset=1.0, stages=2)
    runner.run(experiment, tmp_path, progress=False)
    runner.run(other, tmp_path, progress=False)
    run = folder(experiment, tmp_path)
    (run.path / "record_001.json").unlink()
    os.mkfifo(run.path / "record_001.json")
    (folder(other, tmp_path).path / "config.json").unlink()
    os.mkfifo(folder(other, tmp_path).path / "config.json")
    with within(20):
        table = catalog.table(tmp_path).set_index("run")
        assert table.loc[run.path.name, "status"].endswith("(record 1: it is not a regular "
                                                           "file)")
        assert table.loc[folder(other, tmp_path).path.name, "status"].startswith("unknown")
        with pytest.raises(OSError, match="config.json: it is not a regular file"):
            runner.run(other, tmp_path, progress=False)


def test_runs_ls_lists_a_run_folder_linking_to_the_root_as_refused_without_walking_it(
        tmp_path, capsys):
    experiment = toy([], stages=2)
    runner.run(experiment, tmp_path, progress=False)
    (tmp_path / "gimp-0123456789").symlink_to("/")
    with within(20):
        assert cli.main(["runs", "ls", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "refused (a symbolic link to /)" in out and "2 runs" in out


@pytest.mark.parametrize("force", [False, True])
def test_notebooks_copy_refuses_a_link_in_dest_and_writes_nothing(force, tmp_path):
    first = sorted(notebooks.packaged_folder().glob("*.ipynb"))[0].name
    outside = tmp_path / "outside.ipynb"
    outside.write_text("someone's notebook")
    dest = tmp_path / "course"
    dest.mkdir()
    (dest / first).symlink_to(outside)
    with pytest.raises(OSError, match=f"{first} is a symbolic link"):
        notebooks.copy(dest, force=force)
    assert outside.read_text() == "someone's notebook"
    assert [p.name for p in dest.iterdir()] == [first]


def test_notebooks_copy_through_a_link_is_one_line_from_the_command(tmp_path, capsys):
    first = sorted(notebooks.packaged_folder().glob("*.ipynb"))[0].name
    (tmp_path / first).symlink_to(tmp_path / "missing.ipynb")
    assert cli.main(["notebooks", "copy", str(tmp_path), "--force"]) == 1
    err = capsys.readouterr().err
    assert "is a symbolic link" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "missing.ipynb").exists()


def test_notebooks_copy_refuses_a_fifo_named_like_a_notebook_without_blocking(tmp_path):
    first = sorted(notebooks.packaged_folder().glob("*.ipynb"))[0].name
    os.mkfifo(tmp_path / first)
    with within(20), pytest.raises(FileExistsError, match="not a file"):
        notebooks.copy(tmp_path)


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


def test_a_record_that_cannot_be_read_is_called_unreadable_not_damaged(tmp_path, monkeypatch):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.write_record(0, {"test_accuracy": 0.5})
    target, real_open = str(run.path / "record_000.json"), os.open

    def refusing_open(path, *args, **kwargs):  # root reads any file: a refusal is staged
        if os.fspath(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", target)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.warns(runs.CorruptRecordWarning, match=r"cannot be read \(Permission denied\)"):
        assert run.read_record(0) is None
    table = catalog.table(tmp_path)
    assert table["status"].tolist() == ["unknown (record 0: it cannot be read (Permission "
                                        "denied))"]


def test_runs_ls_json_lists_a_folder_name_that_is_not_utf8(tmp_path, capsys):
    name = os.fsencode(tmp_path) + b"/gimp\xff-0123456789"
    os.mkdir(name)
    with open(name + b"/config.json", "w") as f:
        f.write('{"kind": "gimp"}')
    assert cli.main(["runs", "ls", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["run"] for row in listed] == ["gimp\\xff-0123456789"]
    assert cli.main(["runs", "ls", str(tmp_path)]) == 0
    assert "gimp\\xff-0123456789" in capsys.readouterr().out
