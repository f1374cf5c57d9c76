"""A notebook's claim about its own run prints whether it holds, and an unexplained
contradiction fails the notebook tests (PRUNINGLAB_CLAIMS=strict)."""

from __future__ import annotations

from pruninglab import claims

import json
from pathlib import Path

import numpy as np
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def test_a_claim_that_holds_prints_holds_here_with_its_evidence(capsys, monkeypatch):
    monkeypatch.setenv(claims.STRICT_VARIABLE, "strict")
    assert claims.check("A beats B", holds=True, evidence="3 vs 2") is True
    assert capsys.readouterr().out == "holds here: A beats B (3 vs 2)\n"


def test_an_explained_contradiction_prints_why_and_does_not_raise(capsys, monkeypatch):
    monkeypatch.setenv(claims.STRICT_VARIABLE, "strict")
    assert claims.check("A beats B", holds=False, why_not="one seed") is False
    assert capsys.readouterr().out == "does NOT hold here: A beats B. Why: one seed\n"


def test_an_unexplained_contradiction_raises_only_when_strict(capsys, monkeypatch):
    monkeypatch.delenv(claims.STRICT_VARIABLE, raising=False)
    assert claims.check("A beats B", holds=False) is False
    assert capsys.readouterr().out == "does NOT hold here: A beats B\n"
    monkeypatch.setenv(claims.STRICT_VARIABLE, "strict")
    with pytest.raises(claims.UnexplainedContradiction, match="A beats B"):
        claims.check("A beats B", holds=False)
    assert "does NOT hold here: A beats B" in capsys.readouterr().out  # printed first


def test_cannot_tell_never_raises_and_gives_no_why(capsys, monkeypatch):
    monkeypatch.setenv(claims.STRICT_VARIABLE, "strict")
    assert claims.check("A beats B", holds=None, why_not="unused") is None
    assert capsys.readouterr().out == "cannot tell here: A beats B\n"


def test_a_numpy_bool_is_taken_and_returned_as_a_bool(capsys):
    assert claims.check("x", holds=np.bool_(True)) is True


@pytest.mark.parametrize("holds", [1, 0.0, "yes", np.array([True, False])])
def test_holds_must_be_a_bool_or_none(holds):
    with pytest.raises(TypeError, match="holds must be True, False or None"):
        claims.line("x", holds)


def test_an_empty_claim_is_refused():
    with pytest.raises(ValueError, match="claim must be a sentence"):
        claims.line("  ", True)


def test_the_strict_variable_takes_strict_or_nothing(monkeypatch):
    monkeypatch.setenv(claims.STRICT_VARIABLE, "yes")
    with pytest.raises(ValueError, match="PRUNINGLAB_CLAIMS must be 'strict' or unset, got 'yes'"):
        claims.strict()


def _code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_no_notebook_prints_a_verdict_on_a_claim_by_hand():
    """Every "holds here / does NOT hold here" line goes through pl.claims.check, so that the
    smoke run's strict mode sees it."""
    for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        code = _code(path)
        assert "does NOT hold" not in code and "holds here" not in code, path.name


@pytest.mark.parametrize("name", ["04_pruning_basics", "08_mask_shuffling",
                                  "10_parameter_efficiency"])
def test_notebooks_that_state_their_own_results_check_them(name):
    assert "pl.claims.check(" in _code(NOTEBOOK_DIR / f"{name}.ipynb")


def test_the_notebook_tests_run_claims_strictly():
    makefile = (NOTEBOOK_DIR.parent / "Makefile").read_text()
    recipe = makefile.split("notebooks-test:")[1].split("\n\n")[0]
    assert "PRUNINGLAB_CLAIMS=strict" in recipe and "PRUNINGLAB_PROFILE=smoke" in recipe
