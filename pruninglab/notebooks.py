"""The notebook harness: what every notebook calls first, and a headless runner.

In a notebook, right after the ``parameters`` cell::

    nb = pl.notebooks.start(PROFILE, DEVICE, SEED, DATASET, MODEL)

resolves the profile (``$PRUNINGLAB_PROFILE`` wins), the device and the run store, sets
torch's threads to what this kernel may really use (:mod:`pruninglab.threads`;
``$PRUNINGLAB_THREADS`` overrides), and shows them in one line.

From a shell, the runner executes notebooks in order with papermill::

    python -m pruninglab.notebooks run                       # all, quick profile
    python -m pruninglab.notebooks run 05 06 -p PROFILE full -p DEVICE cuda -p DATASET cifar10
    python -m pruninglab.notebooks list

Executed copies go to ``build/notebooks/<profile>/`` (``--out`` changes it); the runner
prints the folder and a table of times, and exits non-zero if any notebook failed. It sets
the thread variables (``OMP_NUM_THREADS``, ...) of the kernels it starts from
:func:`pruninglab.threads.plan`, so each kernel's libraries start with the right count, and
``PRUNINGLAB_FILL_EXERCISES=1`` (unless set already, or ``--stubs``), so that every
exercise's check runs its reference in place of the stub (:mod:`pruninglab.exercises`).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import exercises, profiles, runs, threads
from .profiles import Profile
from .train import resolve_device

__all__ = ["Context", "start", "find_notebooks", "execute", "main"]

REPO = Path(__file__).resolve().parent.parent


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
        """The profile's :class:`~pruninglab.config.Setup` for this notebook's data set, model
        and seed; ``overrides`` as in :meth:`Profile.setup`."""
        kwargs = {"model": self.model, "dataset": self.dataset, "seed": self.seed, **overrides}
        return self.profile.setup(**kwargs)

    def __str__(self) -> str:
        return (f"pruninglab {self.profile.name} profile: {self.model} on {self.dataset}, "
                f"device {self.device}, seed {self.seed}, T={self.profile.steps_for(self.model)} "
                f"steps; runs stored in {self.store}; {self.threads}")


def start(profile: str = "quick", device: str = "auto", seed: int = 0,
          dataset: str | None = None, model: str | None = None,
          progress: bool = True) -> Context:
    """Resolve a notebook's parameters, set torch's threads (:func:`threads.configure`) and
    print a one-line summary.

    Args:
        profile: ``smoke``, ``quick`` or ``full``; ``$PRUNINGLAB_PROFILE`` overrides it.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: the seed of the notebook's experiments.
        dataset, model: ``None`` takes the profile's.
        progress: show progress bars (pass ``INTERACTIVE`` so headless runs stay quiet).
    """
    prof = profiles.resolve(profile)
    plan = threads.configure()
    torch.manual_seed(seed)
    ctx = Context(prof, resolve_device(device), seed, dataset or prof.dataset,
                  model or prof.model, runs.default_root().resolve(), progress, plan)
    print(ctx)
    return ctx


# --------------------------------------------------------------------------------------
# Headless runner
# --------------------------------------------------------------------------------------


def find_notebooks(folder: str | os.PathLike | None = None, select: list[str] | None = None):
    """The ``NN_topic.ipynb`` notebooks in ``folder`` (default ``./notebooks`` or the
    repository's), in order; ``select`` keeps those whose name starts with one of its items."""
    candidates = [Path(folder)] if folder else [Path("notebooks"), REPO / "notebooks"]
    for path in candidates:
        if path.is_dir():
            found = sorted(p for p in path.glob("[0-9][0-9]_*.ipynb"))
            if select:
                found = [p for p in found if any(p.name.startswith(s) for s in select)]
            return found
    looked = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"no notebooks folder found (looked in {looked}); pass --dir")


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def execute(notebooks: list[Path], out_dir: Path, parameters: dict,
            timeout: int | None = None) -> list[tuple[str, float, str | None]]:
    """Execute ``notebooks`` in order with papermill, writing executed copies to ``out_dir``.

    Returns:
        ``(name, seconds, error or None)`` for each notebook.
    """
    import papermill  # here, not at the top: it takes a second to import and only runs use it

    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    bar = tqdm(notebooks, desc="notebooks", unit="nb")
    for path in bar:
        bar.set_postfix_str(path.name)
        tic = time.perf_counter()
        error = None
        try:
            papermill.execute_notebook(
                str(path), str(out_dir / path.name), parameters=parameters, kernel_name="python3",
                cwd=str(path.parent), progress_bar=False, execution_timeout=timeout)
        except Exception as err:  # papermill raises PapermillExecutionError with the traceback
            lines = str(err).strip().splitlines()
            error = f"{type(err).__name__}: {lines[-1] if lines else ''}"
        results.append((path.name, time.perf_counter() - tic, error))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pruninglab.notebooks", description="Run pruninglab's notebooks headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute notebooks in order with papermill")
    run_p.add_argument("select", nargs="*", help="notebook name prefixes (e.g. 00 05); default all")
    run_p.add_argument("--profile", default=None, help="smoke | quick | full (default quick)")
    run_p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                       metavar=("NAME", "VALUE"), help="a notebook parameter, e.g. -p DEVICE cuda")
    run_p.add_argument("--out", default=None, help="folder for executed copies")
    run_p.add_argument("--dir", default=None, help="folder holding the notebooks")
    run_p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    run_p.add_argument("--stubs", action="store_true",
                       help="leave the exercises' stubs as they are (checks print 'not done "
                            "yet') instead of checking the references in their place")
    list_p = sub.add_parser("list", help="list the notebooks")
    list_p.add_argument("--dir", default=None)
    args = parser.parse_args(argv)

    notebooks = find_notebooks(args.dir, getattr(args, "select", None))
    if args.command == "list":
        for path in notebooks:
            print(path)
        return 0
    if not notebooks:
        parser.error(f"no notebook matches {args.select}")
    parameters = {name: _parse_value(value) for name, value in args.parameter}
    if args.profile:
        parameters["PROFILE"] = args.profile
    parameters.setdefault("PROFILE", "quick")
    parameters.setdefault("INTERACTIVE", False)
    # Check what every kernel would read before starting any: a bad profile name or run
    # store is one usage error here, not a failed kernel per notebook.
    if parameters["PROFILE"] not in profiles.PROFILES:
        parser.error(f"profile {parameters['PROFILE']!r} is unknown; known profiles: "
                     f"{', '.join(profiles.PROFILES)}")
    env_profile = os.environ.get("PRUNINGLAB_PROFILE")
    if env_profile and env_profile not in profiles.PROFILES:
        parser.error(f"PRUNINGLAB_PROFILE={env_profile!r} is not a profile; known profiles: "
                     f"{', '.join(profiles.PROFILES)} (or unset it)")
    try:
        store = runs.default_root()
    except ValueError as err:
        parser.error(str(err))
    profile_name = env_profile or parameters["PROFILE"]
    out_dir = Path(args.out or Path("build") / "notebooks" / profile_name).resolve()
    os.environ["PRUNINGLAB_RUNS"] = str(store.resolve())
    if args.stubs:
        os.environ[exercises.FILL_VARIABLE] = "0"
    else:
        os.environ.setdefault(exercises.FILL_VARIABLE, "1")
    try:
        plan = threads.configure()  # sets OMP_NUM_THREADS etc. for the kernels started below
    except ValueError as err:
        parser.error(str(err))
    print(f"executing {len(notebooks)} notebooks ({profile_name} profile) into {out_dir}; "
          f"{plan}")
    results = execute(notebooks, out_dir, parameters, args.timeout)
    width = max(len(name) for name, _, _ in results)
    for name, seconds, error in results:
        print(f"  {name:<{width}}  {seconds:7.1f} s  {'FAILED: ' + error if error else 'ok'}")
    failed = [name for name, _, error in results if error]
    print(f"executed notebooks are in {out_dir}")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
