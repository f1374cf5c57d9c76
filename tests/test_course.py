"""The course in the notebooks: exercises with a stub, a check and a folded solution right
after the idea they practise; questions with folded answers at the end; a link to the next
notebook; and notebook 04 runs top to bottom with its stubs left in."""

from __future__ import annotations

import pruninglab as pl
from pruninglab import exercises, notebooks, reproduction

import contextlib
import io
import math
import re
from pathlib import Path

import nbformat
import pytest
import torch

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
ALL = notebooks.find_notebooks(NOTEBOOK_DIR)
# notebooks 01-10 practise with exercises; every notebook 01-11 ends with questions
COURSE = [p for p in ALL if "01" <= p.name[:2] <= "10"]
QUESTIONS = [p for p in ALL if "01" <= p.name[:2] <= "11"]
CHECK = re.compile(r'pl\.exercises\.check\("(\d\d\.\d+)", (\w+)\)')


def read(path: Path):
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def folded(cell) -> bool:
    return cell.metadata.get("jupyter", {}).get("source_hidden") is True


def exercise_triples(nb):
    """(task, stub, solution) cells of every exercise, in order."""
    cells = nb.cells
    return [(cells[i], cells[i + 1], cells[i + 2]) for i, c in enumerate(cells)
            if "exercise" in tags(c)]


def run_quietly(source: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<cell>", "exec"), namespace)
    return out.getvalue()


@pytest.fixture(autouse=True)
def stubs_stay_stubs(monkeypatch):
    monkeypatch.delenv(exercises.FILL_VARIABLE, raising=False)


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_each_exercise_is_a_task_a_stub_with_its_check_and_a_folded_solution(path):
    triples = exercise_triples(read(path))
    assert len(triples) >= 2
    ids = []
    for task, stub, solution in triples:
        assert task.cell_type == "markdown" and task.source.startswith("### Exercise ")
        assert stub.cell_type == "code" and not tags(stub) and not folded(stub)
        found = CHECK.findall(stub.source)
        assert len(found) == 1, stub.source
        # the check prints its line; a trailing ";" keeps Jupyter from echoing Out: True
        assert stub.source.rstrip().endswith(f"{found[0][1]});"), stub.source
        ids.append(found[0][0])
        assert task.source.startswith(f"### Exercise {found[0][0]} · ")
        assert solution.cell_type == "code" and tags(solution) == ["solution"]
        assert folded(solution), "JupyterLab shows a solution collapsed"
        # a collapsed cell shows its first line: it must not give the solution away
        first_line = solution.source.splitlines()[0]
        assert first_line == f"# Solution {found[0][0]} (open it after you tried)"
    assert ids == exercises.names(path.name[:2])


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_every_folded_solution_passes_its_check(path):
    for _, stub, solution in exercise_triples(read(path)):
        id, name = CHECK.findall(stub.source)[0]
        namespace = {"pl": pl, "torch": torch, "math": math}  # the notebooks' imports
        run_quietly(solution.source, namespace)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert exercises.check(id, namespace[name]), out.getvalue()


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_every_stub_as_shipped_is_not_done_yet(path):
    for _, stub, _ in exercise_triples(read(path)):
        out = run_quietly(stub.source, {"pl": pl, "torch": torch, "math": math})
        assert "not done yet" in out, (stub.source, out)


def test_the_course_has_its_exercise_and_question_notebooks():
    assert [p.name[:2] for p in COURSE] == [f"{n:02d}" for n in range(1, 11)]
    assert [p.name[:2] for p in QUESTIONS] == [f"{n:02d}" for n in range(1, 12)]


@pytest.mark.parametrize("path", QUESTIONS, ids=lambda p: p.name)
def test_the_notebook_ends_with_questions_each_with_a_folded_answer(path):
    cells = read(path).cells
    questions = [i for i, c in enumerate(cells) if "question" in tags(c)]
    assert len(questions) >= 2
    assert any(c.source.startswith("## Questions") for c in cells[:questions[0]])
    for k, i in enumerate(questions, start=1):
        assert cells[i].source.startswith(f"**Question {k}.** ")
        answer = cells[i + 1]
        assert answer.cell_type == "markdown" and tags(answer) == ["answer"] and folded(answer)
        # a collapsed cell shows its first line: it must not give the answer away
        assert answer.source.splitlines()[:2] == [
            f"**Answer {k}** (open it after you have answered)", ""]
    # nothing but the questions, their answers and the link to the next notebook after them
    assert questions[-1] + 1 == len(cells) - 2


@pytest.mark.parametrize("index", range(len(ALL)), ids=lambda i: ALL[i].name)
def test_every_notebook_ends_with_a_link_to_the_next(index):
    last = read(ALL[index]).cells[-1]
    target = ALL[index + 1].name if index + 1 < len(ALL) else ALL[0].name
    assert last.cell_type == "markdown"
    assert f"]({target})" in last.source, last.source


def _check_outputs(executed) -> list[str]:
    texts = []
    for cell in executed.cells:
        if cell.cell_type == "code" and CHECK.search(cell.source):
            texts.append("".join(o.get("text", "") for o in cell.outputs
                                 if o.get("output_type") == "stream"))
    return texts


# the notebooks whose checks run under papermill here; nbval runs every notebook filled
PAPERMILL = ("04", "05", "06", "07", "08", "09", "10", "11")


@pytest.mark.slow
@pytest.mark.parametrize("stubs", [True, False], ids=["stubs left in", "filled"])
def test_the_course_notebooks_run_top_to_bottom_under_papermill(tmp_path, monkeypatch, stubs):
    monkeypatch.setenv("PRUNINGLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv(exercises.FILL_VARIABLE, "1")  # --stubs must win over it
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("PRUNINGLAB_PROFILE", raising=False)
    argv = ["run", *PAPERMILL, "--dir", str(NOTEBOOK_DIR), "--out", str(tmp_path / "out"),
            "--profile", "smoke"] + (["--stubs"] if stubs else [])
    assert notebooks.main(argv) == 0
    for path in ALL:
        number = path.name[:2]
        if number not in PAPERMILL:
            continue
        outputs = _check_outputs(read(tmp_path / "out" / path.name))
        assert len(outputs) == len(exercises.names(number))
        assert len(outputs) >= 2 or number == "11"  # 11 has questions, no exercises
        for text in outputs:
            if stubs:
                assert text.startswith(f"○ {number}.") and "not done yet:" in text, text
            else:
                assert text.startswith(f"✓ {number}.") and "checks the reference in its place" \
                    in text, text
    # the report's verdicts on these 40-step runs say they are smoke, not findings
    printed = "".join(o.get("text", "") for c in read(tmp_path / "out" / "11_reproduction.ipynb")
                      .cells if c.cell_type == "code" for o in c.outputs)
    listed = [line for line in printed.splitlines() if line.endswith("):")]
    assert listed and all(reproduction.SMOKE_NOTE in line for line in listed), printed


def test_the_index_lists_each_notebooks_exercises():
    table = [line for line in read(NOTEBOOK_DIR / "00_index.ipynb").cells[0].source.splitlines()
             if line.startswith("| [")]
    assert len(table) == len(ALL) - 1  # every notebook but the index itself
    for line in table:
        number = line[3:5]
        columns = [cell.strip() for cell in line.strip()[1:-1].split("|")]
        assert len(columns) == 6, line
        listed = columns[-1]
        ids = exercises.names(number)
        assert listed == (f"{ids[0]}–{ids[-1]}" if ids else ""), line
