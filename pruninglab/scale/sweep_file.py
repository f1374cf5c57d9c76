"""The sweep file: a TOML file of runs and notebooks to spread over Ray, read and checked
whole before anything starts (:func:`load`); :mod:`pruninglab.scale.sweep` runs it.

The file lists *items* in tables of two sorts. A list where one value is expected is a grid
axis, and a table stands for every combination of its axes (``seeds`` and ``ids`` are
lists of their own: one item each)::

    [sweep]                       # optional: the defaults of every table below
    cpus = 1                      # CPUs an item reserves (its torch threads)
    gpus = 0                      # the share of one GPU an item reserves (0.25: four per GPU)
    retries = 1                   # a failed item is tried again this many times
    store = "runs"                # the run store, relative to this file (optional)
    out = "build/sweep"           # executed notebooks, relative to this file (optional)

    [[runs]]                      # GIMP or TOM runs, each stored in the run store
    experiment = "gimp"           # gimp | tom
    preset = "sgimp"              # gimp: finetune, weight_rewinding, lr_rewinding, sgimp, ...
    profile = "smoke"             # the sizes: model, data set, T, target density, K
    seeds = [0, 1]                # default: the profile's seeds
    options = { rewind_fraction = [0.5, 0.75] }     # the preset's (or TOMConfig's) keywords

    [[notebooks]]                 # notebooks executed with papermill
    ids = ["05", "06"]
    profile = "full"
    parameters = { MODEL = ["resnet20", "resnet56"] }
    gpus = 1

    [[notebooks]]
    ids = ["11"]
    after = true                  # a barrier: starts once every item above it has ended

A ``[[runs]]`` table may also give ``model``, ``dataset``, ``train_steps``,
``target_density`` and ``device`` (default ``cuda`` with a GPU share, else ``cpu``);
a ``[[notebooks]]`` table a ``dir`` of notebooks (default: pruninglab's). :func:`load`
checks every key -- an unknown one, an empty grid, a notebook or notebook parameter that
does not exist, a GPU share above 1, a preset's unknown keyword -- by building every run's
:class:`~pruninglab.experiments.config.Setup` and config, and raises :class:`SweepFileError` naming
the
file, the table and the key. The same run twice (sGIMP(0 %) is LR rewinding) is one item.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core import checks
from ..course import exercises, notebooks, parameters
from ..experiments import gimp, gimp_runs, profiles, runs, tom, tom_runs
from ..experiments.config import Setup

__all__ = ["Item", "Sweep", "SweepFileError", "PRESETS", "load", "packaged", "resolve_file",
           "run_config", "run_folder"]

PACKAGED = Path(__file__).resolve().parent / "sweeps"

# GIMP's presets by the name a sweep file gives them (pruninglab.experiments.gimp).
PRESETS: dict[str, Callable[..., gimp.GIMPConfig]] = {
    "finetune": gimp.finetune, "weight_rewinding": gimp.weight_rewinding,
    "stable_weight_rewinding": gimp.stable_weight_rewinding,
    "lr_rewinding": gimp.lr_rewinding, "sgimp": gimp.sgimp, "one_shot": gimp.one_shot}
EXPERIMENTS = ("gimp", "tom")

RESOURCE_KEYS = {"cpus", "gpus", "retries"}
# Options that take a list as one value (a grid over them is a list of lists).
LIST_OPTIONS = {"exclude"}
# Bounds that keep a mistyped file from hanging `sweep --dry-run`: a sweep's items are
# built and checked whole before anything runs (the packaged sweeps have 10 and 29).
MAX_ITEMS = 10_000
MAX_CPUS = 1_024     # CPUs one item reserves: more than one node has
MIN_SHARE = 0.01     # the smallest share of a CPU or GPU an item reserves (Ray counts 1e-4)
MAX_RETRIES = 100
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
            ``"05 full MODEL=resnet20"``).
        sort: ``"run"`` or ``"notebook"``.
        task: plain data :func:`pruninglab.scale.sweep.run_item` works from: a run's setup and
            config dicts, or a notebook's path and parameters, and the torch threads.
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
        SweepFileError: ``name`` is a packaged sweep's name and a file here too (write
            ``./thesis`` for the file), or it cannot be a path.
    """
    path = checks.path(name, "sweep file")
    text = str(name)
    if path.is_file():
        if text in packaged():  # a bare name such as "thesis", also a file here
            raise SweepFileError(f"{text!r} is both a file here ({path.resolve()}) and one of "
                                 f"pruninglab's sweeps; write ./{text} for the file, or run "
                                 "from another folder for pruninglab's")
        return path
    if text in packaged():
        return PACKAGED / f"{text}.toml"
    raise FileNotFoundError(f"sweep file {str(name)!r} not found (no such file, and not one of "
                            f"pruninglab's sweeps: {', '.join(packaged())})")


def _fail(file: Path, where: str, message: str) -> SweepFileError:
    return SweepFileError(f"{file}: {where}: {message}")


def _check_keys(table: dict, allowed: set[str], file: Path, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise _fail(file, where, f"unknown key {checks.shown(key)}; allowed: "
                                     f"{', '.join(sorted(allowed))}")


def _axes(table: dict, keys: list[str], file: Path, where: str,
          lists: frozenset[str] | set[str] = frozenset()) -> list[list]:
    """The values of each of ``table``'s ``keys``: a list is an axis of the grid, any other
    value one point. A key in ``lists`` takes a list as one value, so its axis is a list of
    lists (``exclude = [["fc1", "fc2"], ["fc3"]]``: two runs). An empty axis raises."""
    axes = []
    for key in keys:
        value = table[key]
        if isinstance(value, list) and not value and key not in lists:
            raise _fail(file, where, f"{key} = [] is an empty grid; give at least one value")
        if key in lists and value == []:  # one value: the empty list (exclude nothing)
            axes.append([value])
        elif key in lists and isinstance(value, list):
            nested = [isinstance(v, list) for v in value]
            if any(nested) and not all(nested):
                raise _fail(file, where, f"{key} takes a list as one value: write one list, "
                                         f"or a list of lists for a grid, got "
                                         f"{checks.shown(value)}")
            axes.append(value if all(nested) else [value])
        else:
            axes.append(value if isinstance(value, list) else [value])
    return axes


def _grid(axes: list[list], keys: list[str]) -> Iterator[dict]:
    """Every combination of the values of ``axes``, as ``{key: value}``."""
    for values in itertools.product(*axes):
        yield dict(zip(keys, values))


def _check_size(count: int, file: Path, where: str) -> None:
    if count > MAX_ITEMS:
        raise _fail(file, where, f"the grid makes {count:,} items; a sweep file may make at "
                                 f"most {MAX_ITEMS:,} (split it into several files)")


def _resources(table: dict, defaults: dict, file: Path, where: str) -> dict:
    merged = {**defaults, **{k: table[k] for k in RESOURCE_KEYS if k in table}}
    try:
        cpus = checks.real(merged["cpus"], "cpus", MIN_SHARE, MAX_CPUS)
        gpus = checks.real(merged["gpus"], "gpus (the share of one GPU)", 0.0, 1.0)
        if 0 < gpus < MIN_SHARE:
            raise ValueError(f"gpus (the share of one GPU) must be 0 or in [{MIN_SHARE}, 1], "
                             f"got {gpus!r}")
        retries = checks.integer(merged["retries"], "retries", minimum=0, maximum=MAX_RETRIES)
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
    resources = _resources(table, defaults, file, where)
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise _fail(file, where, "options must be a table, e.g. options = { K = 0.8 }")
    seeds = table.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and seeds):
        raise _fail(file, where, f"seeds must be a list of at least one seed, got "
                                 f"{checks.shown(seeds)}")
    device = _device(table.get("device"), resources["gpus"], "device", file, where)
    axes = [k for k in ("experiment", "preset", "profile", "model", "dataset", "train_steps",
                        "target_density") if k in table]
    items = []
    point_axes = _axes(table, axes, file, where)
    option_axes = _axes(options, list(options), file, f"{where}, options", LIST_OPTIONS)
    profiles_named = [_profile(p, file, where) for p in point_axes[axes.index("profile")]]
    most_seeds = len(seeds) if seeds else max(len(p.seeds) for p in profiles_named)
    _check_size(math.prod(map(len, point_axes + option_axes)) * most_seeds, file, where)
    shown = [k for k in ("train_steps", "target_density") if isinstance(table.get(k), list)]
    shown += [k for k, v in options.items() if isinstance(v, list) and k != "rewind_fraction"
              and (k not in LIST_OPTIONS or (v and all(isinstance(x, list) for x in v)))]
    for point in _grid(point_axes, axes):
        for option_point in _grid(option_axes, list(options)):
            for seed in seeds or _profile(point["profile"], file, where).seeds:
                task = _run_item(point, option_point, seed, device, file, where)
                task["threads"] = _threads(resources["cpus"])
                values = {**point, **option_point}
                task["name"] += "".join(f" {k}={values[k]}" for k in shown)
                items.append(Item(task.pop("name"), "run", task, group=group, **resources))
    return items


def _profile(name: object, file: Path, where: str) -> profiles.Profile:
    try:
        return profiles.get(name)
    except (ValueError, TypeError):  # TypeError: a table, which cannot be a profile's name
        raise _fail(file, where, f"profile {checks.shown(name)} is unknown; known profiles: "
                                 f"{', '.join(profiles.PROFILES)}") from None


def _device(device: object, gpus: float, key: str, file: Path, where: str) -> str:
    """An item's device: ``device`` checked against its GPU share, or (``None``) ``cuda``
    with a share and ``cpu`` without."""
    if device is None:
        return "cuda" if gpus > 0 else "cpu"
    if device not in ("auto", "cpu", "cuda"):
        raise _fail(file, where, f"{key} {checks.shown(device)} is not auto, cpu or cuda")
    if device == "cuda" and gpus == 0:
        raise _fail(file, where, f"{key} 'cuda' needs gpus > 0: Ray hides the GPUs from a "
                                 "task that reserves none")
    return str(device)


def _run_item(point: dict, options: dict, seed: object, device: str, file: Path,
              where: str) -> dict:
    """The task of one run: its setup and config, checked by building them."""
    experiment = point["experiment"]
    if not isinstance(experiment, str) or experiment not in EXPERIMENTS:
        raise _fail(file, where, f"experiment {checks.shown(experiment)} is not one of "
                                 f"{', '.join(EXPERIMENTS)}")
    if experiment == "gimp" and "preset" not in point:
        raise _fail(file, where, f"preset is missing; one of {', '.join(PRESETS)}")
    if experiment == "tom" and "preset" in point:
        raise _fail(file, where, "preset is GIMP's; a TOM run takes TOMConfig's keywords in "
                                 "options")
    profile = _profile(point["profile"], file, where)
    if "train_steps" in point:
        try:
            checks.integer(point["train_steps"], "train_steps", minimum=1)
        except ValueError as err:
            raise _fail(file, where, str(err)) from None
    for key in ("model", "dataset"):
        if key in point and not isinstance(point[key], str):
            raise _fail(file, where, f"{key} must be a name (a string), got "
                                     f"{checks.shown(point[key])}")
    try:
        setup = profile.setup(model=point.get("model"), dataset=point.get("dataset"),
                              seed=seed, train_steps=point.get("train_steps"))
        target = point.get("target_density", profile.target_density)
        if experiment == "gimp":
            preset = point["preset"]
            if not isinstance(preset, str) or preset not in PRESETS:
                raise ValueError(f"preset {checks.shown(preset)} is not one of "
                                 f"{', '.join(PRESETS)}")
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


def _path(value: object, key: str, file: Path, where: str) -> Path:
    """``value``, a path relative to the sweep file's folder (``~`` expanded)."""
    try:
        return (file.parent / checks.path(value, key)).resolve()
    except ValueError as err:
        raise _fail(file, where, str(err)) from None


def _check_options(options: dict, accepted: set[str], what: str) -> None:
    for key in options:
        if key not in accepted:
            raise ValueError(f"options: unknown key {checks.shown(key)} for {what}; allowed: "
                             f"{', '.join(sorted(accepted))}")


def _notebook_items(table: dict, defaults: dict, group: int, file: Path,
                    where: str) -> list[Item]:
    _check_keys(table, NOTEBOOK_KEYS, file, where)
    resources = _resources(table, defaults, file, where)
    ids = table.get("ids")
    if not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)):
        raise _fail(file, where, f"ids must be a list of notebook numbers such as "
                                 f"[\"05\"], got {checks.shown(ids)}")
    profile = table.get("profile", "quick")
    if isinstance(profile, list):
        raise _fail(file, where, "profile: a [[notebooks]] table takes one profile; write a "
                                 "table per profile")
    profile = _profile(profile, file, where).name
    environment = os.environ.get("PRUNINGLAB_PROFILE") or None
    if environment is not None and environment != profile:
        raise _fail(file, where, f"profile {profile!r}, but PRUNINGLAB_PROFILE="
                                 f"{checks.shown(environment)} is set in the environment and "
                                 "every notebook would run that instead; unset it")
    try:
        exercises.fill_requested()  # a bad value would fail every notebook's first check
    except ValueError as err:
        raise _fail(file, where, str(err)) from None
    given = table.get("parameters", {})
    if not isinstance(given, dict):
        raise _fail(file, where, "parameters must be a table, e.g. parameters = { SEED = 1 }")
    for fixed in ("PROFILE", "INTERACTIVE"):
        if fixed in given:
            raise _fail(file, where, f"parameters: {fixed} is set by the sweep (give "
                                     "profile = ... instead)" if fixed == "PROFILE" else
                        f"parameters: {fixed} is set by the sweep (False: headless)")
    folder = table.get("dir")
    if folder is not None:
        folder = _path(folder, "dir", file, where)
    try:
        every = notebooks.find_notebooks(folder)
    except FileNotFoundError as err:
        raise _fail(file, where, f"dir: {err}") from None
    items = []
    for notebook_id in ids:
        found = [p for p in every if p.name.startswith(notebook_id)]
        if len(found) != 1:
            raise _fail(file, where, f"ids: {checks.shown(notebook_id)} matches {len(found)} "
                                     "notebooks; "
                                     f"the notebooks are {', '.join(p.name[:2] for p in every)}")
        path = found[0].resolve()
        try:
            declared = parameters.declared(path)
        except ValueError as err:
            raise _fail(file, where, f"ids: {checks.shown(notebook_id)}: {err}") from None
        axes = _axes(given, list(given), file, f"{where}, parameters", parameters.LIST_VALUED)
        _check_size(math.prod(map(len, axes)) * len(ids), file, where)
        for point in _grid(axes, list(given)):
            try:
                point = {key: parameters.check(path.name, key, value, declared)
                         for key, value in point.items()}
            except ValueError as err:
                raise _fail(file, where, f"parameters: {err}") from None
            device = _device(point.get("DEVICE"), resources["gpus"], "parameters: DEVICE",
                             file, where)
            values = {**point, "DEVICE": device, "PROFILE": profile, "INTERACTIVE": False}
            name = " ".join([path.name[:2], profile] + [f"{k}={v}" for k, v in point.items()])
            slug = re.sub(r"[^A-Za-z0-9=.+-]+", "_",
                          name.replace(", ", ",").replace(" ", "-"))
            if len(slug) > 100:  # a folder name stays short: cut, and told apart by a hash
                digest = hashlib.sha256(slug.encode()).hexdigest()[:12]
                slug, name = f"{slug[:80]}-{digest}", f"{name[:80]}... {digest}"
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
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise _fail(path, "TOML", str(err)) from None
    except RecursionError:
        raise _fail(path, "TOML", "nested too deeply to read") from None
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
    order = _table_order(text)
    if sorted(order) != sorted(["runs"] * len(tables["runs"])
                               + ["notebooks"] * len(tables["notebooks"])):
        if any(t.get("after") for found in tables.values() for t in found):
            raise _fail(path, "after", "with after = true, write every table as a [[runs]] "
                                       "or [[notebooks]] header (the barrier follows their "
                                       "order in the file)")
        order = ["runs"] * len(tables["runs"]) + ["notebooks"] * len(tables["notebooks"])
    tables = {sort: iter(found) for sort, found in tables.items()}
    items: list[Item] = []
    seen: set[str] = set()
    folders: dict[str, Item] = {}
    group = 0
    counters = {"runs": 0, "notebooks": 0}
    for sort in order:
        table = next(tables[sort])
        counters[sort] += 1
        where = f"[[{sort}]] #{counters[sort]}"
        after = table.get("after", False)
        if not isinstance(after, bool):
            raise _fail(path, where, f"after must be true or false, got {checks.shown(after)}")
        if after and items:
            group += 1
        make = _run_items if sort == "runs" else _notebook_items
        for item in make(table, defaults, group, path, where):
            if item.sort == "notebook":  # one executed copy per notebook and parameters
                key = json.dumps([item.task["notebook"], item.task["parameters"]],
                                 sort_keys=True)
                other = folders.setdefault(item.task["folder"], item)
                if other is not item and key not in seen:
                    raise _fail(path, where, f"items {other.name!r} and {item.name!r} would "
                                             "write the same executed notebook; give them "
                                             "parameters that tell them apart")
            else:  # a grid may name a run twice (sGIMP(0%) is LR rewinding)
                key = run_folder(item.task, Path("."))
            if key not in seen:
                seen.add(key)
                items.append(item)
        _check_size(len(items), path, where)
    if not items:
        raise _fail(path, "top level", "no items: add [[runs]] or [[notebooks]] tables")
    try:
        store = (checks.path(store, "store") if store is not None
                 else _path(head["store"], "store", path, "[sweep]") if "store" in head
                 else runs.default_root())
        out = (checks.path(out, "out") if out is not None
               else _path(head["out"], "out", path, "[sweep]") if "out" in head
               else Path("build") / "sweep")
        runs.check_store(store)
    except NotADirectoryError as err:
        raise _fail(path, "store", str(err)) from None
    if out.exists() and not out.is_dir():
        raise _fail(path, "out", f"{str(out)!r} is a file, not a folder")
    return Sweep(path, tuple(items), store.resolve(), out.resolve())


def _table_order(text: str) -> list[str]:
    """The sorts of the ``[[runs]]`` and ``[[notebooks]]`` tables in the order written."""
    return re.findall(r"^\s*\[\[\s*(runs|notebooks)\s*\]\]", text, flags=re.MULTILINE)


def run_config(task: dict) -> tuple[str, dict]:
    """The kind and run-store config of a run item's task (what its folder is named by)."""
    setup = Setup.from_dict(task["setup"])
    if task["experiment"] == "gimp":
        return "gimp", gimp_runs.run_config(setup, gimp.GIMPConfig(**task["config"]))
    return "tom", tom_runs.run_config(setup, tom.TOMConfig(**task["config"]))


def run_folder(task: dict, store: Path) -> str:
    """The folder under ``store`` that holds a run item's run."""
    kind, config = run_config(task)
    return str(runs.RunDir.path_for(kind, config, store))
