"""The package as a user gets it: the sdist holds what the tests need, the wheel built from it
holds the notebooks and the committed results, and, installed into a fresh virtual
environment outside the repository, its `pruninglab` command copies and runs the course.

The fresh environment reuses this one's packages (torch, papermill, ...) through a ``.pth``
file that points at a folder of links to them, all but pruninglab's own editable install,
and this environment's pip installs the wheel into it (``pip --python``): nothing is
downloaded, and the wheel is the only pruninglab there.
"""

from __future__ import annotations

import pruninglab
from pruninglab import notebooks

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "pruninglab"
RESULTS = PACKAGE / "experiments" / "results"
VERSION = pruninglab.__version__


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict:
    """The sdist, and the wheel built from it (``python -m build``, without a network), and
    what the build printed."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                            str(out), str(REPO)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return {"sdist": out / f"pruninglab-{VERSION}.tar.gz",
            "wheel": out / f"pruninglab-{VERSION}-py3-none-any.whl",
            "log": built.stdout + built.stderr}


def committed_results() -> list[str]:
    return sorted(p.relative_to(REPO).as_posix() for p in RESULTS.rglob("*") if p.is_file())


def library_modules() -> list[str]:
    """Every module of the library, in its folder (``pruninglab/core/train.py``, ...)."""
    return sorted(p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*.py"))


def test_the_build_warns_of_no_package_data_or_deprecated_setting(dist):
    for warning in ("would be ignored", "absent from the `packages`", "is deprecated",
                    "package init file"):
        assert warning not in dist["log"], warning


def test_the_sdist_holds_what_the_tests_need(dist):
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = ["tests/conftest.py", "tests/nbval.ini", "tests/sanitize.cfg", "Makefile",
              "binder/requirements.txt", "binder/postBuild", "pyproject.toml", "LICENSE",
              "README.md", "pruninglab/py.typed", "pruninglab/scale/sweeps/thesis.toml",
              "docs/design.md"]
    needed += [f"notebooks/{p.name}" for p in notebooks.find_notebooks(REPO / "notebooks")]
    needed += [f"tests/{p.name}" for p in (REPO / "tests").glob("test_*.py")]
    assert not [n for n in needed if n not in names]
    assert not [n for n in committed_results() + library_modules() if n not in names]
    assert not [n for n in names if n.endswith(".pyc")]


def test_the_wheel_holds_the_notebooks_the_results_and_the_command(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        for source in notebooks.find_notebooks(REPO / "notebooks"):
            assert wheel.read(f"pruninglab/_notebooks/{source.name}") == source.read_bytes()
        info = f"pruninglab-{VERSION}.dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert not [n for n in committed_results() + library_modules() if n not in names]
    assert "pruninglab/py.typed" in names
    assert "pruninglab/scale/sweeps/thesis.toml" in names  # pruninglab sweep thesis
    assert "pruninglab = pruninglab.scale.cli:main" in entry_points
    assert f"Version: {VERSION}" in metadata
    for field in ("License-Expression: MIT AND CC-BY-4.0", "Author-email:", "Project-URL:",
                  "Classifier: Typing :: Typed", "Provides-Extra: notebooks",
                  "Provides-Extra: test", "Provides-Extra: sweep", "Provides-Extra: dev",
                  "Requires-Python: >=3.11"):
        assert field in metadata, field
    # the library's own requirements leave JupyterLab, papermill and nbval to the extras
    core = [line for line in metadata.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert any("torch" in line for line in core)
    assert not any(name in line for line in core
                   for name in ("jupyterlab", "papermill", "nbval", "ray"))


def fresh_environment(folder: Path) -> Path:
    """A virtual environment in ``folder`` that sees this environment's packages except
    pruninglab; returns its ``bin`` folder."""
    # without a pip (or a setuptools) of its own, which would shadow the newer ones reused
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")],
                   check=True, timeout=300)
    here = Path(sysconfig.get_paths()["purelib"])
    links = folder / "reused"
    links.mkdir()
    for entry in here.iterdir():
        if not entry.name.lower().startswith(("pruninglab", "__editable__")):
            (links / entry.name).symlink_to(entry)
    site = subprocess.run([str(folder / "venv" / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "reused.pth").write_text(f"{links}\n")
    return folder / "venv" / "bin"


@pytest.mark.slow
def test_the_installed_wheel_copies_and_runs_the_course_outside_the_repository(dist, tmp_path):
    bin_dir = fresh_environment(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PRUNINGLAB_", "VIRTUAL_ENV", "PYTHON", "JUPYTER"))}
    # the notebooks' "python3" kernel is the fresh environment's interpreter, as the kernel
    # spec that ipykernel installs into an environment says (found first on JUPYTER_PATH)
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(bin_dir / "python"), "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"], "display_name": "Python 3", "language": "python"}))
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", MPLBACKEND="Agg",
               JUPYTER_PATH=str(tmp_path / "jupyter"),
               PRUNINGLAB_RUNS=str(work / "runs"), PRUNINGLAB_DATA=str(work / "data"),
               PRUNINGLAB_THREADS=os.environ.get("PRUNINGLAB_THREADS", "1"),
               # no network, whatever the machine has: downloads go to a port nobody serves
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="")

    def run(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)

    tic = time.perf_counter()
    installed = run(sys.executable, "-m", "pip", "--python", str(bin_dir / "python"),
                    "install", "--no-index", "--disable-pip-version-check",
                    f"{dist['wheel']}[notebooks]")
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    print(f"installed in {time.perf_counter() - tic:.1f} s")
    where = run(str(bin_dir / "python"), "-c", "import pruninglab; print(pruninglab.__file__)")
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout + where.stderr

    pl = str(bin_dir / "pruninglab")
    copied = run(pl, "notebooks", "copy", "course")
    assert copied.returncode == 0, copied.stderr
    assert sorted(p.name for p in (work / "course").glob("*.ipynb")) == [
        p.name for p in notebooks.find_notebooks(REPO / "notebooks")]

    ran = run(pl, "notebooks", "run", "--dir", "course", "--profile", "smoke", "00", "01",
              timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert (work / "build" / "notebooks" / "smoke" / "01_neurons_and_layers.ipynb").is_file()
    kernel = run(str(bin_dir / "python"), "-c", "from jupyter_client.kernelspec import "
                 "KernelSpecManager as M; print(M().get_kernel_spec('python3').argv[0])")
    assert kernel.stdout.strip() == str(bin_dir / "python"), kernel.stdout + kernel.stderr

    listed = run(pl, "runs", "ls")
    assert listed.returncode == 0, listed.stderr
    shipped = Path(where.stdout.strip()).parent / "experiments" / "results" / "quick"
    listed = run(pl, "runs", "ls", str(shipped))
    runs_committed = len([p for p in (RESULTS / "quick").iterdir() if p.is_dir()])
    assert listed.stdout.strip().splitlines()[-1].startswith(f"{runs_committed} runs: ")

    planned = run(pl, "sweep", "thesis", "--dry-run")  # the packaged batch recipe
    assert planned.returncode == 0, planned.stderr
    assert "thesis.toml: 10 items, 10 to run" in planned.stdout
    assert str(tmp_path / "venv") in planned.stdout.splitlines()[0]

    fetched = run(pl, "data", "fetch", "cifar10")
    assert fetched.returncode != 0 and "Traceback" not in fetched.stderr
    for hint in (str(work / "data" / "cifar-10-batches-py"), "download", "To get them"):
        assert hint in fetched.stderr, fetched.stderr

    for argv, says in ((["notebooks", "run", "99"], "no notebook matches 99"),
                       (["runs", "ls", "/nonexistent"], "is not a folder"),
                       (["bench", "nosuch"], "invalid choice")):
        refused = run(pl, *argv)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert says in refused.stderr.strip().splitlines()[-1]
