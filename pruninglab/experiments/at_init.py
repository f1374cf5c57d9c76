"""Pruning at initialization: prune once before any training, then train (SNIP, Lee et al.
2018; random pruning as the baseline). The cheapest one-shot methods of Figure 3.10: one
full training, T steps, nothing else.
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from ..core import checks, masking, seeding
from ..core.data import Dataset
from ..core.pruning import check_density, prune
from ..core.saliency import random as random_saliency
from ..core.saliency import snip
from ..core.train import Trainer, evaluate_splits
from . import runner, stored
from .config import Setup

__all__ = ["run", "experiment", "CRITERIA"]

CRITERIA = ("snip", "random", "magnitude")


def experiment(setup: Setup, density: float, criterion: str, n_batches: int, data: Dataset,
               progress: bool = True) -> runner.Experiment:
    """One stored stage: prune the initialization with ``criterion``, train T steps."""

    def prune_and_train(model, index: int, start: dict) -> tuple[dict, None]:
        tic = time.perf_counter()
        saliency = {"snip": lambda: snip(data.x_train, data.y_train, n_batches,
                                         setup.train.batch_size),
                    "random": lambda: random_saliency(seeding.derive(setup.seed, "at_init",
                                                                     "random")),
                    "magnitude": lambda: "magnitude"}[criterion]()
        prune(model, density, saliency=saliency)
        Trainer(model, data, setup.train, seed=seeding.derive(setup.seed, "at_init", "train"),
                progress=progress, desc=f"{criterion} @ {density:.3g}").run(setup.train.steps)
        return {**masking.summary(model), **evaluate_splits(model, data, splits=("test", "train")),
                "total_steps": setup.train.steps, "seconds": time.perf_counter() - tic}, None

    config = stored.run_config("at_init", setup, density=density, criterion=criterion,
                               n_batches=n_batches)
    return stored.experiment(setup, data, config, stages=[f"{criterion} @ {density:.3g}"],
                             step=prune_and_train, label=f"{criterion} at init")


def run(
    setup: Setup,
    density: float,
    criterion: str = "snip",
    n_batches: int = 1,
    data: Dataset | None = None,
    store: str | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> pd.DataFrame:
    """Prune ``setup``'s freshly initialized model to ``density`` with ``criterion`` and
    train it for T steps (through the run store).

    Args:
        criterion: ``"snip"`` (|w * g| over ``n_batches`` training batches), ``"random"``
            or ``"magnitude"`` (|w| of the initialization).
        n_batches: SNIP's batches (of the training batch size).

    Returns:
        One row: ``method``, ``seed``, ``density``, ``compression``, ``kept``, ``total``
        (:func:`pruninglab.core.masking.summary`), ``test_loss``, ``test_accuracy``,
        ``train_loss``, ``train_accuracy`` (first 10,000 training images), ``total_steps``
        (= T) and ``seconds``.
    """
    density = check_density(density)
    checks.one_of(criterion, "criterion", CRITERIA)
    n_batches = checks.integer(n_batches, "n_batches", minimum=1)
    data = setup.resolve_data(data, device)
    return runner.run(experiment(setup, density, criterion, n_batches, data, progress), store,
                      progress=False)
