"""What a run store holds, one row per run: ``pruninglab runs ls``, or a look from a notebook.

:func:`table` reads every run folder under a store
(:func:`pruninglab.experiments.runs.iter_runs`) and gives its kind, method, model, data set
and seed, how many of its stages have a trusted record
(:meth:`pruninglab.experiments.runs.RunDir.records`) out of how many the experiment has,
whether it finished, and its size on disk. The number of stages is read from the run's config the
way the experiment lays them out: a GIMP run has a level per density of
:meth:`~pruninglab.experiments.gimp.GIMPConfig.densities`, TOM its three phases
(:data:`~pruninglab.experiments.tom.PHASES`), a shuffle or a pruning-at-initialization run
one stage.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import warnings
from pathlib import Path

import pandas as pd

from ..core import checks
from . import gimp, runs, tom

__all__ = ["COLUMNS", "stage_count", "table"]

COLUMNS = ["run", "kind", "method", "model", "dataset", "seed", "done", "stages", "status",
           "bytes"]


def stage_count(kind: str, config: dict) -> int | None:
    """How many stages (records) a finished run of ``kind`` with ``config`` has; ``None``
    for a kind this version does not know or a config it cannot read."""
    try:
        if kind == "gimp":
            return len(gimp.GIMPConfig(**config["method"]).densities())
        if kind == "tom":
            return len(tom.PHASES)
        if kind in ("shuffle", "at_init"):  # one modification, one pruning: one stage each
            return 1
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _method(kind: str, config: dict) -> str:
    if isinstance(config.get("method"), dict):
        return str(config["method"].get("method", kind))
    if kind == "shuffle":
        return str(config.get("modification", kind))
    if kind == "at_init":
        return f"{config.get('criterion', kind)} @ {config.get('density', '?')}"
    return kind


def _size(folder: Path) -> int:
    """Bytes of the regular files in ``folder`` and below, links not followed."""
    total = 0
    for parent, _, names in os.walk(folder):  # os.walk follows no link to a folder
        for name in names:
            # a run that is writing renames its temporary files as we go
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(parent, name))
                total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


# A run folder's name: its kind, a dash, 10 hex digits (pruninglab.experiments.runs.config_hash).
_RUN_FOLDER = re.compile(r"(?P<kind>.+)-[0-9a-f]{10}")


def _kind_from_name(name: str) -> str | None:
    match = _RUN_FOLDER.fullmatch(name)
    return match["kind"] if match else None


def table(store: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run under ``store`` (default: :func:`pruninglab.experiments.runs.default_root`).

    Returns:
        A DataFrame with :data:`COLUMNS`: the folder's name, the kind, the method's label,
        model, data set and seed; ``done`` records of ``stages`` (``<NA>`` when unknown);
        ``status`` ``"finished"``, ``"interrupted"`` (it stopped before its last stage; the
        next run of the same config resumes it; a GIMP run that a shuffle experiment needed
        only up to its ticket shows so too; a record that cannot be trusted is named with
        the reason), ``"unknown"`` (a kind this version does not know, or a run folder
        without a readable ``config.json``) or ``"refused"`` (a run folder that is a
        symbolic link: the store does not follow it); ``bytes`` on disk (links not
        followed; ``<NA>`` for a refused folder).

    Raises:
        FileNotFoundError: ``store`` is given and is not a folder.
        NotADirectoryError: ``$PRUNINGLAB_RUNS`` (the default store) names a file.
        ValueError: ``store`` is empty or cannot be a path.
    """
    root = runs.default_root() if store is None else checks.path(store, "store")
    if store is not None and not root.is_dir():
        raise FileNotFoundError(f"store {str(store)!r} is not a folder")
    rows = []
    readable = set()
    with warnings.catch_warnings():  # a run folder that is a link: its own row, below
        warnings.simplefilter("ignore", runs.RunStoreWarning)
        found = list(runs.iter_runs(root))
    for run in found:
        readable.add(run.path.name)
        config = run.config
        kind = str(config.get("kind", _kind_from_name(run.path.name)))
        setup = config.get("setup", {}) if isinstance(config.get("setup"), dict) else {}
        with warnings.catch_warnings(record=True) as caught:  # a corrupt record: not done
            warnings.simplefilter("always", runs.CorruptRecordWarning)
            done = len(run.records())
        total = stage_count(kind, config)
        status = ("unknown" if total is None else "finished" if done >= total
                  else "interrupted")
        distrusted = [w.message for w in caught if isinstance(w.message, runs.CorruptRecordWarning)]
        if distrusted:
            status += f" (record {done}: {distrusted[0].reason})"
        rows.append({"run": run.path.name, "kind": kind, "method": _method(kind, config),
                     "model": setup.get("model"), "dataset": setup.get("dataset"),
                     "seed": setup.get("seed"), "done": done, "stages": total,
                     "status": status, "bytes": _size(run.path)})
    if root.is_dir():  # run folders whose config.json is missing or damaged; links
        for path in sorted(root.iterdir()):
            kind = _kind_from_name(path.name)
            if kind and path.is_symlink():
                rows.append({"run": path.name, "kind": kind, "method": None, "model": None,
                             "dataset": None, "seed": None, "done": None, "stages": None,
                             "status": f"refused ({checks.a_link(path)})",
                             "bytes": None})
            elif kind and path.is_dir() and path.name not in readable:
                rows.append({"run": path.name, "kind": kind, "method": None,
                             "model": None, "dataset": None, "seed": None, "done": None,
                             "stages": None, "status": "unknown (no readable config.json)",
                             "bytes": _size(path)})
    frame = pd.DataFrame(rows, columns=COLUMNS).sort_values("run", ignore_index=True)
    return frame.astype({"done": "Int64", "stages": "Int64", "bytes": "Int64"})
