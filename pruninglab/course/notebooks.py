"""The notebook harness: what every notebook calls first, and a headless runner.

In a notebook, right after the ``parameters`` cell::

    nb = pl.notebooks.start(PROFILE, DEVICE, SEED, DATASET, MODEL)

resolves the profile (``$PRUNINGLAB_PROFILE`` wins), the device and the run store, sets
torch's threads to what this kernel may really use (:mod:`pruninglab.core.threads`;
``$PRUNINGLAB_THREADS`` overrides), and shows them in one line.

From a shell, the runner executes notebooks in order with papermill::

    pruninglab notebooks run                       # all, quick profile
    pruninglab notebooks run 05 06 -p PROFILE full -p DEVICE cuda -p DATASET cifar10
    pruninglab notebooks list
    pruninglab notebooks copy my-course            # the notebooks, to work through

(:func:`main` takes the same arguments as a list.) The notebooks ship inside the package
(:func:`packaged_folder`), so an installed wheel has them too.

Executed copies go to ``build/notebooks/<profile>/`` (``--out`` changes it); the runner
prints the folder and a table of times, and exits non-zero if any notebook failed. It sets
the thread variables (``OMP_NUM_THREADS``, ...) of the kernels it starts from
:func:`pruninglab.core.threads.plan`, so each kernel's libraries start with the right count, and
``PRUNINGLAB_FILL_EXERCISES=1`` (unless set already, or ``--stubs``), so that every
exercise's check runs its reference in place of the stub (:mod:`pruninglab.course.exercises`).
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..core import checks, data, threads
from ..core.train import resolve_device
from ..experiments import profiles, runs
from ..experiments.profiles import Profile
from . import exercises, parameters

__all__ = ["Context", "start", "packaged_folder", "notebook_folder", "find_notebooks", "copy",
           "error_line", "execute", "add_commands", "command", "main"]

PACKAGE = Path(__file__).resolve().parent.parent  # pruninglab/
# Where the notebooks are: an installed wheel holds them in pruninglab/_notebooks
# (pyproject.toml maps the repository's notebooks/ there when it builds the wheel); a source
# checkout, or an editable install of one, has them in notebooks/ beside the package.
INSTALLED_NOTEBOOKS = PACKAGE / "_notebooks"
SOURCE_NOTEBOOKS = PACKAGE.parent / "notebooks"


@dataclass(frozen=True)
class Context:
    """What a notebook works with: the resolved profile, device, seed, data set and model
    names, and the run-store folder."""

    profile: Profile
    device: torch.device
    seed: int
    dataset: str
    model: str
    store: Path
    progress: bool
    threads: threads.Plan

    def setup(self, **overrides):
        """The profile's :class:`~pruninglab.experiments.config.Setup` for this notebook's data
        set, model and seed; ``overrides`` as in :meth:`Profile.setup`."""
        kwargs = {"model": self.model, "dataset": self.dataset, "seed": self.seed, **overrides}
        return self.profile.setup(**kwargs)

    def __str__(self) -> str:
        return (f"pruninglab {self.profile.name} profile: {self.model} on {self.dataset}, "
                f"device {self.device}, seed {self.seed}, T={self.profile.steps_for(self.model)} "
                f"steps; runs stored in {self.store}; {self.threads}")


def start(profile: str = "quick", device: str = "auto", seed: int = 0,
          dataset: str | None = None, model: str | None = None,
          progress: bool = True, download: bool = False, train_steps: int | None = None,
          batch_size: int | None = None, target_density: float | None = None,
          eval_size: int | None = None) -> Context:
    """Resolve a notebook's parameters, set torch's threads (:func:`threads.configure`) and
    print a one-line summary.

    Args:
        profile: ``smoke``, ``quick``, ``gpu`` or ``full``; ``$PRUNINGLAB_PROFILE`` overrides it.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: the seed of the notebook's experiments.
        dataset, model: ``None`` takes the profile's.
        progress: show progress bars (pass ``INTERACTIVE`` so headless runs stay quiet).
        download: fetch the data set first if its files are missing (torchvision's
            download, needs internet; :func:`pruninglab.core.data.fetch`): how a full-profile
            run on a fresh GPU box gets CIFAR-10. Offline it fails with where it looked.
        train_steps, batch_size, target_density, eval_size: override the profile's sizes
            (:meth:`Profile.shrunk`; ``None`` keeps each), e.g. to run the full profile's
            code in seconds. The context's ``profile`` carries them.
    """
    prof = profiles.resolve(profile).shrunk(train_steps=train_steps, batch_size=batch_size,
                                            target_density=target_density,
                                            eval_size=eval_size)
    plan = threads.configure()
    torch.manual_seed(seed)
    ctx = Context(prof, resolve_device(device), seed, dataset or prof.dataset,
                  model or prof.model, runs.default_root().resolve(), progress, plan)
    if download:
        print(f"data set {ctx.dataset}: {data.fetch(ctx.dataset)}")
    print(ctx)
    return ctx


# --------------------------------------------------------------------------------------
# Headless runner
# --------------------------------------------------------------------------------------


def packaged_folder() -> Path:
    """The folder of the notebooks that come with pruninglab: inside an installed wheel, or
    a source checkout's ``notebooks/``."""
    return INSTALLED_NOTEBOOKS if INSTALLED_NOTEBOOKS.is_dir() else SOURCE_NOTEBOOKS


NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"


def notebook_folder(folder: str | os.PathLike | None = None) -> Path:
    """Where notebooks are taken from: ``folder`` when given; else ``./notebooks`` when it
    holds ``NN_topic.ipynb`` notebooks (a checkout, or a copy made there), else
    :func:`packaged_folder`.

    Raises:
        FileNotFoundError: ``folder`` is not a folder, or no folder of notebooks exists.
        ValueError: ``folder`` is empty or cannot be a path.
    """
    if folder is not None:
        folder = checks.path(folder, "dir")
        if not folder.is_dir():
            raise FileNotFoundError(f"no notebooks folder found: {folder} is not a folder")
        return folder
    here = Path("notebooks")
    if any(here.glob(NOTEBOOK_PATTERN)):
        return here
    if packaged_folder().is_dir():
        return packaged_folder()
    raise FileNotFoundError(f"no notebooks folder found (looked in {here.resolve()} and "
                            f"{packaged_folder()}); pass --dir")


def find_notebooks(folder: str | os.PathLike | None = None,
                   select: list[str] | None = None) -> list[Path]:
    """The ``NN_topic.ipynb`` notebooks in :func:`notebook_folder`, in order; ``select``
    keeps those whose name starts with one of its items.

    Raises:
        FileNotFoundError: as :func:`notebook_folder`.
    """
    found = sorted(notebook_folder(folder).glob(NOTEBOOK_PATTERN))
    if select:
        found = [p for p in found if any(p.name.startswith(s) for s in select)]
    return found


def copy(dest: str | os.PathLike, force: bool = False) -> list[tuple[Path, str]]:
    """Copy the packaged notebooks into the folder ``dest`` (created if missing), to work
    through and edit there.

    A notebook already in ``dest`` that differs from the packaged one is somebody's work:
    nothing is copied unless ``force`` (then it is overwritten). One that is identical is
    left as it is.

    Returns:
        ``(path in dest, "copied" | "unchanged" | "overwritten")`` for each notebook.

    Raises:
        FileExistsError: ``dest`` is a file, or (without ``force``) it holds edited copies;
            the message names them; or a notebook's name in ``dest`` is taken by something
            that is not a file (a folder, a FIFO).
        OSError: (``ELOOP``) a notebook's name in ``dest`` is a symbolic link: nothing is
            written through a link (with ``force`` neither), and nothing is copied.
        FileNotFoundError: this installation has no notebooks.
        OSError: ``dest`` cannot be made or written.
        ValueError: ``dest`` is empty (it would mean the current folder) or cannot be a path.
    """
    dest = checks.path(dest, "dest")
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"dest {str(dest)!r} is a file, not a folder")
    sources = sorted(packaged_folder().glob(NOTEBOOK_PATTERN))
    if not sources:
        raise FileNotFoundError(f"no notebooks in {packaged_folder()}: this installation of "
                                "pruninglab is incomplete; reinstall it")
    for source in sources:  # nothing is written through a link, nor read from a FIFO
        target = checks.not_a_link(dest / source.name, "the notebook")
        if target.exists() and not target.is_file():
            raise FileExistsError(f"{target} is not a file (a folder, a FIFO?); nothing was "
                                  "copied. Move it away, or copy into another folder")
    edited = [dest / s.name for s in sources
              if (dest / s.name).exists() and not filecmp.cmp(s, dest / s.name, shallow=False)]
    if edited and not force:
        raise FileExistsError(
            f"{len(edited)} notebook(s) in {dest} differ from pruninglab's (edited?): "
            f"{', '.join(p.name for p in edited)}; nothing was copied. Copy into another "
            "folder, or pass force=True (--force) to overwrite them")
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for source in sources:
        target = dest / source.name
        if target.exists() and target not in edited:
            done.append((target, "unchanged"))
            continue
        shutil.copyfile(source, target)
        done.append((target, "overwritten" if target in edited else "copied"))
    return done


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def error_line(err: BaseException) -> str:
    """``"TypeName: last line of its message"``: an error in one line (a notebook's, whose
    message ends with the cell's traceback; a sweep item's)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"


def execute(notebooks: list[Path], out_dir: Path, parameters: dict,
            timeout: int | None = None,
            progress: bool = True) -> list[tuple[str, float, str | None]]:
    """Execute ``notebooks`` in order with papermill, writing executed copies to ``out_dir``
    (``progress``: a tqdm bar over them).

    Returns:
        ``(name, seconds, error or None)`` for each notebook.

    Raises:
        ModuleNotFoundError: papermill is missing (it comes with the extra ``notebooks``).
    """
    try:  # here, not at the top: it takes a second to import and only runs use it
        import papermill
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"running notebooks needs papermill and a Jupyter kernel ({err}); they come "
            "with pruninglab's extra 'notebooks': pip install 'pruninglab[notebooks]'") from err

    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    bar = tqdm(notebooks, desc="notebooks", unit="nb", disable=not progress)
    for path in bar:
        bar.set_postfix_str(path.name)
        tic = time.perf_counter()
        error = None
        try:
            papermill.execute_notebook(
                str(path), str(out_dir / path.name), parameters=parameters, kernel_name="python3",
                cwd=str(path.parent), progress_bar=False, execution_timeout=timeout)
        except Exception as err:  # papermill raises PapermillExecutionError with the traceback
            error = error_line(err)
        results.append((path.name, time.perf_counter() - tic, error))
    return results


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``run``, ``list`` and ``copy`` to ``sub`` (the sub-commands of
    ``pruninglab notebooks`` and of :func:`main`); :func:`command` carries them out."""
    run_p = sub.add_parser("run", help="execute notebooks in order with papermill")
    run_p.add_argument("select", nargs="*", help="notebook name prefixes (e.g. 00 05); default all")
    run_p.add_argument("--profile", default=None, help="smoke | quick | gpu | full (default quick)")
    run_p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                       metavar=("NAME", "VALUE"), help="a notebook parameter, e.g. -p DEVICE cuda")
    run_p.add_argument("--out", default=None, help="folder for executed copies")
    run_p.add_argument("--dir", default=None, help="folder holding the notebooks")
    run_p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    run_p.add_argument("--stubs", action="store_true",
                       help="leave the exercises' stubs as they are (checks print 'not done "
                            "yet') instead of checking the references in their place")
    list_p = sub.add_parser("list", help="list the notebooks")
    list_p.add_argument("--dir", default=None, help="folder holding the notebooks")
    copy_p = sub.add_parser("copy", help="copy the notebooks into a folder of your own")
    copy_p.add_argument("dest", help="the folder (created if missing)")
    copy_p.add_argument("--force", action="store_true",
                        help="overwrite notebooks there that differ from pruninglab's")
    for name, parser in (("run", run_p), ("list", list_p), ("copy", copy_p)):
        parser.set_defaults(notebooks_command=name, notebooks_parser=parser)


def command(args: argparse.Namespace) -> int:
    """Carry out a command that :func:`add_commands` parsed; a usage error (no notebook
    matches, an unknown profile, ...) exits with status 2 through its parser."""
    parser: argparse.ArgumentParser = args.notebooks_parser
    if args.notebooks_command == "copy":
        try:
            done = copy(args.dest, force=args.force)
        except ValueError as err:  # dest empty, or not a path
            parser.error(str(err))
        except OSError as err:  # edited copies, a file in the way, a folder we may not write
            print(f"{parser.prog}: {err}", file=sys.stderr)
            return 1
        for path, what in done:
            print(f"  {what:<11}  {path}")
        print(f"{len(done)} notebooks in {Path(args.dest).resolve()}; open "
              f"{done[0][0].name} in JupyterLab (jupyter lab --notebook-dir {args.dest})")
        return 0
    try:
        notebooks = find_notebooks(args.dir, getattr(args, "select", None))
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    if args.notebooks_command == "list":
        for path in notebooks:
            print(path)
        return 0
    if not notebooks:
        every = find_notebooks(args.dir)
        if not every:
            parser.error(f"{notebook_folder(args.dir)} holds no NN_topic.ipynb notebook")
        parser.error(f"no notebook matches {' '.join(args.select)}; the notebooks are "
                     f"{', '.join(p.name[:2] for p in every)}")
    # Check what every kernel would read before starting any: a bad parameter, profile or
    # run store is one usage error here, not a failed kernel per notebook.
    if args.timeout is not None and args.timeout < 1:
        parser.error(f"--timeout must be a number of seconds >= 1, got {args.timeout}")
    try:
        values = _checked_parameters(notebooks, dict(args.parameter), args.profile)
        store = runs.default_root()
        out_dir = _out_folder(args.out, notebooks, values["PROFILE"])
    except (ValueError, NotADirectoryError) as err:
        parser.error(str(err))
    profile_name = values["PROFILE"]
    os.environ["PRUNINGLAB_RUNS"] = str(store.resolve())
    if args.stubs:
        os.environ[exercises.FILL_VARIABLE] = "0"
    else:
        os.environ.setdefault(exercises.FILL_VARIABLE, "1")
    try:
        exercises.fill_requested()  # a bad value would fail every kernel at its first check
        plan = threads.configure()  # sets OMP_NUM_THREADS etc. for the kernels started below
    except ValueError as err:
        parser.error(str(err))
    print(f"executing {len(notebooks)} notebooks ({profile_name} profile) into {out_dir}; "
          f"{plan}")
    try:
        results = execute(notebooks, out_dir, values, args.timeout)
    except (ModuleNotFoundError, OSError) as err:  # papermill missing; out_dir not writable
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 1
    width = max(len(name) for name, _, _ in results)
    for name, seconds, error in results:
        print(f"  {name:<{width}}  {seconds:7.1f} s  {'FAILED: ' + error if error else 'ok'}")
    failed = [name for name, _, error in results if error]
    print(f"executed notebooks are in {out_dir}")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _checked_parameters(notebooks: list[Path], given: dict[str, str],
                        profile: str | None) -> dict[str, object]:
    """The parameters of a run of ``notebooks``: ``given`` (``-p NAME VALUE``, each value
    read as a Python literal where it is one) checked against every notebook that declares
    its name (:func:`pruninglab.course.parameters.check`), the profile (``--profile``; it
    must agree with ``-p PROFILE`` and with ``$PRUNINGLAB_PROFILE``, which every kernel
    reads) and ``INTERACTIVE = False``.

    Raises:
        ValueError: a name no notebook declares, a value its rule refuses, or profiles that
            disagree; the message names them.
    """
    values = {name: _parse_value(text) for name, text in given.items()}
    if profile is not None and values.get("PROFILE", profile) != profile:
        raise ValueError(f"--profile {profile} and -p PROFILE {values['PROFILE']} disagree; "
                         "give one")
    asked = profile if profile is not None else values.get("PROFILE")
    env = os.environ.get("PRUNINGLAB_PROFILE") or None
    profiles.resolve("quick")  # raises where PRUNINGLAB_PROFILE names no profile
    if env is not None and asked is not None and asked != env:
        raise ValueError(f"PRUNINGLAB_PROFILE={env} is set in the environment and every "
                         f"notebook would run that profile, not {asked!r} as asked; unset "
                         f"PRUNINGLAB_PROFILE, or ask for {env}")
    values["PROFILE"] = env or asked or "quick"
    if values["PROFILE"] not in profiles.PROFILES:
        raise ValueError(f"profile {checks.shown(values['PROFILE'])} is unknown; known "
                         f"profiles: {', '.join(profiles.PROFILES)}")
    values.setdefault("INTERACTIVE", False)
    declared = {path: parameters.declared(path) for path in notebooks}
    for name, value in values.items():
        having = [path for path in notebooks if name in declared[path]]
        if not having and name not in given:  # PROFILE, INTERACTIVE: every course notebook's
            continue
        if not having:
            known = sorted({n for names in declared.values() for n in names})
            raise ValueError(f"-p {checks.shown(name)}: no notebook among "
                             f"{', '.join(p.name[:2] for p in notebooks)} has that parameter; "
                             f"theirs: {', '.join(known)}")
        for path in having:
            values[name] = parameters.check(path.name, name, value, declared[path])
    device = values.get("DEVICE", "auto")
    if device.startswith("cuda") and not torch.cuda.is_available():  # kernels run here
        raise ValueError(f"-p DEVICE {device}: CUDA is not available on this machine, where "
                         "the notebooks would run; give auto or cpu")
    return values


def _out_folder(out: str | None, notebooks: list[Path], profile: str) -> Path:
    """Where the executed copies go: ``out``, or ``build/notebooks/<profile>``; never the
    folder the notebooks are read from (the copies would overwrite them)."""
    folder = (checks.path(out, "--out") if out is not None
              else Path("build") / "notebooks" / profile).resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {str(folder)!r} is not a folder")
    if any(path.parent.resolve() == folder for path in notebooks):
        raise ValueError(f"--out {str(folder)!r} is the folder the notebooks are read from: "
                         "their executed copies would overwrite them; give another folder")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pruninglab notebooks", description="Run pruninglab's notebooks headless.")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return command(parser.parse_args(argv))
