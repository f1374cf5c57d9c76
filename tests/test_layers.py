"""The package's folders are its layers: core < experiments < course < scale. A module
imports only from its own folder or a lower one, the folders hold every module, imports
form no cycle, and ``import pruninglab`` loads torch and ``core`` only."""

from __future__ import annotations

import pruninglab

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(pruninglab.__file__).parent
FOLDERS = ("core", "experiments", "course", "scale")  # lowest first
TOP_LEVEL = {"__init__", "__main__"}


def _modules(package: Path = PACKAGE) -> dict[str, str]:
    """Every module of the package by name, with its folder."""
    found = [(p.stem, folder) for folder in FOLDERS for p in (package / folder).glob("*.py")
             if p.stem != "__init__"]
    names = [name for name, _ in found]
    assert len(set(names)) == len(names), f"two folders hold a module of one name: {names}"
    return dict(found)


def _imports(path: Path, modules: dict[str, str]) -> dict[str, bool]:
    """The pruninglab modules ``path`` imports (``from . import x``, ``from ..core.x import
    y``, ``import pruninglab.core.x``, ``from pruninglab import x``), each with whether the
    import runs when the module loads (``True``) or only inside a function."""
    tree = ast.parse(path.read_text())
    found: dict[str, bool] = {}

    def note(names: set[str], node: ast.stmt) -> None:
        for name in names & set(modules):
            found[name] = found.get(name, False) or node.col_offset == 0

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0 and parts[0] != "pruninglab":
                continue
            if node.level == 0:
                parts = parts[1:]
            note({alias.name for alias in node.names} | set(parts), node)
        elif isinstance(node, ast.Import):
            note({part for a in node.names if a.name.startswith("pruninglab.")
                  for part in a.name.split(".")[1:]}, node)
    return found


def test_the_package_holds_its_role_folders_and_two_top_level_modules():
    assert {p.stem for p in PACKAGE.glob("*.py")} == TOP_LEVEL
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(FOLDERS)


def test_every_module_keeps_its_name_at_the_top_level():
    for name, folder in _modules().items():
        module = getattr(pruninglab, name)
        assert module.__name__ == f"pruninglab.{folder}.{name}"
    with pytest.raises(AttributeError, match="nonsense"):
        pruninglab.nonsense  # noqa: B018
    assert pruninglab.GIMPConfig is pruninglab.gimp.GIMPConfig
    assert {"Setup", "TrainConfig", "TOMConfig", "gimp", "bench"} <= set(dir(pruninglab))


@pytest.mark.parametrize("module", sorted(_modules()))
def test_a_module_imports_only_from_its_own_folder_or_below(module):
    modules = _modules()
    mine = FOLDERS.index(modules[module])
    upward = {name: modules[name] for name in _imports(PACKAGE / modules[module] / f"{module}.py",
                                                      modules)
              if FOLDERS.index(modules[name]) > mine}
    assert not upward, f"{module} ({modules[module]}/) imports from folders above it: {upward}"


def test_the_modules_import_each_other_without_a_cycle():
    modules = _modules()
    graph = {m: {n for n, at_load in _imports(PACKAGE / f / f"{m}.py", modules).items()
                 if at_load and n != m} for m, f in modules.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"an import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for name in sorted(graph[module]):
                visit(name, (*path, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_the_check_sees_an_upward_import(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "course").mkdir()
    (tmp_path / "core" / "models.py").write_text(
        "from ..course import widgets\nfrom ..experiments.gimp import run\n"
        "def f():\n    import pruninglab.scale.bench\n")
    (tmp_path / "course" / "widgets.py").write_text("")
    modules = {"models": "core", "widgets": "course", "gimp": "experiments", "bench": "scale"}
    assert _imports(tmp_path / "core" / "models.py", modules) == {
        "widgets": True, "gimp": True, "bench": False}


# What a plain ``import pruninglab`` must not load: the notebook, site, sweep and browser
# tools, and every folder above core.
HEAVY = ("papermill", "nbformat", "nbclient", "jupyter", "ipywidgets", "ipykernel", "ray",
         "sphinx", "playwright", "pruninglab.experiments", "pruninglab.course",
         "pruninglab.scale")


def test_import_pruninglab_loads_torch_and_core_only():
    code = "import sys, pruninglab; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                            text=True, check=True).stdout.split()
    assert "torch" in loaded and "pruninglab.core.train" in loaded
    heavy = [name for name in loaded
             if any(name == h or name.startswith((f"{h}.", f"{h}_")) for h in HEAVY)]
    assert not heavy, f"import pruninglab loaded {heavy}"


def test_the_command_starts_without_a_runtime_warning():
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "pruninglab",
                           "notebooks", "list"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr and "00_index" in done.stdout
