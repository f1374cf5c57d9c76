"""Sparse mask modifications (thesis Section 3.3.2, Table 3.1, Figure 3.11).

How tightly is a pruned network's mask bound to its weights? Take a lottery ticket -- a
network pruned by weight rewinding (Algorithm 2), i.e. its initial weights under the final
mask -- change it in one of four ways, retrain it, and compare:

====================================  ==================  =============================
modification                          keeps the topology  weight values
====================================  ==================  =============================
(A) shuffle weights within the mask   yes                 the same values, moved
reinitialize                          yes                 fresh from the initializer
(B) shuffle masks and weights         no                  move with their mask entries
shuffle masks and reinitialize        no                  fresh from the initializer
====================================  ==================  =============================

Every modification keeps every layer's number of kept weights. Each is a function on a
masked model that works in place (:data:`MODIFICATIONS` names them); :func:`run` is the
experiment, :func:`ticket` the unmodified network it starts from (Figure 3.11),
:func:`summarize` turns its rows into Table 3.1 beside the thesis's numbers and
:func:`claims` checks Section 3.3.2's reading of that table.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import gimp, masking, models, runs
from .config import Setup
from .data import Dataset
from .train import Trainer, evaluate_splits, resolve_device

__all__ = [
    "shuffle_within_masks",
    "reinitialize",
    "shuffle_masks_and_weights",
    "shuffle_masks_and_reinitialize",
    "MODIFICATIONS",
    "THESIS_TABLE_3_1",
    "run",
    "ticket",
    "summarize",
    "claims",
]

# Table 3.1: MNIST accuracy (%) of the 96%-sparse MLP, mean and std over runs.
THESIS_TABLE_3_1 = {
    "none": (98.624, 0.035),
    "shuffle within masks (A)": (98.315, 0.056),
    "reinitialize": (98.259, 0.084),
    "shuffle masks and weights (B)": (97.350, 0.050),
    "shuffle masks and reinitialize": (96.897, 0.230),
}


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


@torch.no_grad()
def shuffle_within_masks(model: nn.Module, seed: int = 0) -> nn.Module:
    """(A) In every masked layer, permute the kept weights' values among the kept
    positions. The mask (topology) is unchanged; so is each layer's set of values."""
    for layer in masking.masked_layers(model).values():
        mask = getattr(layer, masking.MASK).flatten()
        weight = layer.weight.view(-1)
        kept = mask.nonzero().squeeze(1)
        perm = torch.randperm(len(kept), generator=_generator(seed, kept.device),
                              device=kept.device)  # fmt: skip
        weight[kept] = weight[kept][perm]
        seed += 1
    return model


# Added to the seed of reinitialize(), so that reinitializing with seed s never redraws the
# very weights of a model that was initialized under torch.manual_seed(s).
_REINIT_SEED_OFFSET = 1_000_003


@torch.no_grad()
def reinitialize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Draw fresh weights (and biases) for every masked layer from the model's own
    initializer (:func:`pruninglab.models.init_layer` with the scheme the model was built
    with, ``model.pruninglab_init``), then apply the unchanged masks."""
    init = getattr(model, "pruninglab_init", "torch")
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=cuda):  # seeded without touching the global RNG
        torch.manual_seed(seed + _REINIT_SEED_OFFSET)
        for layer in masking.masked_layers(model).values():
            models.init_layer(layer, init)
    masking.apply_masks(model)
    return model


@torch.no_grad()
def shuffle_masks_and_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """(B) In every masked layer, apply one random permutation to the positions of the
    (mask, weight) pairs: the topology changes, each value stays with its mask entry."""
    _permute_masks(model, seed, with_weights=True)
    return model


@torch.no_grad()
def shuffle_masks_and_reinitialize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Permute every layer's mask at random, then reinitialize the weights."""
    seed = _permute_masks(model, seed, with_weights=False)
    return reinitialize(model, seed)


def _permute_masks(model: nn.Module, seed: int, with_weights: bool) -> int:
    """One random permutation per masked layer (seeds ``seed``, ``seed + 1``, ...) applied to
    its mask, and to its weight when ``with_weights``; returns the next unused seed."""
    for layer in masking.masked_layers(model).values():
        mask = getattr(layer, masking.MASK)
        perm = torch.randperm(mask.numel(), generator=_generator(seed, mask.device),
                              device=mask.device)  # fmt: skip
        mask.copy_(mask.flatten()[perm].view_as(mask))
        if with_weights:
            layer.weight.copy_(layer.weight.flatten()[perm].view_as(layer.weight))
        seed += 1
    return seed


def _none(model: nn.Module, seed: int = 0) -> nn.Module:
    return model


MODIFICATIONS: dict[str, Callable[[nn.Module, int], nn.Module]] = {
    "none": _none,
    "shuffle within masks (A)": shuffle_within_masks,
    "reinitialize": reinitialize,
    "shuffle masks and weights (B)": shuffle_masks_and_weights,
    "shuffle masks and reinitialize": shuffle_masks_and_reinitialize,
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
    2. For each modification, apply it to the ticket (seeded by ``setup.seed``) and train
       it exactly as that last level was trained: T steps, the schedule from 0, the same
       batches. ``"none"`` therefore reproduces the weight-rewinding run's last level.

    Returns:
        One row per modification: ``modification``, ``test_accuracy``, ``test_loss``,
        ``train_accuracy`` (first 10,000 training images), ``density``, ``seconds``,
        ``layers`` (per-layer kept counts), ``seed``.
    """
    _check_density(density)
    names = list(MODIFICATIONS if modifications is None else modifications)
    unknown = [n for n in names if n not in MODIFICATIONS]
    if unknown:
        raise ValueError(f"unknown modifications {unknown}; known: {list(MODIFICATIONS)}")
    if not names:
        raise ValueError(f"modifications must name at least one of {list(MODIFICATIONS)} "
                         f"(None: all), got {modifications!r}")
    if data is None:
        data = setup.load_data(resolve_device(device))
    T = setup.train.steps
    ticket_config, ticket, last = _ticket_state(setup, density, K, data, store, progress)

    rows = []
    for name in tqdm(names, desc="modifications", disable=not progress, leave=False):
        config = {"kind": "shuffle", "setup": setup.to_dict(), "ticket": ticket_config.to_dict(),
                  "modification": name}  # fmt: skip
        run_dir = runs.RunDir.open("shuffle", config, store)
        record = run_dir.read_record(0)
        if record is None:
            tic = time.perf_counter()
            model = setup.build_model(data).to(data.device)
            masking.add_masks(model)
            masking.load_state_dict(model, ticket["model"])
            MODIFICATIONS[name](model, setup.seed)
            trainer = Trainer(model, data, setup.train, seed=gimp.level_seed(setup.seed, last),
                              position=int(ticket["position"]), progress=progress,
                              desc=name)  # fmt: skip
            trainer.run(T)
            scores = evaluate_splits(model, data, splits=("test", "train"))
            layers = {n: int(m.sum()) for n, m in masking.get_masks(model).items()}
            record = {"modification": name, "test_accuracy": scores["test_accuracy"],
                      "test_loss": scores["test_loss"],
                      "train_accuracy": scores["train_accuracy"],
                      "density": masking.density(model), "seconds": time.perf_counter() - tic,
                      "layers": layers}  # fmt: skip
            run_dir.write_record(0, record)
        rows.append({**record, "seed": setup.seed})
    return pd.DataFrame(rows)


def _check_density(density: float) -> None:
    if isinstance(density, bool) or not isinstance(density, (int, float)) \
            or not 0.0 < density < 1.0:  # fmt: skip
        raise ValueError(f"density must lie in (0, 1) (the ticket is pruned), got {density!r}")


def _ticket_state(setup: Setup, density: float, K: float, data: Dataset, store, progress: bool):
    """Run (or fetch) the weight-rewinding run; return its config, the ticket's checkpoint
    (the state its last level trains from) and that level's index."""
    ticket_config = gimp.weight_rewinding(setup.train.steps, density, K)
    gimp.run(setup, ticket_config, data=data, store=store, progress=progress)
    ticket_run = runs.RunDir.open("gimp", gimp.run_config(setup, ticket_config), store)
    last = len(ticket_config.densities()) - 1
    state = ticket_run.load_checkpoint(last)
    if state is None:
        raise RuntimeError(f"the ticket's checkpoint {last} is missing in {ticket_run.path}")
    return ticket_config, state, last


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
    _check_density(density)
    if data is None:
        data = setup.load_data(resolve_device(device))
    _, state, _ = _ticket_state(setup, density, K, data, store, progress)
    model = setup.build_model(data).to(data.device)
    masking.add_masks(model)
    masking.load_state_dict(model, state["model"])
    return model


def summarize(results: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
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
                          "seeds": g["seed"].nunique()})  # fmt: skip
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
    """Section 3.3.2's reading of Table 3.1, checked on a :func:`summarize` table with all
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
          + (summary.loc[r, "std"] ** 2 / summary.loc[r, "seeds"])) ** 0.5  # fmt: skip
    return {
        "every modification lowers the accuracy": bool((m[names[1:]] < m["none"]).all()),
        "keeping the topology beats changing it": bool(min(m[a], m[r]) > max(m[b], m[s])),
        "with a changed topology, keeping the values (B) beats reinitializing":
            bool(m[b] > m[s]),
        "shuffling within masks and reinitializing do not differ significantly":
            None if pd.isna(se) else bool(abs(m[a] - m[r]) <= 2 * se),
        "the order of the five rows is the thesis's":
            bool((summary["rank"] == summary["thesis rank"]).all()),
    }  # fmt: skip
