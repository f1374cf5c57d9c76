"""The ``pruninglab`` command: the notebooks, the data, the benchmarks and the run store
from one entry point (``[project.scripts]`` in pyproject.toml); :data:`EXAMPLES` shows each
command, and ``pruninglab --help`` prints them.

``python -m pruninglab ...`` is the same command. A usage error (an unknown notebook,
section or data set, a store that does not exist) prints the usage and one line saying what
is wrong, and exits with status 2; work that fails (a notebook, a download) exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from .. import __version__
from ..core import data
from ..course import notebooks
from ..experiments import catalog, runs
from . import bench, sweep

__all__ = ["EXAMPLES", "build_parser", "main"]

EXAMPLES = """\
  pruninglab notebooks list
  pruninglab notebooks copy my-course                  # the notebooks, to work through
  pruninglab notebooks run 00 01 --profile smoke       # headless, with papermill
  pruninglab data fetch cifar10                        # torchvision's download
  pruninglab bench masking                             # a benchmark section
  pruninglab runs ls [STORE] [--json]                  # what a run store holds
  pruninglab sweep thesis --dry-run                    # the thesis's batch recipe on Ray
  pruninglab --version
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``pruninglab`` and all its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="pruninglab", description="Notebooks and a small PyTorch library about pruning "
        "neural networks (Mikler 2021).", epilog=f"examples:\n{EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pruninglab {__version__}")
    sub = parser.add_subparsers(dest="area", required=True,
                                metavar="{notebooks,data,bench,runs,sweep}")

    notebooks_p = sub.add_parser("notebooks", help="list, copy or run the course's notebooks")
    notebooks.add_commands(notebooks_p.add_subparsers(dest="command", required=True))

    data_p = sub.add_parser("data", help="get a data set onto this machine")
    data_sub = data_p.add_subparsers(dest="command", required=True)
    fetch_p = data_sub.add_parser(
        "fetch", help="download a data set with torchvision if its files are missing")
    fetch_p.add_argument("name", choices=data.names())
    fetch_p.add_argument("--root", default=None, help="where downloads go (default "
                         "$PRUNINGLAB_DATA or ~/.cache/pruninglab)")
    fetch_p.set_defaults(fetch_parser=fetch_p)

    bench_p = sub.add_parser("bench", help="the benchmarks (ratios against a baseline)")
    bench.add_sections(bench_p.add_subparsers(dest="section", required=True))

    runs_p = sub.add_parser("runs", help="what a run store holds")
    runs_sub = runs_p.add_subparsers(dest="command", required=True)
    ls_p = runs_sub.add_parser("ls", help="a table of the runs in a store")
    ls_p.add_argument("store", nargs="?", default=None,
                      help="the store's folder (default $PRUNINGLAB_RUNS or ./runs)")
    ls_p.add_argument("--json", action="store_true", help="one JSON object per run, in a list")
    ls_p.set_defaults(runs_parser=ls_p)

    sweep_p = sub.add_parser("sweep", help="many runs or notebooks as Ray tasks, from a "
                             "TOML file (needs the extra 'sweep')")
    sweep.add_arguments(sweep_p)
    return parser


def _fetch(args: argparse.Namespace) -> int:
    try:
        source = data.fetch(args.name, root=args.root)
    except ValueError as err:  # --root or PRUNINGLAB_DATA empty, or not a path
        args.fetch_parser.error(str(err))
    except OSError as err:  # FileNotFoundError: not here, and the download failed
        print(f"pruninglab data fetch: {err}", file=sys.stderr)
        return 1
    print(f"{args.name}: {source}" + (": nothing to fetch" if args.name in data.EMBEDDED else ""))
    return 0


def _readable_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _printable(text: str) -> str:
    """``text`` with what cannot be written as UTF-8 shown as escapes: a folder name that
    is not UTF-8 (its bytes come back as lone surrogates) as ``\\xff``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte gave (a config's JSON)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _runs_ls(args: argparse.Namespace) -> int:
    try:
        frame = catalog.table(args.store)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:  # an empty path, a file
        args.runs_parser.error(str(err))
    except OSError as err:  # e.g. a store this user may not read
        print(f"{args.runs_parser.prog}: {err}", file=sys.stderr)
        return 1
    for column in ("run", "kind", "method", "model", "dataset", "status"):
        frame[column] = [_printable(v) if isinstance(v, str) else v for v in frame[column]]
    if args.json:
        print(frame.to_json(orient="records", indent=1))
        return 0
    if frame.empty:
        where = Path(args.store) if args.store else runs.default_root()
        print(f"no runs in {where.resolve()}")
        return 0
    shown = frame.assign(
        done=[f"{d}/{'?' if pd.isna(s) else s}" for d, s in zip(frame["done"], frame["stages"])],
        size=["-" if pd.isna(b) else _readable_bytes(int(b)) for b in frame["bytes"]],
    ).drop(columns=["stages", "bytes"])
    print(shown.to_string(index=False))
    counts = frame["status"].str.split(" ").str[0].value_counts()
    print(f"{len(frame)} runs: " + ", ".join(f"{n} {status}" for status, n in counts.items())
          + f"; {_readable_bytes(int(frame['bytes'].sum()))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``pruninglab`` with ``argv`` (default: the command line); the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader stopped reading (``pruninglab ... | head``): quietly
        # end, as a shell tool does; the rest of the output has nowhere to go
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.area == "notebooks":
        return notebooks.command(args)
    if args.area == "data":
        return _fetch(args)
    if args.area == "bench":
        return bench.run_sections(args)
    if args.area == "sweep":
        return sweep.command(args)
    return _runs_ls(args)


if __name__ == "__main__":
    sys.exit(main())
