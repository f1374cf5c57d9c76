"""GIMP through the run store: :func:`run` is :func:`pruninglab.experiments.gimp.loop` with
every level a stored, resumable stage (:mod:`pruninglab.experiments.stored`), and the
DataFrames of its records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..core import seeding
from ..core.data import Dataset
from ..core.train import Callback, Trainer
from . import gimp, runner, stored
from .config import Setup
from .gimp import GIMPConfig

__all__ = ["run", "run_many", "run_config", "experiment", "at_densities", "cumulative_steps"]


def run_config(setup: Setup, config: GIMPConfig) -> dict:
    """The dict the run store keys a GIMP run by."""
    return stored.run_config("gimp", setup, method=config.to_dict())


def experiment(setup: Setup, config: GIMPConfig, data: Dataset, progress: bool = True,
               on_step: tuple[int, Callback] | None = None) -> runner.Experiment:
    """Stage ``i`` is :func:`~pruninglab.experiments.gimp.level` ``i``, from the schedule's
    start (and, with ``carry_optimizer``, a fresh optimizer's zero state)."""
    setup.check_data(data)
    setup.check_train_steps(config.train_steps)

    def carry(model) -> dict:
        if not config.carry_optimizer:
            return {"position": 0}
        return {"position": 0,
                "optimizer": Trainer(model, data, setup.train, progress=False).optimizer_state()}

    def step(model, index: int, start: dict) -> tuple[dict, dict | None]:
        return gimp.level(model, data, config, index, train=setup.train, start=start,
                          seed=setup.seed, progress=progress, on_step=on_step)

    return stored.experiment(
        setup, data, run_config(setup, config), step=step, label=config.method,
        stages=[f"level {i} @ {d:.3g}" for i, d in enumerate(config.densities())],
        exclude=config.exclude, carry=carry)


def run(
    setup: Setup,
    config: GIMPConfig,
    data: Dataset | None = None,
    store: str | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    on_level: Callable[[dict], None] | None = None,
    on_step: tuple[int, Callback] | None = None,
    fetch_only: bool = False,
) -> pd.DataFrame | None:
    """:func:`~pruninglab.experiments.gimp.loop` for ``setup`` and ``config``, through the
    run store: stored levels come back, missing ones are trained.

    Args:
        data: the loaded data set (``None``: loaded from ``setup`` onto ``device``).
        store: run-store root (``None``: ``$PRUNINGLAB_RUNS`` or ``./runs``).
        on_level: sees each level's record, stored or new; ``on_step``: ``(every, fn)``.
        fetch_only: ``None`` instead of training when the run is not finished (widgets).

    Returns:
        One row per level: ``method``, ``seed``, then :func:`~pruninglab.experiments.gimp.level`'s
        record (docs/design.md, "GIMP", lists its columns).
    """
    data = setup.resolve_data(data, device)
    return runner.run(experiment(setup, config, data, progress, on_step), store, progress,
                      on_record=on_level, fetch_only=fetch_only)


def run_many(runs: Mapping[str, tuple[Setup, GIMPConfig]], seeds: Sequence[int],
             label: str = "label", **run_kwargs) -> pd.DataFrame:
    """:func:`run` for every ``{label: (setup, config)}`` and every seed of ``seeds`` (the
    setup's seed replaced), the label in the column ``label``; ``run_kwargs`` go to
    :func:`run`."""
    seeds = [seeding.check_seed(s, "seeds") for s in seeds]
    if not runs or not seeds:
        raise ValueError(f"run_many needs at least one run and one seed, got {len(runs)} runs "
                         f"and seeds={seeds!r}")
    frames = [run(setup.replace(seed=seed), config, **run_kwargs).assign(**{label: name})
              for name, (setup, config) in runs.items() for seed in seeds]
    return pd.concat(frames, ignore_index=True)


def at_densities(records: pd.DataFrame, densities: Sequence[float],
                 rtol: float = 1e-6) -> pd.DataFrame:
    """The rows of GIMP ``records`` whose ``target_density`` is one of ``densities``, equal
    within ``rtol``: ``K**n`` reached by repeated multiplication and by a power differ in
    the last bits."""
    if "target_density" not in records:
        raise ValueError("records lacks the column 'target_density'; pass gimp.run's records")
    wanted = np.asarray(list(densities), dtype=float)
    found = records["target_density"].to_numpy(dtype=float)[:, None]
    return records[np.isclose(found, wanted[None, :], rtol=rtol, atol=0.0).any(axis=1)]


def cumulative_steps(records: pd.DataFrame) -> pd.DataFrame:
    """GIMP records with ``total_steps``: the training steps a run spent up to and including
    each level -- its compute if it stopped there. Level ``i`` of weight rewinding costs
    ``(i + 1) T``; a one-shot run's pruned level costs ``2 T``.

    Args:
        records: whole runs of :func:`run` (or several concatenated), each run's rows in
            level order starting at level 0, with a ``steps`` column.

    Returns:
        A copy with the ``total_steps`` column.
    """
    missing = {"level", "steps"} - set(records)
    if missing:
        raise ValueError(f"records lacks the columns {sorted(missing)}; pass gimp.run's records")
    if len(records) and records["level"].iloc[0] != 0:
        raise ValueError("records must hold whole runs, each starting at level 0, got first "
                         f"level {records['level'].iloc[0]!r}")
    run_id = (records["level"] == 0).cumsum()
    out = records.copy()
    out["total_steps"] = records.groupby(run_id)["steps"].cumsum()
    return out
