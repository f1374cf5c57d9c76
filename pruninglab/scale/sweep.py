"""Sweeps: the items of a sweep file (:mod:`pruninglab.scale.sweep_file`) as Ray tasks on this
machine or on a Ray cluster; ``pruninglab sweep FILE`` on the command line.

Each item is a Ray task that reserves its ``cpus`` and ``gpus`` (a fraction lets several
small trainings share one GPU; Ray sets ``CUDA_VISIBLE_DEVICES`` for it). :func:`run` starts
Ray on this machine, or joins a running cluster (``address``); it shows the items done,
submitted and failed in a tqdm bar, tries a failed item again (``retries``) and reports it
while the others go on, and returns a table of what happened to each. Where Ray is
missing (a GPU box with only torch), ``processes=N`` (``--processes N``) runs the items in N
plain processes on this machine instead, N at a time, whatever their ``cpus`` and ``gpus``.

Everything an item makes goes to the run store (:mod:`pruninglab.experiments.runs`) and, for a
notebook, to its executed copy under ``out``. So a sweep started again skips the items that
finished (a run whose every stage is stored; a notebook whose executed copy ran to its end
with the same parameters) and resumes the interrupted ones from their last stored stage
(:func:`status`). On a cluster, the store, ``out`` and pruninglab itself must lie at the
same path on every node: a shared file system.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import multiprocessing.connection
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..core import checks, threads
from ..course import exercises, notebooks
from ..experiments import catalog, gimp, gimp_runs, runner, runs, tom, tom_runs
from ..experiments.config import Setup
from . import sweep_file
from .sweep_file import Item, Sweep, SweepFileError, load, packaged, resolve_file

__all__ = ["Item", "Sweep", "SweepFileError", "load", "packaged", "resolve_file",
           "status", "plan", "run", "run_item", "connect", "add_arguments", "command"]


# --------------------------------------------------------------------------------------
# What is done already
# --------------------------------------------------------------------------------------


# A notebook item's folder under ``out`` holds its executed copy and, once papermill has
# run every cell without an error, this file: the parameters and the run store it ran with.
FINISHED = "finished.json"


def _notebook_output(item: Item, out: Path) -> Path:
    return out / item.task["folder"] / Path(item.task["notebook"]).name


def _finished_marker(item: Item, store: Path) -> dict:
    # the kernel ran with PRUNINGLAB_PROFILE set to the item's profile (run_item), so the
    # profile the notebook really ran is the one in its parameters
    return {"notebook": Path(item.task["notebook"]).name,
            "parameters": item.task["parameters"], "store": str(store),
            "ran_profile": item.task["parameters"]["PROFILE"]}


def _notebook_finished(item: Item, sweep: Sweep) -> bool:
    """Whether ``item``'s executed copy ran to its end, with its parameters and into
    ``sweep``'s store (a copy a killed kernel left has no marker; nor does one that failed)."""
    output = _notebook_output(item, sweep.out)
    try:
        marker = json.loads((output.parent / FINISHED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return output.is_file() and marker == _finished_marker(item, sweep.store)


def status(item: Item, sweep: Sweep) -> tuple[bool, str]:
    """Whether ``item`` is done already, and a few words on what ``sweep``'s store (or
    ``out``) holds of it: ``"done"``, ``"3/5 stages stored"``, ``"to run"``."""
    if item.sort == "notebook":
        if _notebook_finished(item, sweep):
            return True, "done"
        output = _notebook_output(item, sweep.out)
        return False, "to run" if not output.exists() else "to run (an unfinished copy)"
    kind, config = sweep_file.run_config(item.task)
    folder = runs.RunDir.path_for(kind, config, sweep.store)
    total = catalog.stage_count(kind, config)
    stored = len(runs.RunDir(folder, config).records()) if folder.is_dir() else 0
    if total is not None and stored >= total:
        return True, "done"
    return False, f"{stored}/{total} stages stored" if stored else "to run"


def plan(sweep: Sweep) -> pd.DataFrame:
    """One row per item: what it is, what it reserves, and its :func:`status` -- what
    ``pruninglab sweep --dry-run`` prints."""
    rows = []
    for number, item in enumerate(sweep.items, start=1):
        _, state = status(item, sweep)
        where = (_notebook_output(item, sweep.out) if item.sort == "notebook"
                 else Path(sweep_file.run_folder(item.task, sweep.store)))
        rows.append({"#": number, "sort": item.sort, "item": item.name, "cpus": item.cpus,
                     "gpus": item.gpus, "after": item.group, "status": state,
                     "where": str(where)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# One item, in a worker
# --------------------------------------------------------------------------------------


def run_item(item: Item, store: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Carry out one item here (in a Ray worker, or in this process): a run through the run
    store, or a notebook with papermill. Returns ``{"trained": stages computed now,
    "stages": stages of the run, "output": the executed notebook}`` (the keys that apply).

    Raises:
        whatever the run raises; RuntimeError when the notebook fails (the message has the
        error and the executed copy's path).
    """
    if item.sort == "run":
        return _train(item, Path(store))
    folder = Path(out) / item.task["folder"]
    (folder / FINISHED).unlink(missing_ok=True)  # until this run has ended well
    # What the kernel reads from its environment; its profile too, as a PRUNINGLAB_PROFILE
    # left in a worker's environment would win over the PROFILE parameter
    # (pruninglab.experiments.profiles.resolve).
    kernel = {"PRUNINGLAB_RUNS": str(store), threads.ENV: str(item.task["threads"]),
              "PRUNINGLAB_PROFILE": item.task["parameters"]["PROFILE"],
              exercises.FILL_VARIABLE: os.environ.get(exercises.FILL_VARIABLE, "1")}
    with _environment(kernel):
        [(name, _, error)] = notebooks.execute([Path(item.task["notebook"])], folder,
                                              item.task["parameters"], progress=False)
    if error:
        raise RuntimeError(f"{name} failed: {error} (executed copy: {folder / name})")
    runs.atomic_write(folder / FINISHED, json.dumps(
        _finished_marker(item, Path(store)), indent=1).encode())
    return {"output": str(folder / name)}


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """Set ``variables`` in this process's environment (which a kernel started now
    inherits), and put back what was there afterwards."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _train(item: Item, store: Path) -> dict:
    """The run of ``item`` through :func:`pruninglab.experiments.runner.run`, counting the stages it
    trains now (a resumed run trains only the ones the store lacks)."""
    task = item.task
    threads.configure(task["threads"])
    setup = Setup.from_dict(task["setup"])
    data = setup.resolve_data(None, task["device"])
    if task["experiment"] == "gimp":
        experiment = gimp_runs.experiment(setup, gimp.GIMPConfig(**task["config"]), data,
                                     progress=False)
    else:
        experiment = tom_runs.experiment(setup, tom.TOMConfig(**task["config"]), data,
                                    progress=False)
    trained = 0

    def counted(index: int, state: dict) -> tuple[dict, dict | None]:
        nonlocal trained
        result = experiment.stage(index, state)
        trained += 1
        return result

    records = runner.run(dataclasses.replace(experiment, stage=counted), store, progress=False)
    return {"trained": trained, "stages": len(records)}


# --------------------------------------------------------------------------------------
# The whole sweep, on Ray
# --------------------------------------------------------------------------------------


def connect(address: str | None = None, cpus: int | None = None) -> bool:
    """Connect to Ray unless this process is already: to the cluster at ``address``
    (``"auto"``: the one ``ray start`` runs on this machine), or, when ``None``, to a new
    Ray instance on this machine, bound to 127.0.0.1, without a dashboard or usage
    statistics, with ``cpus`` CPUs (default: all) and the GPUs. Returns whether it
    connected (and so should shut Ray down afterwards).

    A new instance stays on 127.0.0.1 only if Ray is imported here, by this function: Ray
    reads the variable that keeps it there when it is imported. The variable stays set, so
    the same process cannot join a cluster on other machines afterwards (start a new one).

    Raises:
        ModuleNotFoundError: Ray is missing (it comes with the extra ``sweep``).
        ConnectionError: nothing answers at ``address``.
    """
    if address is None and "ray" not in sys.modules:
        # One machine: every Ray process on 127.0.0.1, as Ray does on macOS and Windows
        # (Linux's default is the machine's network address). Read when Ray is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"sweeps run on Ray ({err}); it comes with pruninglab's extra 'sweep': "
            "pip install 'pruninglab[sweep]'") from err
    if ray.is_initialized():
        return False
    if address is not None:
        _check_answers(address)
    if address is None:  # "local": a new instance, even where another one runs
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def _check_answers(address: str, timeout_s: float = 5.0) -> None:
    """Raise ``ConnectionError`` unless something listens at ``address`` (``HOST:PORT`` or
    ``ray://HOST:PORT``; ``auto`` is left to Ray): Ray itself would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdecimal():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ConnectionError(f"no Ray cluster answers at address {address!r} ({err}); "
                              "start one with `ray start --head`, or give the address it "
                              "printed") from None


def _check_fits(items: tuple[Item, ...]) -> None:
    """Raise ``ValueError`` for an item no node of the cluster can hold (Ray would wait for
    it for ever)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    for item in items:
        if not any(n.get("CPU", 0) >= item.cpus and n.get("GPU", 0) >= item.gpus for n in nodes):
            largest = max(((n.get("CPU", 0), n.get("GPU", 0)) for n in nodes), default=(0, 0))
            raise ValueError(f"item {item.name!r} asks for cpus={item.cpus:g} and "
                             f"gpus={item.gpus:g}, but no node of the Ray cluster has that "
                             f"much (the largest: {largest[0]:g} CPUs, {largest[1]:g} GPUs); "
                             "lower cpus or gpus in the sweep file")


def _error_text(err: BaseException) -> str:
    # ray.exceptions.RayTaskError wraps the user's error as its cause
    return notebooks.error_line(getattr(err, "cause", None) or err)


class _OnRay:
    """Items as Ray tasks that reserve their ``cpus`` and ``gpus``."""

    def __init__(self, items: tuple[Item, ...], address: str | None, cpus: int | None):
        self.started = connect(address, cpus)  # raises first where Ray is missing
        import ray

        self.ray = ray
        try:
            _check_fits(items)
        except BaseException:
            self.close()
            raise
        self.remote = ray.remote(_on_ray)

    def submit(self, item: Item, store: str, out: str):
        return self.remote.options(num_cpus=item.cpus, num_gpus=item.gpus, max_retries=0,
                                   name=item.name).remote(item, store, out)

    def wait(self, running: list) -> list[tuple[object, tuple | None, str]]:
        """The handles that ended within 0.2 s (a short wait: Ctrl-C is seen between two),
        each with ``(result, seconds, node)`` or ``None`` and the error."""
        ready, _ = self.ray.wait(running, num_returns=1, timeout=0.2)
        ended = []
        for ref in ready:
            try:
                ended.append((ref, self.ray.get(ref), ""))
            except self.ray.exceptions.RayError as err:
                ended.append((ref, None, _error_text(err)))
        return ended

    def cancel(self, running: list) -> None:
        for ref in running:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


@dataclasses.dataclass(eq=False)  # a handle: equal only to itself
class _Job:
    item: Item
    store: str
    out: str


class _InProcesses:
    """Items in plain processes on this machine, without Ray: each item in a fresh spawned
    process of its own (a clean CUDA context, its own threads), at most ``processes`` at
    once, several sharing one GPU. The items' ``cpus`` and ``gpus`` are not looked at. A
    process that dies (killed for memory) fails its own item only; its result, or its
    error as text, comes back through a pipe."""

    def __init__(self, processes: int):
        self.processes = checks.integer(processes, "processes", minimum=1)
        self.context = multiprocessing.get_context("spawn")
        self.queued: list[_Job] = []
        self.started: dict[_Job, tuple] = {}  # job -> (process, the pipe's reading end)

    def submit(self, item: Item, store: str, out: str) -> _Job:
        job = _Job(item, store, out)
        self.queued.append(job)
        self._start_queued()
        return job

    def _start_queued(self) -> None:
        while self.queued and len(self.started) < self.processes:
            job = self.queued.pop(0)
            receive, send = self.context.Pipe(duplex=False)
            process = self.context.Process(target=_in_process, name=job.item.name,
                                           args=(job.item, job.store, job.out, send))
            process.start()
            send.close()  # the child holds the writing end: its exit closes the pipe
            self.started[job] = (process, receive)

    def wait(self, running: list) -> list[tuple[object, tuple | None, str]]:
        pipes = {receive: job for job, (_, receive) in self.started.items()}
        ended = []
        for receive in multiprocessing.connection.wait(list(pipes), timeout=0.2):
            job = pipes[receive]
            process, _ = self.started.pop(job)
            try:
                outcome, error = receive.recv()
            except EOFError:  # it ended without a word: killed, or out of memory
                process.join(timeout=10)
                outcome, error = None, (f"the process running it ended without a result "
                                        f"(exit code {process.exitcode})")
            receive.close()
            process.join(timeout=10)
            ended.append((job, outcome, error))
        self._start_queued()
        return ended

    def cancel(self, running: list) -> None:
        self.queued.clear()
        for process, _ in self.started.values():
            process.terminate()
        for process, receive in self.started.values():
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
            receive.close()
        self.started.clear()

    def close(self) -> None:
        self.cancel([])  # nothing runs at a normal end; after an error, nothing may stay


def run(sweep: Sweep, address: str | None = None, cpus: int | None = None,
        progress: bool = True, processes: int | None = None) -> pd.DataFrame:
    """Every item of ``sweep`` that is not done, as Ray tasks (or in plain processes); the
    done ones are skipped.

    Args:
        sweep: from :func:`load`.
        address: a Ray cluster to join (``None``: a new Ray instance on this machine). When
            this process is connected to Ray already, that Ray is used and ``address`` and
            ``cpus`` are not looked at.
        cpus: the CPUs of a new Ray instance on this machine (default: all).
        progress: a tqdm bar over the items, with those submitted (running, or waiting in
            Ray for a CPU or GPU) and failed.
        processes: run the items in this many plain processes on this machine instead, one
            item per process at a time, without Ray (which need not be installed): e.g. 4
            trainings sharing one GPU on a machine without Ray. ``address`` and ``cpus``
            must be ``None`` then.

    Returns:
        One row per item: ``item``, ``sort``, ``status`` (``"finished"``, ``"done before"``
        or ``"failed"``; an item after a barrier that was done before runs again when an
        item before the barrier ran now), ``attempts``, ``trained`` (stages computed now, for runs),
        ``seconds`` (of the last attempt), ``node`` (the Ray node it ran on, the start of its
        id; or the process) and ``error`` (the last one).

    Raises:
        ModuleNotFoundError: Ray is missing (and ``processes`` not given).
        ConnectionError: nothing answers at ``address``.
        ValueError: an item needs more CPUs or GPUs than any node has; ``processes`` with
            ``address`` or ``cpus``.
        KeyboardInterrupt: passed on after cancelling the running items (what they stored
            stays).
    """
    if processes is not None and (address is not None or cpus is not None):
        raise ValueError("processes runs the items without Ray: give it without address "
                         f"and cpus (got address={address!r}, cpus={cpus!r})")
    pool = (_InProcesses(processes) if processes is not None
            else _OnRay(sweep.items, address, cpus))
    try:
        rows = {i: {"item": item.name, "sort": item.sort, "status": "", "attempts": 0,
                    "trained": pd.NA, "seconds": 0.0, "node": "", "error": ""}
                for i, item in enumerate(sweep.items)}
        waiting = list(range(len(sweep.items)))
        bar = tqdm(total=len(sweep.items), desc="sweep", unit="item", disable=not progress)
        running: dict = {}
        shown = ""

        def submit(i: int) -> None:
            rows[i]["attempts"] += 1
            running[pool.submit(sweep.items[i], str(sweep.store), str(sweep.out))] = i

        try:
            while waiting or running:
                if waiting and not running:  # the next group starts when the last ended
                    group = min(sweep.items[i].group for i in waiting)
                    # what an earlier group ran now may change what a later one reads (the
                    # reproduction report after the runs): a later group runs again then
                    ran = any(row["attempts"] for row in rows.values())
                    for i in [i for i in waiting if sweep.items[i].group == group]:
                        waiting.remove(i)
                        if not ran and status(sweep.items[i], sweep)[0]:
                            rows[i]["status"] = "done before"
                            bar.update(1)
                        else:
                            submit(i)
                failed = sum(r["status"] == "failed" for r in rows.values())
                # submitted: given to Ray, running or waiting there for a CPU or a GPU
                text = f"submitted {len(running)}, failed {failed}"
                if text != shown:
                    bar.set_postfix_str(text)
                    shown = text
                for handle, outcome, error in pool.wait(list(running)) if running else []:
                    i = running.pop(handle)
                    item, row = sweep.items[i], rows[i]
                    if outcome is None:
                        row["error"] = error
                        if row["attempts"] <= item.retries:
                            bar.write(f"{item.name}: attempt {row['attempts']} failed "
                                      f"({row['error']}); trying again")
                            submit(i)
                            continue
                        row["status"] = "failed"
                        bar.write(f"{item.name}: failed after {row['attempts']} attempt(s): "
                                  f"{row['error']}")
                    else:
                        result, row["seconds"], row["node"] = outcome
                        row["status"], row["error"] = "finished", ""
                        row["trained"] = result.get("trained", pd.NA)
                    bar.update(1)
        except KeyboardInterrupt:
            pool.cancel(list(running))
            raise
        finally:
            bar.close()
    finally:
        pool.close()
    return pd.DataFrame(rows.values()).astype({"trained": "Int64"})


def _on_ray(item: Item, store: str, out: str) -> tuple[dict, float, str]:
    """:func:`run_item` as a Ray task: its result, its seconds and the node it ran on."""
    import ray

    tic = time.perf_counter()
    result = run_item(item, store, out)
    return result, time.perf_counter() - tic, ray.get_runtime_context().get_node_id()[:8]


def _in_process(item: Item, store: str, out: str, send) -> None:
    """:func:`run_item` in a process of its own; sends ``((result, seconds, "pid N"), "")``
    or ``(None, error text)`` (text: any exception crosses the pipe) and ends."""
    tic = time.perf_counter()
    try:
        result = run_item(item, store, out)
        send.send(((result, time.perf_counter() - tic, f"pid {os.getpid()}"), ""))
    except Exception as err:
        send.send((None, _error_text(err)))
    finally:
        send.close()


# --------------------------------------------------------------------------------------
# pruninglab sweep
# --------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``pruninglab sweep``; :func:`command` carries it out."""
    parser.add_argument("file", help="a sweep file (TOML), or the name of one of "
                        f"pruninglab's: {', '.join(packaged())}")
    parser.add_argument("--address", default=None,
                        help="join this Ray cluster (e.g. auto, or HEAD:6379) instead of "
                             "starting Ray on this machine")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the items and what the store holds of them; run nothing")
    parser.add_argument("--store", default=None, help="the run store (default: the file's "
                        "[sweep] store, else $PRUNINGLAB_RUNS or ./runs)")
    parser.add_argument("--out", default=None, help="folder of the executed notebooks "
                        "(default: the file's [sweep] out, else ./build/sweep)")
    parser.add_argument("--cpus", type=int, default=None,
                        help="CPUs of the Ray instance started on this machine (default: all; "
                             "on a shared machine, fewer)")
    parser.add_argument("--processes", type=int, default=None, metavar="N",
                        help="run the items in N plain processes on this machine, without "
                             "Ray (e.g. 4 trainings sharing one GPU where Ray is missing)")
    parser.set_defaults(sweep_parser=parser)


def command(args: argparse.Namespace) -> int:
    """``pruninglab sweep``: a bad file is a usage error (status 2); a failed item, or Ray
    missing, status 1; an interrupted sweep 130."""
    parser: argparse.ArgumentParser = args.sweep_parser
    if args.cpus is not None and args.cpus < 1:
        parser.error(f"--cpus must be an integer >= 1, got {args.cpus}")
    if args.processes is not None:
        if args.processes < 1:
            parser.error(f"--processes must be an integer >= 1, got {args.processes}")
        if args.address is not None or args.cpus is not None:
            parser.error("--processes runs the items without Ray: give it without --address "
                         "and --cpus")
    try:
        sweep = load(args.file, store=args.store, out=args.out)
    except (FileNotFoundError, ValueError) as err:  # SweepFileError; PRUNINGLAB_RUNS empty
        parser.error(str(err))
    table = plan(sweep)
    todo = int((table["status"] != "done").sum())
    print(f"{sweep.file}: {len(table)} items, {todo} to run; store {sweep.store}, "
          f"notebooks to {sweep.out}")
    if args.dry_run:
        print(table.to_string(index=False))
        return 0
    try:
        result = run(sweep, address=args.address, cpus=args.cpus, processes=args.processes)
    except (ModuleNotFoundError, ConnectionError, ValueError) as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; what finished is in {sweep.store}. Run the same "
              "command again to go on from there.", file=sys.stderr)
        return 130
    print(result.to_string(index=False, float_format="{:.1f}".format))
    counts = result["status"].value_counts()
    print(f"{len(result)} items: " + ", ".join(f"{n} {state}" for state, n in counts.items())
          + f"; {int(result['trained'].sum())} stages trained now")
    failed = result[result["status"] == "failed"]
    if len(failed):
        print(f"{len(failed)} of {len(result)} items failed: "
              f"{', '.join(failed['item'])}", file=sys.stderr)
        return 1
    return 0
