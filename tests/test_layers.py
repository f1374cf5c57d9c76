"""Imports point down the layers of pruninglab.layers: a module imports only from its own
layer or below, and every module has a layer."""

from __future__ import annotations

from pruninglab import layers

import ast
from pathlib import Path

import pytest

PACKAGE = Path(layers.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """The pruninglab modules ``module`` imports (``from . import x``, ``from .x import y``,
    ``import pruninglab.x``), wherever the import statement is."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:
                found |= {alias.name for alias in node.names}
            elif node.level == 1:
                found.add(node.module.split(".")[0])
            elif node.module and node.module.startswith("pruninglab."):
                found.add(node.module.split(".")[1])
            elif node.module == "pruninglab":
                found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pruninglab.")}
    return found & set(MODULES)


def test_every_module_has_a_layer():
    for module in MODULES:
        layers.layer_of(module)
    with pytest.raises(ValueError, match="add it"):
        layers.layer_of("nonsense")


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_from_its_own_layer_or_below(module):
    mine = layers.layer_of(module)
    upward = {name: layers.layer_of(name) for name in _imports(module)
              if layers.layer_of(name) > mine}
    assert not upward, f"{module} (layer {mine}) imports from layers above it: {upward}"


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    (tmp_path / "models.py").write_text("from . import widgets\nfrom .gimp import run\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    assert _imports("models") == {"widgets", "gimp"}
