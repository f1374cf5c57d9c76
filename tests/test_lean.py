"""The six algorithm modules hold the algorithms, on few lines, with short docstrings: the
store glue, the notebooks' labelled sets and the tables live beside them (issue 47)."""

from __future__ import annotations

import pruninglab
from pruninglab.core import masking, pruning, saliency
from pruninglab.experiments import gimp, shuffle, tom

import ast
import inspect
from pathlib import Path

import pytest

ALGORITHM_MODULES = (masking, saliency, pruning, gimp, tom, shuffle)


def count_lines(source: str) -> tuple[int, int, int]:
    """``(lines, docstring lines, code lines)`` of a module's source: docstrings are found by
    ``ast`` (module, classes, functions); code lines are the non-blank lines outside them
    that are not comments."""
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                docstring_lines.update(range(first.lineno, first.end_lineno + 1))
    lines = source.splitlines()
    code = sum(1 for number, line in enumerate(lines, 1)
               if line.strip() and not line.strip().startswith("#")
               and number not in docstring_lines)
    return len(lines), len(docstring_lines), code


def test_the_counter_tells_docstrings_from_code_and_comments():
    source = '"""Module.\n\nMore."""\n\n# a comment\nx = 1\n\n\ndef f():\n    """One."""\n' \
             '    return """not a docstring"""\n'
    assert count_lines(source) == (11, 4, 3)


def test_the_six_algorithm_modules_are_lean():
    totals = [0, 0, 0]
    for module in ALGORITHM_MODULES:
        counts = count_lines(Path(module.__file__).read_text())
        totals = [a + b for a, b in zip(totals, counts)]
    lines, docstrings, code = totals
    assert lines <= 1600, f"the six algorithm modules have {lines} lines, more than 1,600"
    assert docstrings / code <= 0.25, (
        f"{docstrings} docstring lines for {code} code lines: more than 0.25 per code line")


@pytest.mark.parametrize("module", ALGORITHM_MODULES, ids=lambda m: m.__name__)
def test_an_algorithm_module_loads_without_the_run_store(module):
    """The store glue imports the algorithm, never the reverse."""
    tree = ast.parse(inspect.getsource(module))
    at_load = {alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
               for alias in node.names} | {node.module for node in tree.body
                                           if isinstance(node, ast.ImportFrom) and node.module}
    glue = {"runner", "runs", "stored", "gimp_runs", "tom_runs", "shuffle_runs", "comparisons"}
    assert not at_load & glue, at_load & glue


@pytest.mark.parametrize("module, name, home", [
    (gimp, "run", "gimp_runs"), (gimp, "run_many", "gimp_runs"),
    (gimp, "run_config", "gimp_runs"), (gimp, "algorithms", "comparisons"),
    (gimp, "sgimp_sweep", "comparisons"), (tom, "run", "tom_runs"),
    (tom, "compared_densities", "comparisons"), (tom, "THESIS_MNIST", "tom_runs"),
    (shuffle, "run", "shuffle_runs"), (shuffle, "table_3_1", "shuffle_runs"),
])
def test_an_algorithm_module_still_answers_for_what_moved_beside_it(module, name, home):
    assert getattr(module, name) is getattr(getattr(pruninglab, home), name)


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        gimp.nothing  # noqa: B018
    assert not hasattr(tom, "nothing")


def test_what_moved_still_shows_in_tab_completion():
    assert {"run", "run_many", "algorithms", "loop", "GIMPConfig"} <= set(dir(gimp))
    assert {"run", "compared_densities", "MaskTrainer"} <= set(dir(tom))
    assert {"run", "table_3_1", "MODIFICATIONS"} <= set(dir(shuffle))
