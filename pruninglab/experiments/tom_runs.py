"""Training Optimal Masks through the run store: one stored stage per phase
(:data:`~pruninglab.experiments.tom.PHASES`), resumable, and the thesis's figure to compare.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch

from ..core import checks
from ..core.data import Dataset
from . import runner, stored, tom
from .config import Setup
from .tom import TOMConfig

__all__ = ["run", "experiment", "run_config", "THESIS_MNIST"]

# Section 3.3.1: the MLP of Table 3.1 on MNIST at 96 % sparsity, test accuracy (%), mean and
# std: TOM against iterative pruning (weight rewinding, Table 3.1's "none").
THESIS_MNIST: dict[str, tuple[float, float]] = {"tom": (98.639, 0.039),
                                                "iterative": (98.624, 0.039)}


def run_config(setup: Setup, config: TOMConfig) -> dict:
    """The dict the run store keys a TOM run by."""
    return stored.run_config("tom", setup, method=config.to_dict())


def experiment(setup: Setup, config: TOMConfig, data: Dataset, progress: bool = True,
               eval_every: int | None = None) -> runner.Experiment:
    """The three stored phases; the last one, with ``final_weights="init"``, restarts from
    the setup's initialization."""
    setup.check_data(data)
    setup.check_train_steps(config.train_steps)
    if eval_every is not None:  # checked here too, before the pretraining phase runs
        eval_every = checks.integer(eval_every, "eval_every", minimum=1)
    seed, train = setup.seed, setup.train

    def step(model, index: int, start: dict) -> tuple[dict, dict | None]:
        if index == 0:
            return tom.pretrain(model, data, config, train=train, seed=seed,
                                progress=progress), {}
        if index == 1:
            return tom.train_masks(model, data, config, batch_size=train.batch_size, seed=seed,
                                   progress=progress, eval_every=eval_every), {}
        initial = setup.masked_model(data).state_dict() if config.final_weights == "init" else None
        return tom.final_training(model, data, config, train=train, seed=seed,
                                  progress=progress, initial=initial), None

    return stored.experiment(setup, data, run_config(setup, config), stages=tom.PHASES,
                             step=step, label=config.method,
                             columns={"method": config.method, "seed": setup.seed,
                                      "total_steps": config.total_steps})


def run(
    setup: Setup,
    config: TOMConfig,
    data: Dataset | None = None,
    store: str | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    eval_every: int | None = None,
    on_phase: Callable[[dict], None] | None = None,
    fetch_only: bool = False,
) -> pd.DataFrame | None:
    """Training Optimal Masks through the run store (resumable phase by phase).

    ``setup``, ``data``, ``store``, ``device``, ``progress``, ``fetch_only``: as in
    ``gimp.run``; ``eval_every``: see :func:`~pruninglab.experiments.tom.train_masks`;
    ``on_phase`` sees each phase's record.

    Returns:
        Rows ``pretrain`` (dense), ``masks`` (frozen weights, top-t mask, the logits'
        ``history``) and ``final`` (retrained), with ``method``, ``seed``, ``total_steps``.
    """
    data = setup.resolve_data(data, device)
    return runner.run(experiment(setup, config, data, progress, eval_every), store, progress,
                      on_record=on_phase, fetch_only=fetch_only)
