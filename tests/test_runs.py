"""The run store: hashing, atomic JSON records with checksums, checkpoints that carry a
checksum and are checked against the structure a run expects, files that are not the store's
own ignored, temporary files of killed writes removed, the umask honoured, a read-only store
or a full disk reported clearly, DataFrames."""

from __future__ import annotations

from pruninglab import runs

import errno
import os
import subprocess
import sys
import zipfile

import pytest
import torch


def test_the_folder_is_named_by_kind_and_config_hash(tmp_path):
    run = runs.RunDir.open("gimp", {"a": 1, "b": [1, 2]}, tmp_path)
    assert run.path.name == f"gimp-{runs.config_hash({'b': [1, 2], 'a': 1})}"
    assert runs.config_hash({"a": 1}) != runs.config_hash({"a": 2})
    assert (run.path / "config.json").is_file()
    run.write_environment()
    assert (run.path / "environment.json").is_file()


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
    run.write_environment()
    run.write_record(0, {"v": 1})
    run.save_checkpoint(1, {"w": torch.ones(3)})
    run.check_writable()
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


EXPECTED = {"model": {"w": torch.zeros(4), "mask": torch.ones(4, dtype=torch.bool)},
            "position": 0}


def _state(position: int = 7) -> dict:
    return {"model": {"w": torch.arange(4.0), "mask": torch.tensor([True, False, True, True])},
            "position": position}


def _flip_a_byte_of_tensor_data(path, member_suffix: str) -> None:
    """Flip one byte inside the stored bytes of a tensor (a zip member of the .pt file)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    raw = bytearray(path.read_bytes())
    header = info.header_offset
    name_len = int.from_bytes(raw[header + 26: header + 28], "little")
    extra_len = int.from_bytes(raw[header + 28: header + 30], "little")
    start = header + 30 + name_len + extra_len
    raw[start] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_in_checkpoint_tensor_data_is_detected(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.save_checkpoint(1, _state())
    assert run.load_checkpoint(1, expected=EXPECTED) is not None
    with zipfile.ZipFile(run.path / "checkpoint_001.pt") as archive:
        data = [i.filename for i in archive.infolist() if "/data/" in i.filename]
    for member in data:  # each tensor's bytes in turn (the mask's among them)
        run.save_checkpoint(1, _state())
        _flip_a_byte_of_tensor_data(run.path / "checkpoint_001.pt", member.split("/", 1)[1])
        with pytest.warns(runs.CorruptRecordWarning, match="checksum"):
            assert run.load_checkpoint(1, expected=EXPECTED) is None


@pytest.mark.parametrize("stored, reason", [
    ({"foo": 1}, "not a pruninglab checkpoint"),
    ([1, 2, 3], "not a pruninglab checkpoint"),
    ({"model": {"w": torch.zeros(4)}, "position": 0}, "lacks keys"),
    ({"model": {"w": torch.zeros(5), "mask": torch.ones(5, dtype=torch.bool)}, "position": 0},
     "expected torch.float32 \\(4,\\)"),
    ({"model": {"w": torch.zeros(4), "mask": torch.ones(4, dtype=torch.bool)}}, "lacks keys"),
    ({"model": {"w": torch.zeros(4), "mask": torch.ones(4)}, "position": 0}, "torch.bool"),
    ({"model": {"w": torch.zeros(4), "mask": torch.ones(4, dtype=torch.bool)},
      "position": "0"}, "expected a int"),
])
def test_a_checkpoint_that_loads_but_holds_the_wrong_thing_is_corrupt(stored, reason, tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    if isinstance(stored, dict) and "model" in stored:
        run.save_checkpoint(1, stored)  # a valid checksum, the wrong structure
    else:
        torch.save(stored, run.path / "checkpoint_001.pt")
    with pytest.warns(runs.CorruptRecordWarning, match=reason):
        assert run.load_checkpoint(1, expected=EXPECTED) is None


def test_other_files_in_a_run_folder_are_ignored(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    run.write_record(0, {"v": 0})
    run.write_record(1, {"v": 1})
    run.save_checkpoint(1, _state())
    (run.path / "record_backup.json").write_text("{}")
    (run.path / "checkpoint_best.pt").write_bytes(b"mine")
    (run.path / "record_007.json").mkdir()
    (run.path / "notes.txt").write_text("hello")
    assert run.records() == [{"v": 0}, {"v": 1}]
    run.discard_from(1)
    assert run.records() == [{"v": 0}]
    left = sorted(p.name for p in run.path.iterdir())
    assert left == ["checkpoint_001.pt", "checkpoint_best.pt", "config.json", "notes.txt",
                    "record_000.json", "record_007.json", "record_backup.json"]
    assert len(runs.load(tmp_path)) == 1


def test_a_folder_where_a_record_must_go_is_a_clear_error(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    (run.path / "record_000.json").mkdir()
    with pytest.raises(IsADirectoryError, match="record_000.json is a folder"):
        run.write_record(0, {"v": 0})


def test_temporary_files_of_a_killed_write_are_removed_when_the_run_opens(tmp_path):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    # a process that is gone left a half-written record behind
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    host = os.uname().nodename
    orphan = run.path / f".record_000.json~{host}~{pid}~abcd1234.tmp"
    orphan.write_text('{"index": 0, "rec')
    alive = run.path / f".record_001.json~{host}~{os.getpid()}~abcd1234.tmp"
    alive.write_text("being written by this process")
    other_host = run.path / f".record_002.json~elsewhere~{pid}~abcd1234.tmp"
    other_host.write_text("a write on another machine of a shared store")
    runs.RunDir.open("x", {"a": 1}, tmp_path)
    assert not orphan.exists()
    assert alive.exists() and other_host.exists()  # may still finish
    old = 2 * runs.STALE_AFTER_S
    os.utime(other_host, (other_host.stat().st_atime - old, other_host.stat().st_mtime - old))
    runs.RunDir.open("x", {"a": 1}, tmp_path)
    assert not other_host.exists()


def test_files_honour_the_umask_so_a_group_store_stays_readable(tmp_path):
    old = os.umask(0o002)
    try:
        run = runs.RunDir.open("x", {"a": 1}, tmp_path)
        run.write_record(0, {"v": 1})
        run.save_checkpoint(1, _state())
    finally:
        os.umask(old)
    for name in ("config.json", "record_000.json", "checkpoint_001.pt"):
        assert (run.path / name).stat().st_mode & 0o777 == 0o664, name


def test_a_full_disk_names_the_file_and_says_the_disk_is_full(tmp_path, monkeypatch):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="disk is full.*checkpoint_001.pt") as info:
        run.save_checkpoint(1, _state())
    assert info.value.errno == errno.ENOSPC
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_an_unwritable_run_folder_fails_the_writable_check(tmp_path, read_only):
    run = runs.RunDir.open("x", {"a": 1}, tmp_path)
    read_only(run.path)
    with pytest.raises(PermissionError, match=f"{run.path.name} is not writable"):
        run.check_writable()


def test_an_empty_PRUNINGLAB_RUNS_is_an_error_not_the_working_directory(monkeypatch):
    monkeypatch.setenv("PRUNINGLAB_RUNS", "")
    with pytest.raises(ValueError, match="PRUNINGLAB_RUNS is set but empty"):
        runs.default_root()
    with pytest.raises(ValueError, match="PRUNINGLAB_RUNS"):
        runs.RunDir.open("x", {"a": 1})
    monkeypatch.delenv("PRUNINGLAB_RUNS")
    assert str(runs.default_root()) == "runs"
    with pytest.raises(ValueError, match=r"store is empty \(''\)"):
        runs.RunDir.open("x", {"a": 1}, "")


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
