"""How many threads torch should use here: from the CPUs this process may really use.

``os.cpu_count()`` counts the machine's cores, not what a process gets: a Binder pod or a
course server hands a notebook a CPU quota (cgroup ``cpu.max``), ``taskset`` or a batch
scheduler pins it, and a laptop runs a browser and the Jupyter server beside it. torch
starts one thread per visible core, and its OpenMP threads *spin* while they wait for each
other, so one thread that shares its core with another busy process stalls them all
(docs/measurements.md, "Threads": a notebook ten times slower). :func:`configure`::

    usable  = min(CPUs in the affinity mask, the cgroup CPU quota rounded down)
    threads = max(1, usable - 1)      one CPU left to the rest of the machine

or ``$PRUNINGLAB_THREADS`` when set, and OpenMP's waiting threads sleep instead of spinning
(``OMP_WAIT_POLICY=PASSIVE``). Why one CPU fewer: a student's machine is never quiet, and
the quick profile's MLP is no faster with two threads (docs/measurements.md); set
``PRUNINGLAB_THREADS=2`` for conv nets on a 2-core machine that nothing else uses.

OpenMP reads its wait policy once, when torch loads, so ``import pruninglab`` sets
``OMP_WAIT_POLICY=PASSIVE`` (unless you set it) only when torch is not loaded yet
(:func:`prefer_passive_waiting`); ``make``, the notebook runner and Binder set it for every
kernel. :func:`configure` sets torch's threads and the BLAS/OpenMP libraries below it
(``threadpoolctl``) and writes the count to ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` for processes started afterwards (the notebook kernels). The
notebook harness, the headless runner, the benchmarks and the tests call it; in your own
script, ``import pruninglab`` before torch and call ``pruninglab.core.threads.configure()``.
This module imports torch only inside :func:`configure`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CHILD_ENV", "ENV", "WAIT_POLICY", "Plan", "cgroup_quota", "configure",
           "plan", "prefer_passive_waiting", "usable_cpus", "waits_passively"]

ENV = "PRUNINGLAB_THREADS"
WAIT_POLICY = "OMP_WAIT_POLICY"
CHILD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Plan:
    """How many threads to use and why.

    Attributes:
        threads: intra-op (and inter-op, BLAS, OpenMP) threads.
        usable: CPUs this process may use (affinity and quota), or ``None`` when
            ``$PRUNINGLAB_THREADS`` or the caller chose.
        reason: the sources, in words, e.g. ``"affinity 2 CPUs, no cgroup quota, OpenMP
            waits passively"``.
    """

    threads: int
    usable: int | None
    reason: str

    def __str__(self) -> str:
        what = f"{self.threads} torch thread{'s' if self.threads > 1 else ''}"
        if self.usable is None:
            return f"{what} ({self.reason})"
        spare = "; one CPU left to the rest of the machine" if self.usable > self.threads else ""
        return (f"{what} ({self.usable} usable CPU{'s' if self.usable > 1 else ''}: "
                f"{self.reason}{spare})")


def waits_passively(environ: Mapping[str, str] | None = None) -> bool:
    """Whether OpenMP's waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE``, any case)
    rather than spin. Read from ``environ`` (default ``os.environ``): torch's OpenMP read
    the same variable when it loaded, unless someone changed it since."""
    environ = os.environ if environ is None else environ
    return environ.get(WAIT_POLICY, "").strip().lower() == "passive"


def prefer_passive_waiting() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for this process and its children if torch is not
    loaded yet and the variable is not set; ``import pruninglab`` calls it first thing.
    Returns whether OpenMP will wait passively (see the module's text)."""
    if "torch" not in sys.modules:
        os.environ.setdefault(WAIT_POLICY, "PASSIVE")
    return waits_passively()


def _quota_file(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` line (``"max 100000"`` or ``"150000 100000"``);
    ``None`` for no quota or a line that is not one."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max" or not quota.isdecimal() or not period.isdecimal() or int(period) == 0:
        return None
    return int(quota) / int(period) if int(quota) > 0 else None


def _read_v2(folder: Path) -> float | None:
    try:
        return _quota_file((folder / "cpu.max").read_text())
    except OSError:
        return None


def _read_v1(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None  # quota -1: none


def _v1_cpu_mounts(root: Path) -> list[Path]:
    """The cgroup v1 hierarchies under ``root`` that hold the ``cpu`` controller: folders
    named ``cpu``, ``cpu,cpuacct``, ``cpuacct,cpu``, ``cpu,cpuacct,cpuset``, ..."""
    try:
        return sorted(d for d in root.iterdir() if "cpu" in d.name.split(","))
    except OSError:
        return []


def cgroup_quota(root: str | os.PathLike = "/sys/fs/cgroup",
                 self_cgroup: str | os.PathLike = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's cgroup and its ancestors, in CPUs (``1.5`` = one
    and a half CPUs' time per period), or ``None`` when there is none.

    Reads cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``),
    from the process's own cgroup up to the root of the mount, the smallest quota winning.
    Inside a container the cgroup path is often ``/``: the mount's top files are then the
    container's own. Lines of ``self_cgroup`` that are not ``id:controllers:path`` and
    files that cannot be read count as no quota.
    """
    root = Path(root)
    try:
        lines = Path(self_cgroup).read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: "0::/path"
            mounts, read = [root, root / "unified"], _read_v2
        elif "cpu" in controllers.split(","):
            mounts, read = _v1_cpu_mounts(root), _read_v1
        else:
            continue
        # "/../x" (a cgroup outside this namespace's root) must not lead out of the mount
        relative = os.path.normpath("/" + path).lstrip("/")
        for mount in mounts:
            folder = mount / relative if relative not in ("", ".") else mount
            while True:
                quota = read(folder)
                if quota is not None:
                    quotas.append(quota)
                if folder == mount:
                    break
                folder = folder.parent
    return min(quotas) if quotas else None


def _affinity() -> tuple[int, str]:
    """``(cpus, words)``: the CPUs this process may run on (its affinity mask; where there
    is no affinity call, macOS and Windows, the machine's cores)."""
    if hasattr(os, "sched_getaffinity"):
        affinity = len(os.sched_getaffinity(0))
        return affinity, f"affinity {affinity} CPU{'s' if affinity > 1 else ''}"
    cores = os.cpu_count() or 1
    return cores, f"{cores} cores"


def usable_cpus(root: str | os.PathLike = "/sys/fs/cgroup",
                self_cgroup: str | os.PathLike = "/proc/self/cgroup") -> tuple[int, str]:
    """``(cpus, reason)``: how many CPUs this process may keep busy at once, the smaller of
    its affinity mask and its cgroup quota (rounded down, at least 1), and the sources in
    words. ``root`` is where the cgroup file systems are mounted, ``self_cgroup`` the file
    naming this process's cgroups (both replaced in tests)."""
    affinity, words = _affinity()
    reasons = [words]
    quota = cgroup_quota(root, self_cgroup)
    if quota is None:
        reasons.append("no cgroup quota")
        return affinity, ", ".join(reasons)
    reasons.append(f"cgroup quota {quota:g} CPUs")
    return max(1, min(affinity, math.floor(quota))), ", ".join(reasons)


def plan(environ: Mapping[str, str] | None = None, root: str | os.PathLike = "/sys/fs/cgroup",
         self_cgroup: str | os.PathLike = "/proc/self/cgroup") -> Plan:
    """The thread count :func:`configure` would set: ``$PRUNINGLAB_THREADS`` if set, else
    one fewer than the usable CPUs, at least one (see the module's text for why).
    ``environ`` defaults to ``os.environ``; ``root`` and ``self_cgroup`` as in
    :func:`usable_cpus`.

    ``$PRUNINGLAB_THREADS`` above the CPUs this process may run on (its affinity mask) is
    clamped to them, and the plan's reason says so: more threads than CPUs only wait for
    each other. Below that it is taken as it is, a cgroup quota notwithstanding (a quota
    of 1.5 CPUs may well run two threads faster than one).

    Raises:
        ValueError: ``$PRUNINGLAB_THREADS`` is not a positive integer.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(ENV, "").strip()
    if text:
        if not (text.isascii() and text.isdecimal()) or int(text) < 1:
            raise ValueError(f"{ENV}={environ[ENV]!r} is not a positive integer; set it to the "
                             "number of threads torch should use (e.g. 1), or unset it")
        affinity, words = _affinity()
        if int(text) > affinity:
            return Plan(affinity, None, f"{ENV}={text} clamped to the {words} this process "
                                        "may run on")
        return Plan(int(text), None, f"{ENV}={text}")
    usable, reason = usable_cpus(root, self_cgroup)
    waits = ("OpenMP waits passively" if waits_passively(environ) else
             f"OpenMP threads spin while they wait ({WAIT_POLICY} is not PASSIVE)")
    return Plan(max(1, usable - 1), usable, f"{reason}, {waits}")


def configure(threads: int | None = None) -> Plan:
    """Set torch's intra-op and inter-op threads, the BLAS/OpenMP libraries' pools and the
    ``OMP_NUM_THREADS``-style variables of child processes to ``threads`` (default: the
    :func:`plan`). Returns the plan applied.

    torch lets a process size its inter-op pool only once, before any inter-op work: a
    later call keeps the first size (``torch.get_num_interop_threads()`` tells it), which
    matters only to TorchScript's ``fork``; the intra-op threads, the ones that matter for
    training, follow every call.

    Raises:
        ValueError: ``threads`` is not a positive integer, or ``$PRUNINGLAB_THREADS`` is
            set to something that is not one.
    """
    import torch  # here, not at the top: see the module's text

    if threads is None:
        chosen = plan()
    else:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        chosen = Plan(threads, None, "asked for")
    torch.set_num_threads(chosen.threads)
    if torch.get_num_interop_threads() != chosen.threads:
        # RuntimeError: the pool is running, and its size is fixed from now on
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(chosen.threads)
    from threadpoolctl import threadpool_limits  # here: it inspects the loaded libraries

    threadpool_limits(limits=chosen.threads)
    for name in CHILD_ENV:
        os.environ[name] = str(chosen.threads)
    return chosen
