"""The notebooks follow the house rules (stripped, python3, one papermill parameters cell),
and the headless runner lists, parses parameters and reports failures."""

from __future__ import annotations

from pruninglab import notebooks, profiles

import ast
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PARAMETERS = {"PROFILE", "DEVICE", "SEED", "DATASET", "MODEL", "INTERACTIVE", "DOWNLOAD"}


def test_every_notebook_is_named_NN_topic_and_found_by_the_runner():
    every = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    assert every
    for path in every:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), path.name
    assert notebooks.find_notebooks(NOTEBOOK_DIR) == every


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_uses_the_python3_kernel(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"outputs left in {path.name}"
            assert cell.execution_count is None, f"execution count left in {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_pruninglab_before_torch(path):
    """So that OpenMP's threads wait passively in a kernel started without make
    (pruninglab.core.threads.prefer_passive_waiting must run before torch loads)."""
    nb = nbformat.read(path, as_version=4)
    lines = [line for cell in nb.cells if cell.cell_type == "code"
             for line in cell.source.splitlines()]
    first = {name: next((i for i, line in enumerate(lines)
                         if re.match(rf"(import|from) {name}\b", line)), None)
             for name in ("pruninglab", "torch")}
    assert first["pruninglab"] is not None, f"{path.name} does not import pruninglab"
    assert first["torch"] is None or first["pruninglab"] < first["torch"], path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell_of_plain_literals(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} has {len(cells)} cells tagged 'parameters'"
    assert cells[0].cell_type == "code"
    assigned = {}
    for statement in ast.parse(cells[0].source).body:
        assert isinstance(statement, ast.Assign), ast.unparse(statement)
        for target in statement.targets:
            assigned[target.id] = ast.literal_eval(statement.value)  # plain literals only
    assert set(assigned) >= PARAMETERS
    assert assigned["PROFILE"] in profiles.PROFILES


def test_list_prints_every_notebook(capsys):
    assert notebooks.main(["list", "--dir", str(NOTEBOOK_DIR)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(p) for p in notebooks.find_notebooks(NOTEBOOK_DIR)]
    assert printed and all(p.endswith(".ipynb") for p in printed)


def test_list_finds_the_repository_notebooks_from_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert notebooks.main(["list"]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == [
        p.name for p in notebooks.find_notebooks(NOTEBOOK_DIR)]


@pytest.mark.parametrize(
    "text, value",
    [("3", 3), ("0.5", 0.5), ("True", True), ("None", None), ("'cuda'", "cuda"),
     ("cuda", "cuda"), ("resnet20", "resnet20"), ("[1, 2]", [1, 2]), ("wrn-16-8", "wrn-16-8"),
     ("1e-3", 1e-3)],
)
def test_runner_parses_parameter_values_as_literals_or_strings(text, value):
    assert notebooks._parse_value(text) == value


def test_a_failing_notebook_makes_run_return_nonzero(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell("SEED = 0")
    params.metadata["tags"] = ["parameters"]
    failing = nbformat.v4.new_code_cell(
        "assert SEED == 3, 'the -p SEED 3 parameter did not arrive'\n"
        "raise RuntimeError('intended failure')")
    nb.cells = [params, failing]
    nbformat.write(nb, folder / "00_fails.ipynb")
    monkeypatch.setenv("PRUNINGLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("PRUNINGLAB_PROFILE", raising=False)

    code = notebooks.main(["run", "--dir", str(folder), "--out", str(tmp_path / "out"),
                           "--profile", "smoke", "-p", "SEED", "3"])
    assert code != 0
    captured = capsys.readouterr()
    assert "RuntimeError: intended failure" in captured.out
    assert "00_fails.ipynb" in captured.err
    assert (tmp_path / "out" / "00_fails.ipynb").is_file()


def test_run_rejects_an_unknown_profile_before_running(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(notebooks, "execute", lambda *a, **k: pytest.fail("a kernel started"))
    with pytest.raises(SystemExit) as exit_info:
        notebooks.main(["run", "--dir", str(NOTEBOOK_DIR), "--out", str(tmp_path),
                        "--profile", "huge"])
    assert exit_info.value.code == 2 and "profile 'huge' is unknown" in capsys.readouterr().err


def test_run_checks_PRUNINGLAB_PROFILE_before_starting_any_kernel(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(notebooks, "execute", lambda *a, **k: pytest.fail("a kernel started"))
    monkeypatch.setenv("PRUNINGLAB_PROFILE", "huge")
    with pytest.raises(SystemExit) as exit_info:
        notebooks.main(["run", "--dir", str(NOTEBOOK_DIR), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "PRUNINGLAB_PROFILE='huge' is not a profile" in capsys.readouterr().err


def test_run_refuses_an_empty_PRUNINGLAB_RUNS(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(notebooks, "execute", lambda *a, **k: pytest.fail("a kernel started"))
    monkeypatch.setenv("PRUNINGLAB_RUNS", " ")
    with pytest.raises(SystemExit):
        notebooks.main(["run", "--dir", str(NOTEBOOK_DIR), "--out", str(tmp_path)])
    assert "PRUNINGLAB_RUNS is set but empty" in capsys.readouterr().err


def test_start_with_download_fetches_the_data_set_first(monkeypatch, capsys):
    fetched = []
    monkeypatch.setattr(notebooks.data, "fetch",
                        lambda name: fetched.append(name) or f"files of {name}")
    monkeypatch.delenv("PRUNINGLAB_PROFILE", raising=False)
    nb = notebooks.start("smoke", "cpu", download=True)
    assert fetched == [nb.dataset]
    assert f"data set {nb.dataset}: files of {nb.dataset}" in capsys.readouterr().out
    notebooks.start("smoke", "cpu")  # DOWNLOAD = False, the default: nothing fetched
    assert fetched == [nb.dataset]
