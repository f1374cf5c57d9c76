"""The run store: one folder per run, named by its kind and a hash of its full config.

::

    runs/                                   ($PRUNINGLAB_RUNS, or ./runs)
      gimp-3f9c0a1b2d/
        config.json                         the full config (what the hash is of)
        environment.json                    torch, python, device, time of the first start
        record_000.json, record_001.json    one record per finished stage, with a checksum
        checkpoint_001.pt                   the state stage 1 starts from, with a checksum

Nothing in a store is trusted that cannot be checked:

* every write is atomic (:func:`atomic_write`: a temporary file, ``fsync``, ``os.replace``),
  so a run killed at any moment leaves only whole files, and the temporary file of a write
  that was killed is removed the next time the run is opened;
* a record carries a SHA-256 of its content; a checkpoint carries a SHA-256 of its tensors'
  bytes and is loaded with ``weights_only=True`` (no pickled code runs), then compared with
  the structure the caller expects (keys, shapes, dtypes). Whatever fails is reported
  (:class:`CorruptRecordWarning`) and recomputed, never used;
* files whose names are not the store's own (``record_backup.json``, a folder) are ignored;
* files are created with the permissions the umask allows (a store shared by a group
  stays readable to it); a full disk is reported with the file that could not be written.

:func:`load` reads many runs as one DataFrame.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..core import checks

try:
    import fcntl
except ImportError:  # Windows: RunDir.lock does not lock
    fcntl = None

__all__ = ["default_root", "check_store", "config_hash", "cpu_state", "atomic_write", "RunDir",
           "load", "iter_runs", "CorruptRecordWarning", "CHECKPOINT_FORMAT", "STALE_AFTER_S"]

CHECKPOINT_FORMAT = "pruninglab-checkpoint/1"

# A temporary file of another machine (a store on a shared disk) is only removed when it
# is older than this; on this machine, as soon as the process that wrote it has ended.
STALE_AFTER_S = 24 * 3600

_RECORD = re.compile(r"record_(\d{3,})\.json")
_CHECKPOINT = re.compile(r"checkpoint_(\d{3,})\.pt")


class CorruptRecordWarning(UserWarning):
    """A stored record or checkpoint could not be trusted and will be recomputed."""


def default_root() -> Path:
    """``$PRUNINGLAB_RUNS`` if set, else ``./runs`` (relative to the working directory).

    Raises:
        ValueError: ``PRUNINGLAB_RUNS`` is set but empty (it would silently mean the
            working directory) or cannot be a path.
        NotADirectoryError: it names a file.
    """
    value = os.environ.get("PRUNINGLAB_RUNS")
    if value is None:
        return Path("runs")
    if not value.strip():
        raise ValueError("PRUNINGLAB_RUNS is set but empty; set it to the run-store folder "
                         "(e.g. PRUNINGLAB_RUNS=$PWD/runs) or unset it to use ./runs")
    return check_store(checks.path(value, "PRUNINGLAB_RUNS (the run-store folder; unset it "
                                          "to use ./runs)"), "PRUNINGLAB_RUNS")


def check_store(root: Path, name: str = "store") -> Path:
    """``root`` unless it is a file (a store is a folder, made when the first run is)."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{name} {str(root)!r} is a file, not a run-store folder")
    return root


def _root(root: str | os.PathLike | None) -> Path:
    return default_root() if root is None else check_store(checks.path(root, "store"))


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str)


def config_hash(config: dict) -> str:
    """A short (10 hex digits) SHA-256 of the config's canonical JSON."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:10]


def cpu_state(state: dict) -> dict:
    """Detached CPU copies of a state dict's tensors (in nested dicts too; other values as
    they are), ready for :meth:`RunDir.save_checkpoint`."""
    return {k: v.detach().cpu().clone() if isinstance(v, torch.Tensor)
            else cpu_state(v) if isinstance(v, dict) else v for k, v in state.items()}


# --------------------------------------------------------------------------------------
# Atomic writes and the temporary files they leave when killed
# --------------------------------------------------------------------------------------


def _temporary(path: Path) -> Path:
    """``.<name>~<host>~<pid>~<random>.tmp`` beside ``path``: who wrote it is in its name."""
    return path.with_name(f".{path.name}~{socket.gethostname()}~{os.getpid()}~"
                          f"{secrets.token_hex(4)}.tmp")


def atomic_write(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that ``path`` is either the old file or the new one,
    whatever happens: to a temporary file beside it, ``fsync``, then ``os.replace``. The
    file gets the permissions the umask allows (``0o666 & ~umask``).

    Raises:
        OSError: with ``errno.ENOSPC`` and a message naming ``path`` when the disk is full
            (the temporary file is removed); ``IsADirectoryError`` when ``path`` is a folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{path} is a folder where pruninglab must write "
                                "a file; move it away", str(path))
    tmp = _temporary(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err.errno, f"the disk is full: writing {path} ({len(payload):,} bytes) "
                          "failed. Free space on that disk or move the run store "
                          "(PRUNINGLAB_RUNS)", str(path)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _is_stale(tmp: Path, now: float) -> bool:
    """Whether the temporary file ``tmp`` belongs to a write that can never finish."""
    parts = tmp.name[1:-len(".tmp")].rsplit("~", 3)
    try:
        age = now - tmp.stat().st_mtime
    except OSError:
        return False
    if len(parts) != 4 and (_RECORD.match(tmp.name[1:]) or _CHECKPOINT.match(tmp.name[1:])
                            or tmp.name.startswith((".config.json.", ".environment.json."))):
        return True  # an earlier version's mkstemp name: nothing writes those any more
    if len(parts) == 4 and parts[1] == socket.gethostname() and parts[2].isdigit():
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            return True  # the writer is gone: its write can never finish
        except OSError:
            pass  # the process exists (perhaps another user's)
        return False
    return age > STALE_AFTER_S


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=1).encode())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _environment() -> dict:
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cuda": cuda, "torch_threads": torch.get_num_threads()}  # CPU sums vary with it


# --------------------------------------------------------------------------------------
# Checkpoint checksums and structure
# --------------------------------------------------------------------------------------


def _feed(h: Any, obj: Any) -> None:
    """Hash ``obj`` (tensors, numbers, strings, None, and dicts/lists of them) by content."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=str):
            h.update(f"K{key!r};".encode())
            _feed(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    elif obj is None or isinstance(obj, bool | int | float | str):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"a checkpoint holds tensors, numbers, strings and dicts or lists of "
                        f"them, not {type(obj).__name__}")


def _digest(obj: Any) -> str:
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _mismatch(expected: Any, got: Any, where: str = "checkpoint") -> str | None:
    """How ``got`` differs in structure from ``expected`` (keys, types, tensor shapes and
    dtypes), or ``None`` when it has the same structure."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{where} is a {type(got).__name__}, expected a tensor"
        if got.shape != expected.shape or got.dtype != expected.dtype:
            return (f"{where} is {got.dtype} {tuple(got.shape)}, expected {expected.dtype} "
                    f"{tuple(expected.shape)}")
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where} is a {type(got).__name__}, expected a dict"
        missing, extra = set(expected) - set(got), set(got) - set(expected)
        if missing or extra:
            return (f"{where} lacks keys {sorted(missing, key=str)}, has extra "
                    f"{sorted(extra, key=str)}")
        for key in expected:
            if (found := _mismatch(expected[key], got[key], f"{where}[{key!r}]")) is not None:
                return found
        return None
    if isinstance(expected, list | tuple):
        if not isinstance(got, list | tuple) or len(got) != len(expected):
            return f"{where} is {got!r:.60}, expected a sequence of {len(expected)}"
        for i, (a, b) in enumerate(zip(expected, got)):
            if (found := _mismatch(a, b, f"{where}[{i}]")) is not None:
                return found
        return None
    kinds = {bool: (bool,), int: (int,), float: (float, int), str: (str,)}
    allowed = kinds.get(type(expected), (type(expected),))
    if isinstance(got, bool) != isinstance(expected, bool) or not isinstance(got, allowed):
        return f"{where} is {got!r:.60}, expected a {type(expected).__name__}"
    return None


# --------------------------------------------------------------------------------------
# One run's folder
# --------------------------------------------------------------------------------------


class RunDir:
    """One run's folder. Use :meth:`open`; records and checkpoints are numbered from 0."""

    def __init__(self, path: Path, config: dict) -> None:
        self.path = Path(path)
        self.config = config

    @staticmethod
    def path_for(kind: str, config: dict, root: str | os.PathLike | None = None) -> Path:
        """Where the run of ``kind`` with ``config`` lives under ``root`` (it may not exist)."""
        return _root(root) / f"{kind}-{config_hash(config)}"

    @classmethod
    def open(cls, kind: str, config: dict, root: str | os.PathLike | None = None) -> RunDir:
        """The folder for ``config`` under ``root`` (created if new); temporary files left
        by killed writes are removed."""
        path = cls.path_for(kind, config, root)
        run = cls(path, config)
        stored = _read_json(path / "config.json")
        if stored is None:
            try:
                _write_json(path / "config.json", config)
            except PermissionError as err:
                raise PermissionError(
                    errno.EACCES, f"the run store {path.parent} is not writable "
                    f"({err.strerror}): the run {path.name} cannot be stored there. Make it "
                    "writable, or choose another store (store=... or PRUNINGLAB_RUNS)",
                    str(path)) from err
        elif _canonical(stored) != _canonical(config):
            raise ValueError(f"{path} holds a different config with the same hash; move it away")
        run.remove_stale_temporaries()
        return run

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, records={len(self.records())})"

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files of writes that can never finish (their process has
        ended, or, for another machine's, they are older than :data:`STALE_AFTER_S`);
        returns what was removed. A folder that cannot be written is left as it is."""
        now, removed = time.time(), []
        for tmp in self.path.glob(".*.tmp"):
            if tmp.is_file() and _is_stale(tmp, now):
                try:
                    tmp.unlink()
                    removed.append(tmp)
                except OSError:
                    pass
        return removed

    def check_writable(self) -> None:
        """Raise ``PermissionError`` naming the folder if a file cannot be created in it
        (checked before any training, so that no work is lost at the first save)."""
        probe = _temporary(self.path / "write-probe")
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            probe.unlink()
        except OSError as err:
            raise PermissionError(
                errno.EACCES, f"the run-store folder {self.path} is not writable "
                f"({err.strerror}), so the run could not save what it trains. Make it "
                "writable, or choose another store (store=... or PRUNINGLAB_RUNS)",
                str(self.path)) from err

    def write_environment(self) -> None:
        """Record torch, Python, platform and GPU, once (at a run's first start)."""
        if not (self.path / "environment.json").is_file():
            _write_json(self.path / "environment.json", _environment())

    # records ------------------------------------------------------------------------
    def _record_path(self, index: int) -> Path:
        return self.path / f"record_{index:03d}.json"

    def write_record(self, index: int, record: dict) -> None:
        """Store ``record`` as number ``index``, with a checksum of its content."""
        body = {"index": index, "record": record}
        body["sha256"] = hashlib.sha256(_canonical(body).encode()).hexdigest()
        _write_json(self._record_path(index), body)

    def read_record(self, index: int) -> dict | None:
        """Record ``index``, or ``None`` if missing or corrupt (a corrupt one warns)."""
        path = self._record_path(index)
        if not path.is_file():
            return None
        body = _read_json(path)
        ok = isinstance(body, dict) and body.get("index") == index and \
            isinstance(body.get("record"), dict)
        if ok:
            claimed = body.pop("sha256", None)
            ok = claimed == hashlib.sha256(_canonical(body).encode()).hexdigest()
        if not ok:
            warnings.warn(f"{path} is truncated or corrupt; it will be recomputed",
                          CorruptRecordWarning, stacklevel=2)
            return None
        return body["record"]

    def records(self, warn: bool = True) -> list[dict]:
        """The valid records 0, 1, ... up to the first missing or corrupt one (which warns,
        unless ``warn`` is false: for a second look at what was read already)."""
        if not warn:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CorruptRecordWarning)
                return self.records()
        out = []
        while (record := self.read_record(len(out))) is not None:
            out.append(record)
        return out

    def discard_from(self, index: int) -> None:
        """Delete records numbered ``index`` and above and checkpoints above ``index`` (the
        checkpoint ``index`` is what stage ``index`` restarts from). Files that are not the
        store's own are left alone."""
        for path in self.path.iterdir():
            record, checkpoint = _RECORD.fullmatch(path.name), _CHECKPOINT.fullmatch(path.name)
            if not path.is_file():
                continue
            if (record and int(record[1]) >= index) or (checkpoint and int(checkpoint[1]) > index):
                path.unlink()

    # checkpoints --------------------------------------------------------------------
    def _checkpoint_path(self, index: int) -> Path:
        return self.path / f"checkpoint_{index:03d}.pt"

    def save_checkpoint(self, index: int, state: dict) -> None:
        """Store ``state`` (tensors, numbers, strings, and dicts or lists of them) atomically,
        with a SHA-256 of its content."""
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "sha256": _digest(state), "state": state},
                   buffer)
        atomic_write(self._checkpoint_path(index), buffer.getvalue())

    def load_checkpoint(self, index: int, expected: dict | None = None,
                        map_location: str | torch.device = "cpu") -> dict | None:
        """Checkpoint ``index``, or ``None`` if it is missing or cannot be trusted (which
        warns): it must load with ``weights_only=True``, match its checksum and, if
        ``expected`` is given, have its structure (the same keys, tensors of the same
        shapes and dtypes, numbers where numbers are)."""
        path = self._checkpoint_path(index)
        if not path.is_file():
            return None
        try:
            body = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # a truncated zip, a pickle that is not plain data, ...
            return _distrust(path, f"it cannot be loaded ({type(err).__name__})")
        if not isinstance(body, dict) or body.get("format") != CHECKPOINT_FORMAT \
                or not isinstance(body.get("state"), dict):
            return _distrust(path, "it is not a pruninglab checkpoint")
        state = body["state"]
        try:
            digest = _digest(state)
        except TypeError as err:
            return _distrust(path, str(err))
        if body.get("sha256") != digest:
            return _distrust(path, "its content does not match its checksum")
        if expected is not None and (found := _mismatch(expected, state)) is not None:
            return _distrust(path, f"it holds the wrong thing: {found}")
        return state

    # computing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold this run's lock (its file ``.lock``) while its stages are computed: another
        process that computes the same run (a second notebook, a sweep's other item) waits
        for it, then finds the stages stored instead of training them again.

        The lock is a POSIX record lock (``fcntl.lockf``), which the kernel drops when its
        process ends, however it ends; on a store on NFS it works across machines where
        NFS's locking runs. It belongs to the process: threads of one process share it, and
        a second ``lock()`` of the same run inside the first would release both when it
        ends (nothing does that: a stage locks only other runs). ``on_wait`` is told, once,
        when the lock is held elsewhere. Where ``fcntl`` does not exist (Windows), or the
        file system refuses locks (NFS without its lock service), there is no lock -- the
        latter warns -- and two processes may compute the same run, to the same records.
        """
        if fcntl is None:
            yield
            return
        with open(self.path / ".lock", "a+b") as handle:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):  # no locks on this disk
                    warnings.warn(f"{self.path} cannot be locked ({err.strerror}); two "
                                  "processes that compute this run at once will both train it",
                                  RuntimeWarning, stacklevel=3)
                    yield
                    return
                if on_wait is not None:  # held by another process
                    on_wait(f"another process is computing the run {self.path}; waiting for "
                            "it to finish")
                fcntl.lockf(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN)

    def delete(self) -> None:
        """Remove the whole run folder."""
        shutil.rmtree(self.path, ignore_errors=True)


def _distrust(path: Path, reason: str) -> None:
    warnings.warn(f"{path}: {reason}; it will be recomputed", CorruptRecordWarning, stacklevel=3)
    return None


# --------------------------------------------------------------------------------------
# Many runs
# --------------------------------------------------------------------------------------


def iter_runs(root: str | os.PathLike | None = None, kind: str | None = None) -> Iterator[RunDir]:
    """Every run folder under ``root`` (optionally only those of ``kind``) with a readable
    config, in name order."""
    root = _root(root)
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if not path.is_dir() or (kind is not None and not path.name.startswith(kind + "-")):
            continue
        config = _read_json(path / "config.json")
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
    if "density" in df:  # records that store no compression ratio (total / kept) get one
        ratio = 1.0 / df["density"].where(df["density"] > 0)
        df["compression"] = df["compression"].fillna(ratio) if "compression" in df else ratio
    return df
