"""Careless and hostile inputs to the command and to sweep files (issue 48): each gets one
line that names the value and what is allowed (a usage error, exit status 2), before
anything runs; none hangs, gives a traceback or quietly does something else.

No kernel starts here: every case is refused before one would."""

from __future__ import annotations

from pruninglab import checks, gimp, sweep, sweep_file
from pruninglab.course import notebooks, parameters

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import usage_error

NOTEBOOK = '[[notebooks]]\nids = ["05"]\nprofile = "smoke"\n'
RUN = '[[runs]]\npreset = "finetune"\nprofile = "smoke"\nseeds = [0]\n'


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch, tmp_path):
    """No profile, store or data folder from the shell: each test sets what it is about."""
    for name in ("PRUNINGLAB_PROFILE", "PRUNINGLAB_RUNS", "PRUNINGLAB_DATA",
                 "PRUNINGLAB_FILL_EXERCISES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------------------
# Silently wrong: refused now
# --------------------------------------------------------------------------------------


def test_a_profile_left_in_the_environment_cannot_override_a_sweep_item(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("PRUNINGLAB_PROFILE", "quick")
    with pytest.raises(sweep.SweepFileError, match=r"profile 'smoke', but PRUNINGLAB_PROFILE="
                                                   r"'quick' is set in the environment"):
        sweep.load(write(tmp_path, NOTEBOOK))
    monkeypatch.setenv("PRUNINGLAB_PROFILE", "smoke")  # the same profile: nothing to refuse
    assert len(sweep.load(write(tmp_path, NOTEBOOK)).items) == 1


def test_notebooks_run_refuses_a_profile_the_environment_would_override(monkeypatch,
                                                                        capsys):
    monkeypatch.setenv("PRUNINGLAB_PROFILE", "quick")
    line = usage_error(["notebooks", "run", "00", "--profile", "smoke"], capsys)
    assert "PRUNINGLAB_PROFILE=quick is set in the environment" in line
    assert "not 'smoke' as asked" in line
    line = usage_error(["notebooks", "run", "00", "--profile", "smoke", "-p", "PROFILE",
                        "quick"], capsys)
    assert "--profile smoke and -p PROFILE quick disagree" in line


@pytest.mark.parametrize("given, message", [
    ("SEED = -1", "SEED must be an integer in [0, 9223372036854775807], got -1"),
    ("SEED = nan", "SEED must be an integer in [0, 9223372036854775807], got nan"),
    ('MODEL = "nonexistent"', "MODEL must be a model name (mlp, "),
    ('DATASET = "../../x"', "DATASET must be one of 'digits', "),
    ("TOLERANCE = inf", "TOLERANCE must be a finite number >= 0, got inf"),
    ("INTERACTIVE = 1", "INTERACTIVE is set by the sweep (False: headless)"),
    ("SEEDS = [0, -1]", "SEEDS[1] must be an integer"),
])
def test_a_sweep_checks_notebook_parameter_values_with_the_librarys_rules(tmp_path, given,
                                                                           message):
    text = NOTEBOOK + f"parameters = {{ {given} }}\n"
    with pytest.raises(sweep.SweepFileError) as caught:
        sweep.load(write(tmp_path, text))
    assert message in str(caught.value)


@pytest.mark.parametrize("argv, message", [
    (["-p", "MDOEL", "mlp"], "-p 'MDOEL': no notebook among 00 has that parameter"),
    (["-p", "import os; X", "1"], "-p 'import os; X': no notebook among 00 has that"),
    (["-p", "SEED", "-3"], "00_index.ipynb: SEED must be an integer in [0, "),
    (["-p", "MODEL", "vgg"], "00_index.ipynb: MODEL must be a model name"),
    (["-p", "INTERACTIVE", "None"], "INTERACTIVE cannot be None"),
    (["--timeout", "-3"], "--timeout must be a number of seconds >= 1, got -3"),
    pytest.param(["-p", "DEVICE", "cuda"], "-p DEVICE cuda: CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
])
def test_notebooks_run_checks_each_parameter_against_the_parameters_cell(argv, message,
                                                                         capsys):
    assert message in usage_error(["notebooks", "run", "00", *argv], capsys)


def test_a_bad_fill_exercises_variable_is_refused_before_any_kernel_starts(tmp_path,
                                                                           monkeypatch, capsys):
    monkeypatch.setenv("PRUNINGLAB_FILL_EXERCISES", "yes")
    message = "PRUNINGLAB_FILL_EXERCISES must be 0 or 1, got 'yes'"
    assert message in usage_error(["notebooks", "run", "00"], capsys)
    with pytest.raises(sweep.SweepFileError, match=message):
        sweep.load(write(tmp_path, NOTEBOOK))


def test_a_list_valued_parameter_is_one_value_and_a_list_of_lists_is_a_grid(tmp_path):
    [item] = sweep.load(write(tmp_path, NOTEBOOK + "parameters = { SEEDS = [0, 1] }\n")).items
    assert item.task["parameters"]["SEEDS"] == [0, 1]
    assert item.task["folder"] == "05-smoke-SEEDS=_0_1_"
    grid = sweep.load(write(tmp_path, NOTEBOOK + "parameters = { SEEDS = [[0, 1], [2]] }\n"))
    assert [i.task["parameters"]["SEEDS"] for i in grid.items] == [[0, 1], [2]]
    with pytest.raises(sweep.SweepFileError, match="write one list, or a list of lists"):
        sweep.load(write(tmp_path, NOTEBOOK + "parameters = { SEEDS = [[0], 1] }\n"))


@pytest.mark.parametrize("table, option, message", [
    (RUN, 'one_shot = "no"', "one_shot must be True or False, got 'no'"),
    (RUN.replace('preset = "finetune"', 'experiment = "tom"'), "method = 5",
     "method must be a non-empty string"),
])
def test_an_option_of_the_wrong_type_is_refused_not_taken_as_true(tmp_path, table, option,
                                                                  message):
    with pytest.raises(sweep.SweepFileError, match=message):
        sweep.load(write(tmp_path, table + f"options = {{ {option} }}\n"))


def test_a_model_name_in_capitals_is_the_same_parameter_value(tmp_path):
    [item] = sweep.load(write(tmp_path, NOTEBOOK + 'parameters = { MODEL = "MLP" }\n')).items
    assert item.task["parameters"]["MODEL"] == "mlp"


def test_a_list_valued_option_is_one_run_and_a_list_of_lists_is_a_grid(tmp_path):
    [one] = sweep.load(write(tmp_path, RUN + 'options = { exclude = ["fc1", "fc2"] }\n')).items
    assert list(one.task["config"]["exclude"]) == ["fc1", "fc2"]
    both = sweep.load(write(tmp_path, RUN + 'options = { exclude = [["fc1"], ["fc2", "fc3"]] }\n'))
    assert [list(i.task["config"]["exclude"]) for i in both.items] == [["fc1"], ["fc2", "fc3"]]
    [none] = sweep.load(write(tmp_path, RUN + "options = { exclude = [] }\n")).items
    assert list(none.task["config"]["exclude"]) == []  # one value: exclude nothing
    with pytest.raises(sweep.SweepFileError, match=r"exclude must be layer names or patterns "
                                                   r"\(strings\), got \(1,\)"):
        sweep.load(write(tmp_path, RUN + "options = { exclude = [1] }\n"))


@pytest.mark.parametrize("argv", [
    ["sweep", "SWEEP", "--dry-run", "--store", ""],
    ["sweep", "SWEEP", "--dry-run", "--out", ""],
    ["runs", "ls", ""],
    ["notebooks", "copy", ""],
    ["notebooks", "list", "--dir", ""],
    ["notebooks", "run", "00", "--out", ""],
    ["data", "fetch", "fashion-mnist", "--root", ""],
])
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(tmp_path, argv, capsys):
    file = str(write(tmp_path, NOTEBOOK))
    argv = [file if a == "SWEEP" else a for a in argv]
    assert "is empty ('')" in usage_error(argv, capsys)
    assert list(tmp_path.iterdir()) == [tmp_path / "sweep.toml"]  # nothing written here


@pytest.mark.parametrize("variable, argv", [
    ("PRUNINGLAB_DATA", ["data", "fetch", "fashion-mnist"]),
    ("PRUNINGLAB_RUNS", ["runs", "ls"]),
])
def test_an_empty_environment_variable_is_refused_too(monkeypatch, variable, argv, capsys):
    monkeypatch.setenv(variable, "")
    assert f"{variable}" in usage_error(argv, capsys)


def test_a_run_store_that_is_a_file_is_refused_not_shown_as_empty(tmp_path, monkeypatch,
                                                                 capsys):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("PRUNINGLAB_RUNS", str(tmp_path / "afile"))
    assert "is a file, not a run-store folder" in usage_error(["runs", "ls"], capsys)
    assert "is a file, not a run-store folder" in usage_error(
        ["sweep", str(write(tmp_path, NOTEBOOK)), "--dry-run"], capsys)
    monkeypatch.delenv("PRUNINGLAB_RUNS")
    assert "is a file, not a folder" in usage_error(
        ["sweep", str(write(tmp_path, NOTEBOOK)), "--dry-run", "--out", "afile"], capsys)


def test_a_file_named_like_a_packaged_sweep_does_not_replace_it_silently(tmp_path, capsys):
    write(tmp_path, RUN, name="thesis")
    line = usage_error(["sweep", "thesis", "--dry-run"], capsys)
    assert "'thesis' is both a file here" in line and "write ./thesis for the file" in line
    assert sweep_file.resolve_file("./thesis") == Path("thesis")
    assert sweep_file.resolve_file("gpu") == sweep_file.PACKAGED / "gpu.toml"


def test_executed_copies_never_overwrite_the_notebooks_they_come_from(tmp_path, capsys):
    copied = tmp_path / "course"
    notebooks.copy(copied)
    before = (copied / "00_index.ipynb").read_bytes()
    line = usage_error(["notebooks", "run", "00", "--dir", str(copied), "--out",
                        str(copied)], capsys)
    assert "is the folder the notebooks are read from" in line
    assert (copied / "00_index.ipynb").read_bytes() == before


# --------------------------------------------------------------------------------------
# Hangs and memory
# --------------------------------------------------------------------------------------


def test_a_k_near_one_is_refused_when_the_config_is_built_with_its_number_of_levels(
        tmp_path):
    with pytest.raises(ValueError, match=r"K=0.9999999 reaches target_density=1e-300 in "
                                         r"6,907,754,938 levels; at most 1,000"):
        gimp.GIMPConfig(100, 1e-300, density_multiplier=0.9999999)
    text = RUN + "target_density = 1e-300\noptions = { K = 0.9999999 }\n"
    with pytest.raises(sweep.SweepFileError, match="6,907,754,938 levels"):
        sweep.load(write(tmp_path, text))
    assert len(gimp.GIMPConfig(100, 0.001).densities()) == 21  # the thesis's: 20 levels


def test_a_huge_grid_is_refused_before_its_items_are_built(tmp_path):
    fractions = [i / 1000 for i in range(1000)]
    text = (RUN.replace('"finetune"', '"sgimp"').replace("seeds = [0]", f"seeds = "
            f"{list(range(1000))}") + f"options = {{ rewind_fraction = {fractions} }}\n")
    with pytest.raises(sweep.SweepFileError, match=r"the grid makes 1,000,000 items; a sweep "
                                                   r"file may make at most 10,000"):
        sweep.load(write(tmp_path, text))


# --------------------------------------------------------------------------------------
# Tracebacks and unclear messages: one line each
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("x = " + "[" * 5000 + "]" * 5000 + "\n", "TOML: nested too deeply to read"),
    (NOTEBOOK + "cpus = inf\n", "cpus must be a number in [0.01, 1024], got inf"),
    (NOTEBOOK + "retries = 1000000000\n", "retries must be an integer in [0, 100]"),
    (NOTEBOOK + "cpus = 1e-300\n", "cpus must be a number in [0.01, 1024], got 1e-300"),
    (NOTEBOOK + "gpus = 1e-300\n", "must be 0 or in [0.01, 1], got 1e-300"),
    (RUN + "train_steps = 1e300\n", "train_steps must be an integer >= 1, got 1e+300"),
    ('[sweep]\nstore = "~nouser/x"\n' + NOTEBOOK, "store '~nouser/x' starts with ~, but no"),
    ('[sweep]\nstore = "a\\u0000b"\n' + NOTEBOOK, "holds a NUL byte, which no path can hold"),
    (RUN + 'model = "' + "m" * 1_000_000 + '"\n', "... (1,000,002 characters)"),
])
def test_a_hostile_sweep_file_gets_one_short_line(tmp_path, text, message):
    with pytest.raises(sweep.SweepFileError) as caught:
        sweep.load(write(tmp_path, text))
    assert message in str(caught.value)
    assert len(str(caught.value)) < 600


def test_a_notebook_without_cells_is_a_usage_error_not_a_key_error(tmp_path, capsys):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "05_x.ipynb").write_text("{}")
    message = "05_x.ipynb is not a Jupyter notebook (no list of cells)"
    assert message in usage_error(["notebooks", "run", "05", "--dir", str(folder)], capsys)
    with pytest.raises(sweep.SweepFileError, match=r"no list of cells"):
        sweep.load(write(tmp_path, NOTEBOOK + f'dir = "{folder}"\n'))


def test_out_that_is_not_a_folder_is_a_usage_error(capsys):
    assert "--out '/dev/null' is not a folder" in usage_error(
        ["notebooks", "run", "00", "--out", "/dev/null"], capsys)


def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path):
    # 200 KB of output: more than a pipe holds, so the command still writes when head
    # has gone
    for i in range(2000):
        (tmp_path / f"{i % 100:02d}_{'x' * 60}{i}.ipynb").write_text("{}")
    command = (f"{sys.executable} -m pruninglab notebooks list --dir {tmp_path} "
               "| head -c 1 >/dev/null; exit ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          timeout=120)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert done.returncode in (0, 1)


def test_checks_path_and_shown_name_what_is_wrong():
    assert checks.path("~/x", "store") == Path.home() / "x"
    for bad, message in [("", "store is empty"), ("a\0b", "NUL byte"), (3, "a path")]:
        with pytest.raises(ValueError, match=message):
            checks.path(bad, "store")
    assert checks.shown("m" * 10) == repr("m" * 10)
    assert checks.shown("m" * 10_000) == repr("m" * 10_000)[:80] + "... (10,002 characters)"


def test_every_parameter_the_course_declares_has_a_rule_its_default_keeps():
    for path in notebooks.find_notebooks(notebooks.packaged_folder()):
        for name, default in parameters.declared(path).items():
            assert name in parameters.RULES, f"{path.name}: {name} has no rule"
            assert parameters.check(path.name, name, default, {name: default}) == default


def test_a_sweep_file_that_cannot_be_read_says_so(tmp_path):
    path = tmp_path / "bytes.toml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(sweep.SweepFileError, match="TOML"):
        sweep.load(path)


@pytest.mark.parametrize("argv, message", [
    (["bench", "masking", "--model", "nope", "--rounds", "1"], "unknown model name 'nope'"),
    (["bench", "sparse", "--densities", "2"], "densities must lie in (0, 1], got [2.0]"),
    (["bench", "sparse", "--device", "nope"], "must be auto, cpu, cuda or cuda:N, got 'nope'"),
])
def test_a_bench_option_the_section_refuses_is_a_usage_error(argv, message, capsys):
    assert message in usage_error(argv, capsys)


def test_a_long_parameter_value_makes_a_short_folder_name_told_apart_by_a_hash(tmp_path):
    text = NOTEBOOK + f"parameters = {{ SEEDS = [{list(range(100))}, {list(range(101))}] }}\n"
    items = sweep.load(write(tmp_path, text)).items
    folders = [item.task["folder"] for item in items]
    assert len(set(folders)) == 2 and all(len(folder) <= 100 for folder in folders)
    assert all(len(item.name) < 120 for item in items)
