"""The `pruninglab` command: each sub-command reaches its library function, usage errors
exit with status 2 and one line (never a traceback), and `runs ls` reads a store right."""

from __future__ import annotations

from pruninglab import __version__, catalog, cli, exercises, notebooks, runs, threads

import json
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import pandas as pd
import pytest
from conftest import usage_error

RESULTS = Path(runs.__file__).parent / "results" / "quick"


@pytest.mark.parametrize("argv, says", [
    (["notebooks", "run", "99"], "no notebook matches 99; the notebooks are 00, 01"),
    (["runs", "ls", "/nonexistent"], "store '/nonexistent' is not a folder"),
    (["bench", "nosuch"], "invalid choice: 'nosuch'"),
    (["data", "fetch", "cifar100"], "invalid choice: 'cifar100'"),
    (["notebooks", "run", "--profile", "huge"], "profile 'huge' is unknown"),
    (["notebooks", "list", "--dir", "/nonexistent"], "no notebooks folder found"),
    ([], "the following arguments are required"),
    (["notebooks"], "the following arguments are required"),
])
def test_a_usage_error_prints_usage_and_one_line_and_exits_2(argv, says, capsys, monkeypatch):
    monkeypatch.setattr(notebooks, "execute", lambda *a, **k: pytest.fail("a kernel started"))
    assert says in usage_error(argv, capsys)


def test_notebooks_run_without_papermill_names_the_extra_to_install(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setitem(sys.modules, "papermill", None)  # as if it were not installed
    for name in (exercises.FILL_VARIABLE, *threads.CHILD_ENV):  # the runner sets these
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("PRUNINGLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("PRUNINGLAB_PROFILE", raising=False)
    assert cli.main(["notebooks", "run", "00", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pip install 'pruninglab[notebooks]'" in err


def test_the_library_and_its_command_load_no_jupyter_package():
    """The core install (no extras) has no JupyterLab, papermill or nbval: importing
    pruninglab and its command must not need them."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, pruninglab, pruninglab.scale.cli; print(' '.join("
         "sorted({m.split('.')[0] for m in sys.modules})))"],
        capture_output=True, text=True, check=True, timeout=120).stdout.split()
    for extra in ("papermill", "nbformat", "nbval", "jupyterlab", "ipywidgets", "ipykernel",
                  "jupyter_client", "sphinx", "IPython"):
        assert extra not in loaded


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"pruninglab {__version__}"


def test_notebooks_list_prints_the_packaged_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no ./notebooks here: the package's own
    assert cli.main(["notebooks", "list"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(p) for p in notebooks.find_notebooks(notebooks.packaged_folder())]
    assert len(printed) >= 12


def test_notebooks_copy_keeps_a_students_edits_unless_forced(tmp_path, capsys):
    course = tmp_path / "course"
    assert cli.main(["notebooks", "copy", str(course)]) == 0
    packaged = notebooks.find_notebooks(notebooks.packaged_folder())
    copied = sorted(course.glob("*.ipynb"))
    assert [p.name for p in copied] == [p.name for p in packaged]
    assert all(c.read_bytes() == p.read_bytes() for c, p in zip(copied, packaged))
    assert capsys.readouterr().out.count("copied") == len(packaged)

    assert cli.main(["notebooks", "copy", str(course)]) == 0  # identical: left as they are
    assert capsys.readouterr().out.count("unchanged") == len(packaged)

    edited = copied[4]
    edited.write_text(edited.read_text().replace("PROFILE = ", "PROFILE  = ", 1))
    (course / copied[0].name).unlink()
    mine = edited.read_bytes()
    assert cli.main(["notebooks", "copy", str(course)]) == 1
    err = capsys.readouterr().err
    assert edited.name in err and "--force" in err and "nothing was copied" in err
    assert edited.read_bytes() == mine and not (course / copied[0].name).exists()

    assert cli.main(["notebooks", "copy", str(course), "--force"]) == 0
    out = capsys.readouterr().out
    assert f"overwritten  {edited}" in out and f"copied       {course / copied[0].name}" in out
    assert edited.read_bytes() == packaged[4].read_bytes()


@pytest.mark.parametrize("dest, says", [("a-file", "is a file, not a folder"),
                                         ("a-file/course", "Not a directory")])
def test_notebooks_copy_where_a_file_is_in_the_way_says_so_in_one_line(tmp_path, capsys,
                                                                      dest, says):
    (tmp_path / "a-file").write_text("")
    assert cli.main(["notebooks", "copy", str(tmp_path / dest)]) == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_empty_notebooks_folder_here_does_not_hide_the_packaged_ones(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path)
    assert notebooks.notebook_folder() == notebooks.packaged_folder()
    (tmp_path / "notebooks" / "00_mine.ipynb").write_text("{}")
    assert notebooks.notebook_folder() == Path("notebooks")


def test_data_fetch_of_an_embedded_set_needs_nothing(capsys):
    assert cli.main(["data", "fetch", "digits"]) == 0
    assert "embedded" in capsys.readouterr().out


def test_data_fetch_offline_says_where_it_looked_and_exits_1(tmp_path, monkeypatch, capsys):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    assert cli.main(["data", "fetch", "cifar10", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for hint in (str(tmp_path / "cifar-10-batches-py"), "Name or service not known",
                 "To get them"):
        assert hint in err


def test_bench_runs_a_section(capsys):
    tiny = ["--input-size", "4", "--batch-size", "8", "--rounds", "2", "--steps", "1",
            "--warmup", "1"]
    assert cli.main(["bench", "masking", *tiny]) == 0
    assert "logical cores" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# runs ls
# --------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> Path:
    """Three committed runs (a GIMP run with several levels, a TOM run, a pruning at
    initialization): the GIMP run cut short after two levels, the TOM run's last record
    damaged."""
    store = tmp_path / "store"
    store.mkdir()
    names = {}
    for kind, stages in (("gimp", 4), ("tom", 3), ("at_init", 1)):
        source = next(p for p in sorted(RESULTS.glob(f"{kind}-*")) if catalog.stage_count(
            kind, json.loads((p / "config.json").read_text())) >= stages
            and len(list(p.glob("record_*.json"))) >= stages)
        shutil.copytree(source, store / source.name)
        names[kind] = source.name
    gimp = store / names["gimp"]
    for record in sorted(gimp.glob("record_*.json"))[2:]:
        record.unlink()
    tom_last = sorted((store / names["tom"]).glob("record_*.json"))[-1]
    tom_last.write_text(tom_last.read_text()[:-20])
    (store / "notes").mkdir()  # a folder without a config: not a run
    (store / "sweep-0123456789").mkdir()  # a kind this version does not know
    (store / "sweep-0123456789" / "config.json").write_text('{"kind": "sweep"}')
    (store / "gimp-abcdef0123").mkdir()  # a run whose config.json was cut off
    (store / "gimp-abcdef0123" / "config.json").write_text('{"kind": "gi')
    return store


def test_runs_ls_tells_finished_from_interrupted_runs(store, capsys):
    everything = catalog.table(store)
    damaged = everything.set_index("run").loc["gimp-abcdef0123"]
    assert damaged["status"] == "unknown (no readable config.json)"
    assert damaged["bytes"] == len('{"kind": "gi')
    table = everything[everything["run"] != "gimp-abcdef0123"].set_index("kind")
    gimp_config = json.loads((store / table.loc["gimp", "run"] / "config.json").read_text())
    assert table.loc["gimp", "done"] == 2
    assert table.loc["gimp", "stages"] == catalog.stage_count("gimp", gimp_config) > 2
    assert table.loc["gimp", "status"] == "interrupted"
    assert (table.loc["tom", "done"], table.loc["tom", "stages"]) == (2, 3)
    assert table.loc["tom", "status"] == "interrupted (record 2: it is truncated or is not JSON)"
    assert table.loc["at_init", "status"] == "finished"
    assert table.loc["sweep", "status"] == "unknown" and pd.isna(table.loc["sweep", "stages"])
    assert table.loc["gimp", "method"] == gimp_config["method"]["method"]
    assert table.loc["gimp", "bytes"] == sum(
        p.stat().st_size for p in (store / table.loc["gimp", "run"]).iterdir())

    assert cli.main(["runs", "ls", str(store)]) == 0
    out = capsys.readouterr().out
    assert f" 2/{table.loc['gimp', 'stages']} " in out and " 1/1 " in out and " 0/? " in out
    assert out.strip().splitlines()[-1].startswith(
        "5 runs: 2 interrupted, 2 unknown, 1 finished; ")


def test_runs_ls_json_is_one_object_per_run(store, capsys):
    assert cli.main(["runs", "ls", str(store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(rows[0]) == sorted(catalog.COLUMNS) and len(rows) == 5
    assert {row["kind"] for row in rows} == {"gimp", "tom", "at_init", "sweep"}
    assert next(row for row in rows if row["kind"] == "sweep")["stages"] is None


def test_runs_ls_reads_the_default_store_and_says_when_it_is_empty(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("PRUNINGLAB_RUNS", str(tmp_path / "not-made-yet"))
    assert cli.main(["runs", "ls"]) == 0
    assert capsys.readouterr().out.strip() == f"no runs in {tmp_path / 'not-made-yet'}"
    assert cli.main(["runs", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_stage_count_follows_each_experiment():
    gimp_config = {"method": {"train_steps": 10, "target_density": 0.7 ** 3,
                              "density_multiplier": 0.7}}
    assert catalog.stage_count("gimp", gimp_config) == 4  # dense, then 0.7, 0.49, 0.343
    assert catalog.stage_count("tom", {}) == 3
    assert catalog.stage_count("shuffle", {}) == catalog.stage_count("at_init", {}) == 1
    assert catalog.stage_count("gimp", {"method": {"nonsense": 1}}) is None
    assert catalog.stage_count("future-kind", {}) is None


def test_help_shows_every_command_with_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for area in ("notebooks", "data", "bench", "runs"):
        assert f"pruninglab {area} " in out
