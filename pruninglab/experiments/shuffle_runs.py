"""Table 3.1's experiment through the run store: a lottery ticket (weight rewinding's last
level), each :data:`~pruninglab.experiments.shuffle.MODIFICATIONS` applied to it and
retrained, every modification a stored run; the table beside the thesis's, and its claims.
"""

from __future__ import annotations

import functools
import time

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core import checks, masking, seeding
from ..core.data import Dataset
from ..core.train import Trainer, evaluate_splits
from . import gimp, gimp_runs, runner, stored
from .config import Setup
from .shuffle import MODIFICATIONS

__all__ = ["run", "ticket", "table_3_1", "claims", "THESIS_TABLE_3_1"]

# Table 3.1: MNIST accuracy (%) of the 96%-sparse MLP, mean and std over runs.
THESIS_TABLE_3_1 = {
    "none": (98.624, 0.035),
    "shuffle within masks (A)": (98.315, 0.056),
    "reinitialize": (98.259, 0.084),
    "shuffle masks and weights (B)": (97.350, 0.050),
    "shuffle masks and reinitialize": (96.897, 0.230),
}


def run(
    setup: Setup,
    density: float = 0.04,
    K: float = 0.7,
    modifications: list[str] | None = None,
    data: Dataset | None = None,
    store: str | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> pd.DataFrame:
    """Table 3.1's experiment for one seed.

    1. Prune ``setup``'s model by weight rewinding (Algorithm 2) with density multiplier
       ``K`` until ``density`` (thesis: 0.04, i.e. 96 % sparsity); the ticket is the state
       the last level trains from: the initial weights times the final mask.
    2. For each modification, apply it to the ticket (its random draws are the streams
       ``("shuffle", ...)`` of ``setup.seed``; "shuffle masks and reinitialize" draws the same
       new weights as "reinitialize", under another mask) and train it exactly as that last
       level was trained: T steps, the schedule from 0, the same batches. ``"none"``
       therefore reproduces the weight-rewinding run's last level.

    Each modification is a run of its own in the store; a store that holds every
    modification's record answers without the ticket's checkpoints (JSON records are
    enough), and a damaged ticket checkpoint is recomputed.

    Returns:
        One row per modification: ``seed``, ``modification``, ``test_loss``,
        ``test_accuracy``, ``train_loss``, ``train_accuracy`` (first 10,000 training
        images), ``density``, ``seconds``, ``layers`` (each layer's density, as in GIMP's
        records).
    """
    ticket_config = _ticket_config(setup, density, K)
    names = list(MODIFICATIONS if modifications is None else modifications)
    unknown = [n for n in names if n not in MODIFICATIONS]
    if unknown:
        raise ValueError(f"unknown modifications {unknown}; known: {list(MODIFICATIONS)}")
    if not names:
        raise ValueError(f"modifications must name at least one of {list(MODIFICATIONS)} "
                         f"(None: all), got {modifications!r}")
    data = setup.resolve_data(data, device)
    ticket_run = gimp_runs.experiment(setup, ticket_config, data, progress)
    last = len(ticket_config.densities()) - 1
    ticket_state = functools.cache(lambda: runner.state_at(ticket_run, last, store, progress))
    frames = []
    for name in tqdm(names, desc="modifications", disable=not progress, leave=False):
        config = stored.run_config("shuffle", setup, ticket=ticket_config.to_dict(),
                                   modification=name)
        experiment = stored.experiment(
            setup, data, config, stages=[name], label=name, columns={"seed": setup.seed},
            step=functools.partial(_retrain, data=data, setup=setup, name=name, last=last,
                                   progress=progress),
            start=ticket_state)  # loaded (or recomputed) once, only if a record is missing
        frames.append(runner.run(experiment, store, progress=False))
    return pd.concat(frames, ignore_index=True)


def _ticket_config(setup: Setup, density: float, K: float) -> gimp.GIMPConfig:
    density = checks.real(density, "density (the ticket is pruned)", 0.0, 1.0, low_open=True,
                          high_open=True)
    return gimp.weight_rewinding(setup.train.steps, density, K=K)


def _retrain(model: nn.Module, index: int, ticket: dict, *, data: Dataset, setup: Setup,
             name: str, last: int, progress: bool) -> tuple[dict, None]:
    """Modify the ticket by ``name`` and train it as weight rewinding's last level was."""
    tic = time.perf_counter()
    MODIFICATIONS[name](model, setup.seed)
    Trainer(model, data, setup.train, seed=seeding.derive(setup.seed, "gimp", last),
            position=ticket["position"], progress=progress, desc=name).run(setup.train.steps)
    return {"modification": name, **evaluate_splits(model, data, splits=("test", "train")),
            "density": masking.density(model), "seconds": time.perf_counter() - tic,
            "layers": masking.layer_densities(model)}, None


def ticket(
    setup: Setup,
    density: float = 0.04,
    K: float = 0.7,
    data: Dataset | None = None,
    store: str | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> nn.Module:
    """The lottery ticket :func:`run` modifies: ``setup``'s model with the initial weights
    under weight rewinding's final mask (from the run store; pruned first if missing).
    Apply a modification to a copy to see it (Figure 3.11)::

        net = shuffle.ticket(setup, data=data)
        shuffled = shuffle.MODIFICATIONS["shuffle masks and weights (B)"](copy.deepcopy(net), 0)
    """
    ticket_config = _ticket_config(setup, density, K)
    data = setup.resolve_data(data, device)
    ticket_run = gimp_runs.experiment(setup, ticket_config, data, progress)
    state = runner.state_at(ticket_run, len(ticket_config.densities()) - 1, store, progress)
    return setup.masked_model(data, state=state["model"])


def table_3_1(results: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Table 3.1 from :func:`run`'s rows (one data set, any number of seeds).

    Returns:
        One row per modification (in :data:`MODIFICATIONS` order), indexed by name, with
        ``mean`` and ``std`` (sample std over seeds; NaN for one seed) in %, ``seeds``,
        ``difference`` (``mean`` minus the unmodified ticket's ``mean``, points), ``rank``
        (1 = most accurate), and the thesis's ``thesis mean``, ``thesis std``,
        ``thesis difference`` and ``thesis rank`` (MNIST, :data:`THESIS_TABLE_3_1`).
    """
    missing = {"modification", "seed", metric} - set(results)
    if missing:
        raise ValueError(f"results lacks the columns {sorted(missing)}; pass shuffle.run's rows")
    g = results.groupby("modification")
    table = pd.DataFrame({"mean": 100 * g[metric].mean(), "std": 100 * g[metric].std(),
                          "seeds": g["seed"].nunique()})
    table = table.reindex([n for n in MODIFICATIONS if n in table.index])
    if "none" not in table.index:
        raise ValueError("results must include the unmodified ticket ('none')")
    table["difference"] = table["mean"] - table.loc["none", "mean"]
    table["rank"] = table["mean"].rank(ascending=False, method="min").astype(int)
    thesis = pd.DataFrame(THESIS_TABLE_3_1, index=["thesis mean", "thesis std"]).T
    thesis["thesis difference"] = thesis["thesis mean"] - THESIS_TABLE_3_1["none"][0]
    thesis["thesis rank"] = thesis["thesis mean"].rank(ascending=False, method="min").astype(int)
    table = table.join(thesis)
    table.index.name = "modification"
    return table


def claims(summary: pd.DataFrame) -> dict[str, bool | None]:
    """Section 3.3.2's reading of Table 3.1, checked on a :func:`table_3_1` table with all
    five rows. ``None`` means the data cannot decide (a spread needs two seeds or more).

    Claims:
        * every modification lowers the accuracy;
        * keeping the topology (A, reinitialize) beats changing it (B, shuffle masks and
          reinitialize): the worse of the first two beats the better of the last two;
        * with a changed topology, keeping the weight values (B) beats reinitializing;
        * shuffling within the masks and reinitializing do not differ significantly (their
          means lie within two standard errors of the difference);
        * the order of the five rows is the thesis's.
    """
    names = list(MODIFICATIONS)
    if list(summary.index) != names:
        raise ValueError(f"summary must hold the rows {names}, got {list(summary.index)}")
    m = summary["mean"]
    a, r, b, s = names[1:]
    se = ((summary.loc[a, "std"] ** 2 / summary.loc[a, "seeds"])
          + (summary.loc[r, "std"] ** 2 / summary.loc[r, "seeds"])) ** 0.5
    return {
        "every modification lowers the accuracy": bool((m[names[1:]] < m["none"]).all()),
        "keeping the topology beats changing it": bool(min(m[a], m[r]) > max(m[b], m[s])),
        "with a changed topology, keeping the values (B) beats reinitializing":
            bool(m[b] > m[s]),
        "shuffling within masks and reinitializing do not differ significantly":
            None if pd.isna(se) else bool(abs(m[a] - m[r]) <= 2 * se),
        "the order of the five rows is the thesis's":
            bool((summary["rank"] == summary["thesis rank"]).all()),
    }
