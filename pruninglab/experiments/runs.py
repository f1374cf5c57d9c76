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
* a record and a checkpoint name their run (the config's hash) and their stage, under the
  checksum: one copied from another run's folder, or renamed to another stage, is not used;
* a number that cannot occur is not used: a checkpoint's weights are finite, and so is every
  number of a record but those :data:`NON_FINITE` allows (a diverged training's loss);
* the store does not follow links it did not make: a run folder, a record, a checkpoint or a
  ``.lock`` that is a symbolic link is refused, naming the link, and so is anything that is
  not a regular file (a FIFO named ``config.json`` would block a read for ever);
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
import math
import os
import platform
import re
import secrets
import shutil
import socket
import stat
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
           "load", "iter_runs", "CorruptRecordWarning", "RunStoreWarning", "CHECKPOINT_FORMAT",
           "STALE_AFTER_S", "NON_FINITE", "MAX_JSON_BYTES"]

# /2: a checkpoint names its run and stage under its checksum (/1 did not: those are recomputed).
CHECKPOINT_FORMAT = "pruninglab-checkpoint/2"

# The numbers of a record that may be NaN or infinite, by the last part of their key; every
# other number must be finite. A training that diverged has an infinite or NaN loss; a running
# mean over no training steps is NaN; a mask that keeps nothing compresses infinitely.
NON_FINITE = {"loss": "nan or inf", "loss_running": "nan or inf", "_running": "nan",
              "compression": "inf"}

# A record is a few kB (a TOM phase with its history, the largest, 12 kB; a config smaller);
# a store's JSON file larger than this is not one of its own, and is not read into memory.
MAX_JSON_BYTES = 16 * 2**20

# Opening flags that make a symbolic link or a FIFO an error instead of a door (POSIX only).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

# A temporary file of another machine (a store on a shared disk) is only removed when it
# is older than this; on this machine, as soon as the process that wrote it has ended.
STALE_AFTER_S = 24 * 3600

_RECORD = re.compile(r"record_(\d{3,})\.json")
_CHECKPOINT = re.compile(r"checkpoint_(\d{3,})\.pt")


class CorruptRecordWarning(UserWarning):
    """A stored record or checkpoint could not be trusted and will be recomputed; the
    attribute ``reason`` says why, in a few words (``"it cannot be read (Permission
    denied)"``, ``"it belongs to another run ..."``)."""

    reason: str = ""


class RunStoreWarning(UserWarning):
    """Something in a run store was passed over: a run folder that is a symbolic link."""


class _Untrusted(Exception):
    """A store's file that is there but cannot be read as one of its own (the reason)."""


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


def _open_own(path: Path, limit: int | None = MAX_JSON_BYTES) -> io.BufferedReader:
    """The store's file ``path``, open for reading: never through a symbolic link, never
    what is not a regular file (a FIFO would block), never one over ``limit`` bytes.

    Raises:
        FileNotFoundError: there is nothing at ``path``.
        IsADirectoryError: it is a folder (not the store's own file: passed over).
        _Untrusted: there is something, but not a file the store can read; says why.
    """
    if path.is_symlink():
        raise _Untrusted(f"it is {checks.a_link(path)}")
    try:  # O_NOFOLLOW: a link made since the line above is refused too (ELOOP)
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise _Untrusted(f"it cannot be read ({err.strerror})") from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, "a folder", str(path))
    problem = None if stat.S_ISREG(info.st_mode) else "it is not a regular file"
    if problem is None and limit is not None and info.st_size > limit:
        problem = f"it is {info.st_size:,} bytes, more than the store's files can be ({limit:,})"
    if problem is not None:
        os.close(fd)
        raise _Untrusted(problem)
    return os.fdopen(fd, "rb")


def _read_own(path: Path, limit: int | None = MAX_JSON_BYTES) -> bytes:
    """The bytes of the store's file ``path`` (:func:`_open_own` says which files)."""
    with _open_own(path, limit) as f:
        try:
            return f.read()
        except OSError as err:  # EIO
            raise _Untrusted(f"it cannot be read ({err.strerror})") from None


def _read_json(path: Path) -> Any:
    """``path``'s JSON, or ``None`` if it is missing or is not a readable JSON file."""
    try:
        return json.loads(_read_own(path))
    except (FileNotFoundError, IsADirectoryError, _Untrusted, ValueError, UnicodeDecodeError):
        return None


def _non_finite(value: Any, where: str = "record", name: str = "") -> str | None:
    """Where ``value`` (a record) holds a NaN or infinite number that :data:`NON_FINITE`
    does not allow, as ``"record['test_accuracy'] = nan"``; ``None`` if nowhere."""
    if isinstance(value, dict):
        items = [(f"{where}[{key!r}]", str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f"{where}[{i}]", name, item) for i, item in enumerate(value)]
    elif isinstance(value, float) and not math.isfinite(value):
        kind = "nan" if math.isnan(value) else "inf"
        allowed = any(name.endswith(suffix) and kind in kinds
                      for suffix, kinds in NON_FINITE.items())
        return None if allowed else f"{where} = {value!r}"
    else:
        return None
    for at, key, item in items:
        if (found := _non_finite(item, at, key)) is not None:
            return found
    return None


def _non_finite_tensor(state: Any, where: str = "checkpoint") -> str | None:
    """Where ``state`` holds a floating-point tensor with a NaN or infinite entry."""
    if isinstance(state, torch.Tensor):
        bad = state.is_floating_point() and not bool(torch.isfinite(state).all())
        return where if bad else None
    items = (state.items() if isinstance(state, dict) else enumerate(state)
             if isinstance(state, list | tuple) else ())
    for key, item in items:
        if (found := _non_finite_tensor(item, f"{where}[{key!r}]")) is not None:
            return found
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
        self.hash = config_hash(config)  # what its records and checkpoints must name

    @staticmethod
    def path_for(kind: str, config: dict, root: str | os.PathLike | None = None) -> Path:
        """Where the run of ``kind`` with ``config`` lives under ``root`` (it may not exist)."""
        return _root(root) / f"{kind}-{config_hash(config)}"

    @classmethod
    def open(cls, kind: str, config: dict, root: str | os.PathLike | None = None) -> RunDir:
        """The folder for ``config`` under ``root`` (created if new); temporary files left
        by killed writes are removed.

        Raises:
            OSError: the run folder or its ``config.json`` is a symbolic link (``ELOOP``),
                or ``config.json`` is not a regular file the store can read.
            NotADirectoryError: a file has the run folder's name.
            PermissionError: a new run cannot be made in ``root``.
            ValueError: the folder holds another config with the same hash.
        """
        path = cls.path_for(kind, config, root)
        run = cls(path, config)
        run.check_folder()
        try:
            stored = json.loads(_read_own(checks.not_a_link(path / "config.json", "the file")))
        except (FileNotFoundError, IsADirectoryError):
            stored = None
        except _Untrusted as err:
            raise OSError(errno.EINVAL, f"{path / 'config.json'}: {err}; a run store reads only "
                          "its own files there. Move it away") from None
        except (ValueError, UnicodeDecodeError):
            stored = None  # damaged: written again from the config, which is known
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

    def check_folder(self) -> None:
        """Raise ``OSError`` if the run folder is a symbolic link, ``NotADirectoryError`` if
        it is a file (a missing folder is fine: it is made at the first write)."""
        checks.not_a_link(self.path, "the run folder")
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{self.path} is a file where the run's "
                                     "folder must be; move it away")

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
        self.check_folder()
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

    def _elsewhere(self, run: object, stage: object, index: int) -> str | None:
        """Why a record or checkpoint that names ``run`` and ``stage`` is not stage ``index``
        of this run; ``None`` when it is."""
        if run == self.hash and stage == index:
            return None
        return (f"it belongs to another run or stage (run {checks.shown(run, 20)}, stage "
                f"{checks.shown(stage, 20)}; this is run {self.hash}, stage {index}): copied "
                "from another run's folder?")

    # records ------------------------------------------------------------------------
    def _record_path(self, index: int) -> Path:
        return self.path / f"record_{index:03d}.json"

    def write_record(self, index: int, record: dict) -> None:
        """Store ``record`` as number ``index`` of this run, with a checksum of its content,
        the run's config hash and ``index``.

        Raises:
            ValueError: ``record`` holds a NaN or infinite number that :data:`NON_FINITE`
                does not allow (it would be refused when read: a bug in the experiment).
        """
        if (found := _non_finite(record)) is not None:
            raise ValueError(f"record {index} of {self.path.name} holds {found}, which no "
                             f"finished stage can give (only {sorted(NON_FINITE)} may be NaN or "
                             "infinite); it was not stored")
        body = {"config_hash": self.hash, "index": index, "record": record}
        body["sha256"] = hashlib.sha256(_canonical(body).encode()).hexdigest()
        _write_json(self._record_path(index), body)

    def read_record(self, index: int) -> dict | None:
        """Record ``index``, or ``None`` if it is missing or cannot be trusted (which warns:
        it cannot be read, is damaged, is another run's or another stage's, or holds a
        number that cannot occur)."""
        path = self._record_path(index)
        try:
            body = json.loads(_read_own(path))
        except (FileNotFoundError, IsADirectoryError):
            return None
        except _Untrusted as err:
            return _distrust(path, str(err))
        except (ValueError, UnicodeDecodeError):
            return _distrust(path, "it is truncated or is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("record"), dict):
            return _distrust(path, "it is not a pruninglab record")
        if "config_hash" not in body:
            return _distrust(path, "it names no run (an older pruninglab wrote it)")
        if (other := self._elsewhere(body["config_hash"], body.get("index"), index)) is not None:
            return _distrust(path, other)
        claimed = body.pop("sha256", None)
        if claimed != hashlib.sha256(_canonical(body).encode()).hexdigest():
            return _distrust(path, "its content does not match its checksum")
        if (found := _non_finite(body["record"])) is not None:
            return _distrust(path, f"it holds {found}, which no finished stage can give")
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
            if not (path.is_file() or path.is_symlink()):  # a link itself goes, not its target
                continue
            if (record and int(record[1]) >= index) or (checkpoint and int(checkpoint[1]) > index):
                path.unlink()

    # checkpoints --------------------------------------------------------------------
    def _checkpoint_path(self, index: int) -> Path:
        return self.path / f"checkpoint_{index:03d}.pt"

    def save_checkpoint(self, index: int, state: dict) -> None:
        """Store ``state`` (tensors, numbers, strings, and dicts or lists of them) atomically,
        with a SHA-256 of its content, the run's config hash and ``index``."""
        buffer = io.BytesIO()
        tie = {"config_hash": self.hash, "index": index}
        torch.save({"format": CHECKPOINT_FORMAT, **tie, "sha256": _digest({**tie, "state": state}),
                    "state": state}, buffer)
        atomic_write(self._checkpoint_path(index), buffer.getvalue())

    def load_checkpoint(self, index: int, expected: dict | None = None,
                        map_location: str | torch.device = "cpu") -> dict | None:
        """Checkpoint ``index``, or ``None`` if it is missing or cannot be trusted (which
        warns): it must be a regular file (not a link), load with ``weights_only=True``,
        name this run and ``index``, match its checksum, hold finite floating-point tensors
        only and, if ``expected`` is given, have its structure (the same keys, tensors of the
        same shapes and dtypes, numbers where numbers are)."""
        path = self._checkpoint_path(index)
        try:
            file = _open_own(path, limit=None)
        except (FileNotFoundError, IsADirectoryError):
            return None
        except _Untrusted as err:
            return _distrust(path, str(err))
        try:
            with file:
                body = torch.load(file, map_location=map_location, weights_only=True)
        except Exception as err:  # a truncated zip, a pickle that is not plain data, ...
            return _distrust(path, f"it cannot be loaded ({type(err).__name__})")
        if isinstance(body, dict) and str(body.get("format", "")).startswith(
                "pruninglab-checkpoint/") and body.get("format") != CHECKPOINT_FORMAT:
            return _distrust(path, f"an older pruninglab wrote it ({body['format']})")
        if not isinstance(body, dict) or body.get("format") != CHECKPOINT_FORMAT \
                or not isinstance(body.get("state"), dict):
            return _distrust(path, "it is not a pruninglab checkpoint")
        state, tie = body["state"], {"config_hash": body.get("config_hash"),
                                     "index": body.get("index")}
        if (other := self._elsewhere(tie["config_hash"], tie["index"], index)) is not None:
            return _distrust(path, other)
        try:
            digest = _digest({**tie, "state": state})
        except TypeError as err:
            return _distrust(path, str(err))
        if body.get("sha256") != digest:
            return _distrust(path, "its content does not match its checksum")
        if expected is not None and (found := _mismatch(expected, state)) is not None:
            return _distrust(path, f"it holds the wrong thing: {found}")
        if (found := _non_finite_tensor(state)) is not None:
            return _distrust(path, f"{found} holds NaN or infinite values")
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
        self.check_folder()
        lock_file = checks.not_a_link(self.path / ".lock", "the lock file")
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o666)
        with os.fdopen(fd, "r+b") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, f"the lock file {lock_file} is not a regular file; "
                              "move it away")
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
        """Remove the whole run folder (``OSError`` if it is a symbolic link: neither it nor
        what it points to is removed)."""
        checks.not_a_link(self.path, "the run folder")
        shutil.rmtree(self.path, ignore_errors=True)


def _distrust(path: Path, reason: str) -> None:
    warning = CorruptRecordWarning(f"{path}: {reason}; it will be recomputed")
    warning.reason = reason
    warnings.warn(warning, stacklevel=3)
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
        if kind is not None and not path.name.startswith(kind + "-"):
            continue
        if path.is_symlink():
            warnings.warn(f"{path} is {checks.a_link(path)}; the run store does not follow "
                          "links it did not make, so it was passed over",
                          RunStoreWarning, stacklevel=2)
            continue
        if not path.is_dir():
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
