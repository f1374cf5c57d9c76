"""GIMP runs in the run store: how a run of :func:`pruninglab.experiments.gimp.loop` becomes a
stored, resumable experiment, and the DataFrames of its records.

Each stage of the stored run is one :func:`pruninglab.experiments.gimp.level`, started from a
checkpoint (the model's whole state and the schedule position, and the optimizer's state
with ``carry_optimizer``); resuming is skipping the levels whose records are stored
(:mod:`pruninglab.experiments.runner`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.data import Dataset
from ..core.train import Callback, Trainer
from . import gimp, runner, runs
from .config import Setup
from .gimp import GIMPConfig

__all__ = ["experiment", "at_densities", "cumulative_steps"]


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
