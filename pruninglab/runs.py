"""The run store: one folder per run, named by its kind and a hash of its full config.

::

    runs/                                   ($PRUNINGLAB_RUNS, or ./runs)
      gimp-3f9c0a1b2d/
        config.json                         the full config (what the hash is of)
        environment.json                    torch, python, device, time of the first start
        record_000.json, record_001.json    one record per finished level, with a checksum
        checkpoint_001.pt                   state needed to start level 1 (weights_only load)

Every write is atomic (a temporary file, ``fsync``, ``os.replace``), so a run killed at any
moment leaves only whole files. A record that is truncated, unparsable or fails its checksum
is reported and recomputed, never used. :func:`load` reads many runs as one DataFrame.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch

__all__ = ["default_root", "config_hash", "cpu_state", "RunDir", "load", "iter_runs",
           "CorruptRecordWarning"]


class CorruptRecordWarning(UserWarning):
    """A stored record or checkpoint could not be trusted and will be recomputed."""


def default_root() -> Path:
    """``$PRUNINGLAB_RUNS`` if set, else ``./runs`` (relative to the working directory)."""
    return Path(os.environ.get("PRUNINGLAB_RUNS", "runs"))


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str)


def config_hash(config: dict) -> str:
    """A short (10 hex digits) SHA-256 of the config's canonical JSON."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:10]


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cpu_state(state: dict) -> dict:
    """Detached CPU copies of a state dict's tensors, ready for :meth:`RunDir.save_checkpoint`."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _environment() -> dict:
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cuda": cuda}  # fmt: skip


class RunDir:
    """One run's folder. Use :meth:`open`; records and checkpoints are numbered from 0."""

    def __init__(self, path: Path, config: dict) -> None:
        self.path = Path(path)
        self.config = config

    @staticmethod
    def path_for(kind: str, config: dict, root: str | os.PathLike | None = None) -> Path:
        """Where the run of ``kind`` with ``config`` lives under ``root`` (it may not exist)."""
        root = Path(root) if root is not None else default_root()
        return root / f"{kind}-{config_hash(config)}"

    @classmethod
    def open(cls, kind: str, config: dict, root: str | os.PathLike | None = None) -> RunDir:
        """The folder for ``config`` under ``root`` (created if new)."""
        path = cls.path_for(kind, config, root)
        run = cls(path, config)
        stored = run._read_json(path / "config.json")
        if stored is None:
            _atomic_write_bytes(path / "config.json", json.dumps(config, indent=1).encode())
        elif _canonical(stored) != _canonical(config):
            raise ValueError(f"{path} holds a different config with the same hash; move it away")
        if not (path / "environment.json").is_file():
            _atomic_write_bytes(path / "environment.json", json.dumps(_environment()).encode())
        return run

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, records={len(self.records())})"

    # records ------------------------------------------------------------------------
    def _record_path(self, index: int) -> Path:
        return self.path / f"record_{index:03d}.json"

    def write_record(self, index: int, record: dict) -> None:
        """Store ``record`` as number ``index``, with a checksum of its content."""
        body = {"index": index, "record": record}
        body["sha256"] = hashlib.sha256(_canonical(body).encode()).hexdigest()
        _atomic_write_bytes(self._record_path(index), json.dumps(body, indent=1).encode())

    def read_record(self, index: int) -> dict | None:
        """Record ``index``, or ``None`` if missing or corrupt (a corrupt one warns)."""
        path = self._record_path(index)
        if not path.is_file():
            return None
        body = self._read_json(path)
        ok = isinstance(body, dict) and body.get("index") == index and "record" in body
        if ok:
            claimed = body.pop("sha256", None)
            ok = claimed == hashlib.sha256(_canonical(body).encode()).hexdigest()
        if not ok:
            warnings.warn(f"{path} is truncated or corrupt; it will be recomputed",
                          CorruptRecordWarning, stacklevel=2)  # fmt: skip
            return None
        return body["record"]

    def records(self) -> list[dict]:
        """The valid records 0, 1, ... up to the first missing or corrupt one."""
        out = []
        while (record := self.read_record(len(out))) is not None:
            out.append(record)
        return out

    def discard_from(self, index: int) -> None:
        """Delete records numbered ``index`` and above and checkpoints above ``index`` (the
        checkpoint ``index`` is what level ``index`` restarts from)."""
        for path in self.path.glob("record_*.json"):
            if int(path.stem.split("_")[1]) >= index:
                path.unlink()
        for path in self.path.glob("checkpoint_*.pt"):
            if int(path.stem.split("_")[1]) > index:
                path.unlink()

    # checkpoints --------------------------------------------------------------------
    def _checkpoint_path(self, index: int) -> Path:
        return self.path / f"checkpoint_{index:03d}.pt"

    def save_checkpoint(self, index: int, state: dict) -> None:
        """Store ``state`` (tensors, numbers, strings, dicts, lists) atomically."""
        path = self._checkpoint_path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(state, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self, index: int, map_location: str | torch.device = "cpu") -> dict | None:
        """Checkpoint ``index`` loaded with ``weights_only=True``, or ``None`` if missing or
        unreadable (which warns)."""
        path = self._checkpoint_path(index)
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # a truncated zip, a pickle that is not plain data, ...
            warnings.warn(f"{path} cannot be loaded ({type(err).__name__}); it will be recomputed",
                          CorruptRecordWarning, stacklevel=2)  # fmt: skip
            return None

    def delete(self) -> None:
        """Remove the whole run folder."""
        shutil.rmtree(self.path, ignore_errors=True)

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None


def iter_runs(root: str | os.PathLike | None = None, kind: str | None = None) -> Iterator[RunDir]:
    """Every run folder under ``root`` (optionally only those of ``kind``) with a readable
    config, in name order."""
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if not path.is_dir() or (kind is not None and not path.name.startswith(kind + "-")):
            continue
        config = RunDir._read_json(path / "config.json")
        if isinstance(config, dict):
            yield RunDir(path, config)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = tuple(value)
        else:
            out[name] = value
    return out


def load(
    root: str | os.PathLike | list[str | os.PathLike] | None = None, kind: str | None = None
) -> pd.DataFrame:
    """All records of all runs under ``root`` (one folder, or a list of folders) as one
    DataFrame: a row per record, the record's fields as columns, plus ``run`` (folder name)
    and the run's config flattened with dots (``setup.model``, ``method.rewind_steps``)."""
    roots = root if isinstance(root, list) else [root]
    rows = []
    for r in roots:
        for run in iter_runs(r, kind):
            config = _flatten(run.config)
            for record in run.records():
                flat = {k: v for k, v in record.items() if not isinstance(v, dict)}
                layers = {f"layers.{k}": v for k, v in record.get("layers", {}).items()}
                rows.append({"run": run.path.name, **config, **flat, **layers})
    df = pd.DataFrame(rows)
    if "density" in df:
        df["compression"] = 1.0 / df["density"].where(df["density"] > 0, math.nan)
    return df
