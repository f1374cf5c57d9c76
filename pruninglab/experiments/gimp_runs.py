"""GIMP runs in the run store: how a run of :func:`pruninglab.experiments.gimp.loop` becomes a
stored, resumable experiment, and the DataFrames of its records.

Each stage of the stored run is one :func:`pruninglab.experiments.gimp.level`, started from a
checkpoint (the model's whole state and the schedule position, and the optimizer's state
with ``carry_optimizer``); resuming is skipping the levels whose records are stored
(:mod:`pruninglab.experiments.runner`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..core import seeding
from ..core.data import Dataset
from ..core.train import Callback, Trainer
from . import gimp, runner, runs
from .config import Setup
from .gimp import GIMPConfig

__all__ = ["experiment", "run", "run_many", "at_densities", "cumulative_steps"]


def experiment(setup: Setup, config: GIMPConfig, data: Dataset, progress: bool = True,
               on_step: tuple[int, Callback] | None = None) -> runner.Experiment:
    """GIMP as a :class:`~pruninglab.experiments.runner.Experiment`: stage ``i`` is
    :func:`~pruninglab.experiments.gimp.level` ``i``; stage 0 starts from the masked
    initialization at schedule position 0."""
    setup.check_data(data)
    setup.check_train_steps(config.train_steps)

    def start() -> dict:
        model = setup.masked_model(data, config.exclude)
        state = {"model": runs.cpu_state(model.state_dict()), "position": 0}
        if config.carry_optimizer:  # zeros: what a fresh optimizer acts like
            state["optimizer"] = runs.cpu_state(
                Trainer(model, data, setup.train, progress=False).optimizer_state())
        return state

    def stage(index: int, state: dict) -> tuple[dict, dict | None]:
        model = setup.masked_model(data, config.exclude, state=state["model"])
        record, next_start = gimp.level(model, data, config, index, train=setup.train,
                                        start=state, seed=setup.seed, progress=progress,
                                        on_step=on_step)
        if next_start is None:
            return record, None
        return record, {"model": runs.cpu_state(model.state_dict()), **runs.cpu_state(next_start)}

    return runner.Experiment(
        kind="gimp", config=gimp.run_config(setup, config),
        stages=[f"level {i} @ {d:.3g}" for i, d in enumerate(config.densities())],
        start=start, stage=stage, columns={"method": config.method, "seed": setup.seed},
        label=config.method)


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
    """:func:`pruninglab.experiments.gimp.loop` for ``setup`` and ``config``, through the run
    store: the stored levels come back, the missing ones are trained.

    Args:
        setup: model, data set, training hyperparameters and seed.
        config: the GIMP inputs (see the presets).
        data: the loaded data set (loaded from ``setup`` when ``None``).
        store: run-store root (``None``: ``$PRUNINGLAB_RUNS`` or ``./runs``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``; ignored when ``data`` is given (its
            device is used).
        progress: tqdm bars for levels and steps.
        on_level: called with each level's record as soon as it is stored (also for
            records that come from the store).
        on_step: ``(every, fn)``: a training callback for live curves.
        fetch_only: return ``None`` instead of training when the store does not hold the
            finished run (for widgets that must answer at once).

    Returns:
        One row per level: ``method``, ``seed``, ``level``, ``target_density``, the
        columns of :func:`pruninglab.core.masking.summary` (``density``, ``compression``,
        ``kept``, ``total``), ``steps``, ``position_start``, ``position_end``,
        ``rewind_point``, ``seconds``, ``train_loss_running`` and
        ``train_accuracy_running`` (means over the level's augmented batches), the columns
        of :func:`pruninglab.core.train.evaluate_splits` (``test_*``, ``train_*``, ``val_*``
        with a validation split) and ``layers`` (``{layer: density}``).
    """
    data = setup.resolve_data(data, device)
    return runner.run(experiment(setup, config, data, progress, on_step), store, progress,
                      on_record=on_level, fetch_only=fetch_only)


def run_many(runs: Mapping[str, tuple[Setup, GIMPConfig]], seeds: Sequence[int],
             label: str = "label", **run_kwargs) -> pd.DataFrame:
    """:func:`run` for every labelled ``(setup, config)`` and every seed (replicates).

    Args:
        runs: ``{label: (setup, config)}``; each setup's seed is replaced by each of
            ``seeds``.
        seeds: the replicates.
        label: the name of the column that holds each row's label.
        run_kwargs: passed to :func:`run` (``data``, ``store``, ``progress``, ...).

    Returns:
        The rows of all runs, with the ``label`` column.
    """
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
