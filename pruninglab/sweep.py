"""Sweeps: many independent runs spread over the CPUs and GPUs of this machine or of a Ray
cluster, written as one TOML file and started with ``pruninglab sweep FILE``.

A sweep file lists *items* in tables of two sorts. A list where one value is expected is a
grid axis, and a table stands for every combination of its axes (``seeds`` and ``ids`` are
lists of their own: one item each)::

    [sweep]                       # optional: the defaults of every table below
    cpus = 1                      # CPUs an item reserves
    gpus = 0                      # the share of one GPU an item reserves (0.25: four per GPU)
    retries = 1                   # a failed item is tried again this many times

    [[runs]]                      # GIMP or TOM runs, each stored in the run store
    experiment = "gimp"           # gimp | tom
    preset = "sgimp"              # gimp: finetune, weight_rewinding, lr_rewinding, sgimp, ...
    profile = "smoke"             # the sizes: model, data set, T, target density, K
    seeds = [0, 1]
    options = { rewind_fraction = [0.5, 0.75] }     # the preset's (or TOMConfig's) keywords

    [[notebooks]]                 # notebooks executed with papermill
    ids = ["05", "06"]
    profile = "full"
    parameters = { MODEL = ["resnet20", "resnet56"] }
    gpus = 1

    [[notebooks]]
    ids = ["11"]
    after = true                  # a barrier: starts once every item above it has ended

Each item is a Ray task that reserves its ``cpus`` and ``gpus`` (a fraction lets several
small trainings share one GPU; Ray sets ``CUDA_VISIBLE_DEVICES`` for it). :func:`run` starts
Ray on this machine, or joins a running cluster (``address``); it shows the items done,
submitted and failed in a tqdm bar, tries a failed item again (``retries``) and reports it
while the others go on, and returns a table of what happened to each.

Everything an item makes goes to the run store (:mod:`pruninglab.runs`) and, for a
notebook, to its executed copy under ``out``. So a sweep started again skips the items that
finished (a run whose every stage is stored; a notebook whose executed copy ran to its end
with the same parameters) and resumes the interrupted ones from their last stored stage.
On a cluster, the store, ``out`` and pruninglab itself must lie at the same path on every
node: a shared file system.

:func:`load` checks the whole file before anything starts -- an unknown key, an empty grid,
a notebook or parameter that does not exist, a GPU share above 1 -- and names the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import itertools
import json
import math
import os
import re
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from . import catalog, checks, exercises, gimp, notebooks, profiles, runner, runs, threads, tom
from .config import Setup

__all__ = ["Item", "Sweep", "SweepFileError", "PRESETS", "load", "packaged", "resolve_file",
           "status", "plan", "run", "run_item", "connect", "add_arguments", "command"]

PACKAGED = Path(__file__).resolve().parent / "sweeps"

# GIMP's presets by the name a sweep file gives them (pruninglab.gimp).
PRESETS: dict[str, Callable[..., gimp.GIMPConfig]] = {
    "finetune": gimp.finetune, "weight_rewinding": gimp.weight_rewinding,
    "stable_weight_rewinding": gimp.stable_weight_rewinding,
    "lr_rewinding": gimp.lr_rewinding, "sgimp": gimp.sgimp, "one_shot": gimp.one_shot}
EXPERIMENTS = ("gimp", "tom")

RESOURCE_KEYS = {"cpus", "gpus", "retries"}
SWEEP_KEYS = RESOURCE_KEYS | {"store", "out"}
RUN_KEYS = RESOURCE_KEYS | {"experiment", "preset", "profile", "model", "dataset", "seeds",
                            "train_steps", "target_density", "options", "device", "after"}
NOTEBOOK_KEYS = RESOURCE_KEYS | {"ids", "profile", "parameters", "dir", "after"}
DEFAULTS = {"cpus": 1, "gpus": 0, "retries": 1}


class SweepFileError(ValueError):
    """A sweep file that cannot run as it is; the message names the file and the key."""


@dataclass(frozen=True)
class Item:
    """One task of a sweep.

    Attributes:
        name: how tables and progress call it (``"sgimp(75%) mlp digits seed 0"``,
            ``"05 MODEL=resnet20"``).
        sort: ``"run"`` or ``"notebook"``.
        task: plain data :func:`run_item` works from: a run's setup and config dicts, or a
            notebook's path and parameters.
        cpus, gpus: what the task reserves (``gpus``: a share of one GPU, in [0, 1]).
        retries: how many times it is tried again after a failure.
        group: the barriers above it (``after = true``); it starts when every item of a
            lower group has ended.
    """

    name: str
    sort: str
    task: dict
    cpus: float
    gpus: float
    retries: int
    group: int = 0


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file: its items, the run store and the folder of executed
    notebooks (both absolute)."""

    file: Path
    items: tuple[Item, ...]
    store: Path
    out: Path


# --------------------------------------------------------------------------------------
# Reading and checking a sweep file
# --------------------------------------------------------------------------------------


def packaged() -> list[str]:
    """The names of the sweep files that come with pruninglab (``thesis``: the README's
    batch recipe)."""
    return sorted(p.stem for p in PACKAGED.glob("*.toml"))


def resolve_file(name: str | os.PathLike) -> Path:
    """``name`` if it is a file, else the packaged sweep file of that name (``"thesis"``).

    Raises:
        FileNotFoundError: neither exists; the message lists the packaged ones.
    """
    path = Path(name)
    if path.is_file():
        return path
    if (PACKAGED / f"{path.name}.toml").is_file() and path.name == str(name):
        return PACKAGED / f"{path.name}.toml"
    raise FileNotFoundError(f"sweep file {str(name)!r} not found (no such file, and not one of "
                            f"pruninglab's sweeps: {', '.join(packaged())})")


def _fail(file: Path, where: str, message: str) -> SweepFileError:
    return SweepFileError(f"{file}: {where}: {message}")


def _check_keys(table: dict, allowed: set[str], file: Path, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise _fail(file, where, f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")


def _grid(table: dict, keys: list[str], file: Path, where: str) -> Iterator[dict]:
    """Every combination of ``table``'s values for ``keys``: a list is an axis, any other
    value one point. An empty list raises."""
    axes = []
    for key in keys:
        value = table[key]
        if isinstance(value, list) and not value:
            raise _fail(file, where, f"{key} = [] is an empty grid; give at least one value")
        axes.append(value if isinstance(value, list) else [value])
    for values in itertools.product(*axes):
        yield dict(zip(keys, values))


def _resources(table: dict, defaults: dict, file: Path, where: str) -> dict:
    merged = {**defaults, **{k: table[k] for k in RESOURCE_KEYS if k in table}}
    try:
        cpus = checks.real(merged["cpus"], "cpus", 0.0, low_open=True)
        gpus = checks.real(merged["gpus"], "gpus (the share of one GPU)", 0.0, 1.0)
        retries = checks.integer(merged["retries"], "retries", minimum=0)
    except ValueError as err:
        raise _fail(file, where, str(err)) from None
    return {"cpus": cpus, "gpus": gpus, "retries": retries}


def _threads(cpus: float) -> int:
    return max(1, math.floor(cpus))


def _tables(document: dict, key: str, file: Path) -> list[dict]:
    tables = document.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise _fail(file, key, f"write it as [[{key}]] tables")
    return tables


def _run_items(table: dict, defaults: dict, group: int, file: Path,
               where: str) -> list[Item]:
    _check_keys(table, RUN_KEYS, file, where)
    table = {"experiment": "gimp", "profile": "quick", **table}
    if "preset" not in table and table["experiment"] == "gimp":
        raise _fail(file, where, f"preset is missing; one of {', '.join(PRESETS)}")
    resources = _resources(table, defaults, file, where)
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise _fail(file, where, "options must be a table, e.g. options = { K = 0.8 }")
    seeds = table.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and seeds):
        raise _fail(file, where, f"seeds must be a list of at least one seed, got {seeds!r}")
    device = table.get("device", "cuda" if resources["gpus"] > 0 else "cpu")
    if device not in ("auto", "cpu", "cuda"):
        raise _fail(file, where, f"device {device!r} is not auto, cpu or cuda")
    if device == "cuda" and resources["gpus"] == 0:
        raise _fail(file, where, "device 'cuda' needs gpus > 0: Ray hides the GPUs from a "
                                 "task that reserves none")
    axes = [k for k in ("experiment", "preset", "profile", "model", "dataset", "train_steps",
                        "target_density") if k in table]
    items = []
    for point in _grid(table, axes, file, where):
        for option_point in _grid(options, list(options), file, f"{where}, options"):
            for seed in seeds or profiles.get(_known_profile(point["profile"], file,
                                                             where)).seeds:
                item = _run_item(point, option_point, seed, device, file, where)
                items.append(Item(item["name"], "run", item, group=group, **resources))
    return items


def _known_profile(name: object, file: Path, where: str) -> str:
    if name not in profiles.PROFILES:
        raise _fail(file, where, f"profile {name!r} is unknown; known profiles: "
                                 f"{', '.join(profiles.PROFILES)}")
    return str(name)


def _run_item(point: dict, options: dict, seed: object, device: str, file: Path,
              where: str) -> dict:
    """The task of one run: its setup and config, checked by building them."""
    experiment = point["experiment"]
    if experiment not in EXPERIMENTS:
        raise _fail(file, where, f"experiment {experiment!r} is not one of "
                                 f"{', '.join(EXPERIMENTS)}")
    profile = profiles.get(_known_profile(point["profile"], file, where))
    try:
        setup = profile.setup(model=point.get("model"), dataset=point.get("dataset"),
                              seed=seed, train_steps=point.get("train_steps"))
        target = point.get("target_density", profile.target_density)
        if experiment == "gimp":
            preset = point["preset"]
            if preset not in PRESETS:
                raise ValueError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
            build = PRESETS[preset]
            accepted = set(inspect.signature(build).parameters) - {"train_steps",
                                                                  "target_density", "kw"}
            accepted |= {f.name for f in dataclasses.fields(gimp.GIMPConfig)} - {
                "train_steps", "target_density", "method", "density_multiplier",
                "rewind_steps", "rewind_steps_lr", "retrain_steps", "rewind_fraction"}
            _check_options(options, accepted, f"preset {preset!r}")
            if "K" in accepted:
                options = {"K": profile.density_multiplier, **options}
            config = build(setup.train.steps, target, **options)
        else:
            fields = {f.name for f in dataclasses.fields(tom.TOMConfig)}
            _check_options(options, fields - {"train_steps", "target_density"}, "TOMConfig")
            config = tom.TOMConfig(setup.train.steps, target, **options)
    except (ValueError, TypeError) as err:
        raise _fail(file, where, str(err)) from None
    name = f"{config.method} {setup.model} {setup.dataset} seed {setup.seed}"
    return {"name": name, "experiment": experiment, "setup": setup.to_dict(),
            "config": config.to_dict(), "device": device}


def _check_options(options: dict, accepted: set[str], what: str) -> None:
    for key in options:
        if key not in accepted:
            raise ValueError(f"options: unknown key {key!r} for {what}; allowed: "
                             f"{', '.join(sorted(accepted))}")


def _notebook_items(table: dict, defaults: dict, group: int, file: Path,
                    where: str) -> list[Item]:
    _check_keys(table, NOTEBOOK_KEYS, file, where)
    resources = _resources(table, defaults, file, where)
    ids = table.get("ids")
    if not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)):
        raise _fail(file, where, f"ids must be a list of notebook numbers such as "
                                 f"[\"05\"], got {ids!r}")
    profile = _known_profile(table.get("profile", "quick"), file, where)
    parameters = table.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _fail(file, where, "parameters must be a table, e.g. parameters = { SEED = 1 }")
    for fixed in ("PROFILE", "INTERACTIVE"):
        if fixed in parameters:
            raise _fail(file, where, f"parameters: {fixed} is set by the sweep (give "
                                     "profile = ... instead)" if fixed == "PROFILE" else
                        f"parameters: {fixed} is set by the sweep (False: headless)")
    folder = table.get("dir")
    if folder is not None:
        folder = (file.parent / folder).resolve()
    try:
        every = notebooks.find_notebooks(folder)
    except FileNotFoundError as err:
        raise _fail(file, where, f"dir: {err}") from None
    items = []
    for notebook_id in ids:
        found = [p for p in every if p.name.startswith(notebook_id)]
        if len(found) != 1:
            raise _fail(file, where, f"ids: {notebook_id!r} matches {len(found)} notebooks; "
                                     f"the notebooks are {', '.join(p.name[:2] for p in every)}")
        path = found[0].resolve()
        declared = notebooks.parameters(path)
        for key in parameters:
            if key not in declared:
                raise _fail(file, where, f"parameters: {path.name} has no parameter {key!r}; "
                                         f"its parameters: {', '.join(declared)}")
        for point in _grid(parameters, list(parameters), file, f"{where}, parameters"):
            values = {"DEVICE": "cuda" if resources["gpus"] > 0 else "cpu", **point,
                      "PROFILE": profile, "INTERACTIVE": False}
            name = " ".join([path.name[:2], profile] + [f"{k}={v}" for k, v in point.items()])
            slug = re.sub(r"[^A-Za-z0-9=.+-]+", "_", name.replace(" ", "-"))
            task = {"notebook": str(path), "parameters": values, "folder": slug,
                    "threads": _threads(resources["cpus"])}
            items.append(Item(name, "notebook", task, group=group, **resources))
    return items


def load(file: str | os.PathLike, store: str | os.PathLike | None = None,
         out: str | os.PathLike | None = None) -> Sweep:
    """Read and check a sweep file (its format: this module's text).

    Args:
        file: the TOML file, or the name of a packaged sweep (:func:`packaged`).
        store: the run store (default: the file's ``[sweep] store``, relative to the file,
            else ``$PRUNINGLAB_RUNS`` or ``./runs``).
        out: where executed notebooks go, one folder per item (default: the file's
            ``[sweep] out``, relative to the file, else ``./build/sweep``).

    Raises:
        FileNotFoundError: no such file or packaged sweep.
        SweepFileError: the file is not TOML, or a key is unknown, empty or out of range;
            the message names it. The same run twice is not an error: it is one item.
    """
    path = resolve_file(file)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise _fail(path, "TOML", str(err)) from None
    _check_keys(document, {"sweep", "runs", "notebooks"}, path, "top level")
    head = document.get("sweep", {})
    if not isinstance(head, dict):
        raise _fail(path, "sweep", "write it as a [sweep] table")
    _check_keys(head, SWEEP_KEYS, path, "[sweep]")
    defaults = {**DEFAULTS, **{k: head[k] for k in RESOURCE_KEYS if k in head}}
    _resources(defaults, defaults, path, "[sweep]")
    tables = {"runs": _tables(document, "runs", path),
              "notebooks": _tables(document, "notebooks", path)}
    # Items in file order: [[runs]] and [[notebooks]] tables interleave as written (a
    # file that writes them otherwise, as inline arrays, has its runs first).
    order = _table_order(path.read_text(encoding="utf-8"))
    if sorted(order) != sorted(["runs"] * len(tables["runs"])
                               + ["notebooks"] * len(tables["notebooks"])):
        order = ["runs"] * len(tables["runs"]) + ["notebooks"] * len(tables["notebooks"])
    tables = {sort: iter(found) for sort, found in tables.items()}
    items: list[Item] = []
    seen: set[str] = set()
    group = 0
    counters = {"runs": 0, "notebooks": 0}
    for sort in order:
        table = next(tables[sort])
        counters[sort] += 1
        where = f"[[{sort}]] #{counters[sort]}"
        after = table.get("after", False)
        if not isinstance(after, bool):
            raise _fail(path, where, f"after must be true or false, got {after!r}")
        if after and items:
            group += 1
        make = _run_items if sort == "runs" else _notebook_items
        for item in make(table, defaults, group, path, where):
            key = json.dumps(item.task, sort_keys=True) if item.sort == "notebook" else \
                _run_folder(item.task, Path("."))
            if key not in seen:  # a grid may name a run twice (sGIMP(0%) is LR rewinding)
                seen.add(key)
                items.append(item)
    if not items:
        raise _fail(path, "top level", "no items: add [[runs]] or [[notebooks]] tables")
    base = path.parent
    store = Path(store) if store is not None else (
        base / head["store"] if "store" in head else runs.default_root())
    out = Path(out) if out is not None else (
        base / head["out"] if "out" in head else Path("build") / "sweep")
    return Sweep(path, tuple(items), store.resolve(), out.resolve())


def _table_order(text: str) -> list[str]:
    """The sorts of the ``[[runs]]`` and ``[[notebooks]]`` tables in the order written."""
    return re.findall(r"^\s*\[\[\s*(runs|notebooks)\s*\]\]", text, flags=re.MULTILINE)


# --------------------------------------------------------------------------------------
# What is done already
# --------------------------------------------------------------------------------------


def _run_config(task: dict) -> tuple[str, dict]:
    setup = Setup.from_dict(task["setup"])
    if task["experiment"] == "gimp":
        return "gimp", gimp.run_config(setup, gimp.GIMPConfig(**task["config"]))
    return "tom", tom.run_config(setup, tom.TOMConfig(**task["config"]))


def _run_folder(task: dict, store: Path) -> str:
    kind, config = _run_config(task)
    return str(runs.RunDir.path_for(kind, config, store))


def _notebook_output(item: Item, out: Path) -> Path:
    return out / item.task["folder"] / Path(item.task["notebook"]).name


def _notebook_finished(path: Path, parameters: dict) -> bool:
    """Whether ``path`` is a copy papermill executed to its end, without an error, with
    ``parameters``."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))["metadata"]["papermill"]
    except (OSError, ValueError, KeyError):
        return False
    return (not meta.get("exception") and meta.get("end_time") is not None
            and meta.get("parameters") == parameters)


def status(item: Item, sweep: Sweep) -> tuple[bool, str]:
    """Whether ``item`` is done already, and a few words on what ``sweep``'s store (or
    ``out``) holds of it: ``"done"``, ``"3/5 stages stored"``, ``"to run"``."""
    if item.sort == "notebook":
        output = _notebook_output(item, sweep.out)
        if _notebook_finished(output, item.task["parameters"]):
            return True, "done"
        return False, "to run" if not output.exists() else "to run (an unfinished copy)"
    kind, config = _run_config(item.task)
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
                 else Path(_run_folder(item.task, sweep.store)))
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
    os.environ["PRUNINGLAB_RUNS"] = str(store)
    os.environ[threads.ENV] = str(item.task["threads"])
    os.environ.setdefault(exercises.FILL_VARIABLE, "1")
    folder = Path(out) / item.task["folder"]
    [(name, _, error)] = notebooks.execute([Path(item.task["notebook"])], folder,
                                          item.task["parameters"], progress=False)
    if error:
        raise RuntimeError(f"{name} failed: {error} (executed copy: {folder / name})")
    return {"output": str(folder / name)}


def _train(item: Item, store: Path) -> dict:
    """The run of ``item`` through :func:`pruninglab.runner.run`, counting the stages it
    trains now (a resumed run trains only the ones the store lacks)."""
    task = item.task
    threads.configure(_threads(item.cpus))
    setup = Setup.from_dict(task["setup"])
    data = setup.resolve_data(None, task["device"])
    if task["experiment"] == "gimp":
        experiment = gimp.experiment(setup, gimp.GIMPConfig(**task["config"]), data,
                                     progress=False)
    else:
        experiment = tom.experiment(setup, tom.TOMConfig(**task["config"]), data,
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

    Raises:
        ModuleNotFoundError: Ray is missing (it comes with the extra ``sweep``).
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
    if address is None:  # "local": a new instance, even where another one runs
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


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
    cause = getattr(err, "cause", None) or err  # ray.exceptions.RayTaskError: the user's error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"


def run(sweep: Sweep, address: str | None = None, cpus: int | None = None,
        progress: bool = True) -> pd.DataFrame:
    """Every item of ``sweep`` that is not done, as Ray tasks; the done ones are skipped.

    Args:
        sweep: from :func:`load`.
        address: a Ray cluster to join (``None``: this process's Ray if it has one, else a
            new one on this machine).
        cpus: the CPUs of a new Ray instance on this machine (default: all).
        progress: a tqdm bar over the items, with those submitted (running, or waiting in
            Ray for a CPU or GPU) and failed.

    Returns:
        One row per item: ``item``, ``sort``, ``status`` (``"finished"``, ``"done before"``
        or ``"failed"``), ``attempts``, ``trained`` (stages computed now, for runs),
        ``seconds`` (of the last attempt), ``node`` (the Ray node it ran on, the start of its
        id) and ``error`` (the last one).

    Raises:
        ModuleNotFoundError: Ray is missing.
        ValueError: an item needs more CPUs or GPUs than any node has.
        KeyboardInterrupt: passed on after cancelling the running items (what they stored
            stays).
    """
    started = connect(address, cpus)  # raises first where Ray is missing
    import ray

    try:
        _check_fits(sweep.items)
        remote = ray.remote(_timed)
        rows = {i: {"item": item.name, "sort": item.sort, "status": "", "attempts": 0,
                    "trained": pd.NA, "seconds": 0.0, "node": "", "error": ""}
                for i, item in enumerate(sweep.items)}
        waiting = []
        for i, item in enumerate(sweep.items):
            done, _ = status(item, sweep)
            if done:
                rows[i]["status"] = "done before"
            else:
                waiting.append(i)
        bar = tqdm(total=len(sweep.items), desc="sweep", unit="item", disable=not progress,
                   initial=len(sweep.items) - len(waiting))
        running: dict = {}

        def submit(i: int) -> None:
            item = sweep.items[i]
            rows[i]["attempts"] += 1
            ref = remote.options(num_cpus=item.cpus, num_gpus=item.gpus, max_retries=0,
                                 name=item.name).remote(item, str(sweep.store), str(sweep.out))
            running[ref] = i

        try:
            while waiting or running:
                if waiting and not running:  # the next group starts when the last ended
                    group = min(sweep.items[i].group for i in waiting)
                    for i in [i for i in waiting if sweep.items[i].group == group]:
                        waiting.remove(i)
                        submit(i)
                failed = sum(r["status"] == "failed" for r in rows.values())
                # submitted: given to Ray, running or waiting there for a CPU or a GPU
                bar.set_postfix_str(f"submitted {len(running)}, failed {failed}", refresh=False)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    i = running.pop(ref)
                    item, row = sweep.items[i], rows[i]
                    try:
                        result, row["seconds"], row["node"] = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        row["error"] = _error_text(err)
                        if row["attempts"] <= item.retries:
                            bar.write(f"{item.name}: attempt {row['attempts']} failed "
                                      f"({row['error']}); trying again")
                            submit(i)
                            continue
                        row["status"] = "failed"
                        bar.write(f"{item.name}: failed after {row['attempts']} attempt(s): "
                                  f"{row['error']}")
                    else:
                        row["status"], row["error"] = "finished", ""
                        row["trained"] = result.get("trained", pd.NA)
                    bar.update(1)
        except KeyboardInterrupt:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
    finally:
        if started:
            ray.shutdown()
    return pd.DataFrame(rows.values()).astype({"trained": "Int64"})


def _timed(item: Item, store: str, out: str) -> tuple[dict, float, str]:
    """:func:`run_item` as a Ray task: its result, its seconds and the node it ran on."""
    import ray

    tic = time.perf_counter()
    result = run_item(item, store, out)
    return result, time.perf_counter() - tic, ray.get_runtime_context().get_node_id()[:8]


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
    parser.set_defaults(sweep_parser=parser)


def command(args: argparse.Namespace) -> int:
    """``pruninglab sweep``: a bad file is a usage error (status 2); a failed item, or Ray
    missing, status 1; an interrupted sweep 130."""
    parser: argparse.ArgumentParser = args.sweep_parser
    try:
        sweep = load(args.file, store=args.store, out=args.out)
    except (FileNotFoundError, SweepFileError) as err:
        parser.error(str(err))
    except ValueError as err:  # PRUNINGLAB_RUNS set but empty
        parser.error(str(err))
    table = plan(sweep)
    todo = int((table["status"] != "done").sum())
    print(f"{sweep.file}: {len(table)} items, {todo} to run; store {sweep.store}, "
          f"notebooks to {sweep.out}")
    if args.dry_run:
        print(table.to_string(index=False))
        return 0
    try:
        result = run(sweep, address=args.address, cpus=args.cpus)
    except (ModuleNotFoundError, ValueError) as err:
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
