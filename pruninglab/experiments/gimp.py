"""Generalized Iterative Magnitude Pruning (thesis Section 3.2, Algorithm 5) and its presets.

The loop, as in the thesis::

    density <- K
    Train(model, trainSteps);  Prune(model, density)
    while density > targetDensity:
        density <- density * K                 (the last level is clamped to the target)
        RewindParamBy(model, rewSteps)          parameters: within the cycle that just ended
        RewindSchedBy(model, rewStepsLR)        schedule position: from where it ended
        Train(model, retrainSteps);  Prune(model, density)

with the exact semantics of docs/design.md ("GIMP"):

* A *level* is one training cycle at one density: level 0 is dense and trains ``T`` steps
  from the initialization; level ``i`` trains ``retrain_steps`` at density ``K**i``.
  Each level is evaluated at the end of its training (never at a best epoch).
* After a cycle of ``n`` steps the parameters become the state the cycle had after
  ``max(0, n - rewind_steps)`` of its steps -- the whole module state, BN running
  statistics included -- times the new mask. Only that one state is kept, not every step.
* The schedule position moves back by ``rewind_steps_lr`` from where the cycle ended
  (clamped at 0); a schedule holds its last value past its end.
* The optimizer is reset at every level.

:func:`_level` is one cycle, line by line. Presets: :func:`finetune` (Alg. 1),
:func:`weight_rewinding` (Alg. 2), :func:`stable_weight_rewinding` (Alg. 3),
:func:`lr_rewinding` (Alg. 4), :func:`sgimp` (Alg. 6) and :func:`one_shot`.

:func:`run` executes a config through the run store (:mod:`pruninglab.experiments.runner`):
a finished run comes back at once, an interrupted one continues after its last finished
level.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core import checks, masking, seeding
from ..core.data import Dataset
from ..core.pruning import SCOPES, prune
from ..core.train import Callback, Trainer, evaluate_splits
from . import runner, runs
from .config import Setup

__all__ = [
    "GIMPConfig",
    "finetune",
    "weight_rewinding",
    "stable_weight_rewinding",
    "lr_rewinding",
    "sgimp",
    "one_shot",
    "run",
    "run_many",
    "cumulative_steps",
    "at_densities",
    "experiment",
    "run_config",
    "schedule_trace",
    "ALGORITHMS",
    "algorithms",
    "sgimp_sweep",
]


@dataclass(frozen=True)
class GIMPConfig:
    """The inputs of Algorithm 5.

    Attributes:
        train_steps: T, the steps of the dense training (level 0); it must equal the
            length of the setup's learning-rate schedule.
        target_density: the density to stop at, in (0, 1) (0.1 = 10x compression).
        density_multiplier: K in [0.5, 1): each level keeps K of the previous density
            (thesis Section 3.4: 0.7, a 30% pruning step).
        rewind_steps: how far parameters rewind within the cycle that just ended.
        rewind_steps_lr: how far the schedule position rewinds.
        retrain_steps: steps of every later cycle (``None``: equal to ``train_steps``).
        one_shot: prune to the target in a single level instead of K, K**2, ...
        scope: ``"global"`` (thesis) or ``"layerwise"``.
        exclude: layer names or shell patterns never pruned (one string is one pattern).
        rewind_fraction: X of sGIMP(X%) as a fraction of T, for the presets that are sGIMP
            (0 = learning-rate rewinding, 1 = weight rewinding); ``None`` for the others.
            It must agree with ``rewind_steps`` (``round(X * T)``).
        method: a label for plots and the store (the preset's name).
    """

    train_steps: int
    target_density: float
    density_multiplier: float = 0.7
    rewind_steps: int = 0
    rewind_steps_lr: int = 0
    retrain_steps: int | None = None
    one_shot: bool = False
    scope: str = "global"
    exclude: tuple[str, ...] = ()
    rewind_fraction: float | None = None
    method: str = "gimp"

    def __post_init__(self) -> None:
        def fix(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        for name in ("train_steps", "rewind_steps", "rewind_steps_lr"):
            fix(name, checks.integer(getattr(self, name), name, minimum=0))
        if self.retrain_steps is not None:
            fix("retrain_steps", checks.integer(self.retrain_steps, "retrain_steps", minimum=0))
        fix("density_multiplier", checks.real(self.density_multiplier, "density_multiplier (K)",
                                              0.5, 1.0, high_open=True))
        fix("target_density", checks.real(self.target_density, "target_density", 0.0, 1.0,
                                          low_open=True, high_open=True))
        checks.one_of(self.scope, "scope", SCOPES)
        exclude = (self.exclude,) if isinstance(self.exclude, str) else tuple(self.exclude)
        if any(not isinstance(p, str) for p in exclude):
            raise ValueError(f"exclude must be layer names or patterns (strings), got {exclude!r}")
        fix("exclude", exclude)
        if self.rewind_fraction is not None:
            x = checks.real(self.rewind_fraction, "rewind_fraction", 0.0, 1.0)
            if round(x * self.train_steps) != self.rewind_steps:
                raise ValueError(f"rewind_fraction={x!r} means rewind_steps="
                                 f"{round(x * self.train_steps)} of train_steps="
                                 f"{self.train_steps}, but rewind_steps={self.rewind_steps}")
            fix("rewind_fraction", x)

    @property
    def retrain(self) -> int:
        """Steps of every level after the first."""
        return self.train_steps if self.retrain_steps is None else self.retrain_steps

    def densities(self) -> list[float]:
        """Target density of every level: ``[1, K, K**2, ..., target]`` (clamped), or
        ``[1, target]`` for one-shot."""
        if self.one_shot:
            return [1.0, float(self.target_density)]
        out = [1.0]
        # a relative tolerance keeps K**n from overshooting a target that equals it exactly
        while out[-1] > self.target_density * (1 + 1e-9):
            out.append(max(out[-1] * self.density_multiplier, float(self.target_density)))
        return out

    def steps(self, level: int) -> int:
        """Training steps of level ``level``'s cycle."""
        return self.train_steps if level == 0 else self.retrain

    def rewind_point(self, level: int) -> int:
        """Steps into level ``level``'s cycle whose state the next level starts from."""
        return max(0, self.steps(level) - self.rewind_steps)

    def replace(self, **changes) -> GIMPConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def schedule_trace(config: GIMPConfig, levels: int | None = None) -> list[tuple[int, int, int]]:
    """Where each level reads the learning-rate schedule, without training anything.

    Returns:
        ``(level, first_position, last_position + 1)`` for each of the first ``levels``
        levels (default: all), following the rewinding rules above. Used to draw how each
        algorithm's learning rate evolves over the whole pruning run.
    """
    n = len(config.densities()) if levels is None else levels
    out, position = [], 0
    for level in range(n):
        end = position + config.steps(level)
        out.append((level, position, end))
        position = max(0, end - config.rewind_steps_lr)
    return out


# --------------------------------------------------------------------------------------
# Presets (thesis Algorithms 1-4 and 6): GIMP with its three rewinding inputs set
# --------------------------------------------------------------------------------------


def finetune(train_steps: int, target_density: float, *, K: float = 0.7, **kw) -> GIMPConfig:
    """Algorithm 1: keep training from where it stopped, at the final learning rate."""
    T = train_steps
    return GIMPConfig(T, target_density, density_multiplier=K, rewind_steps=0,
                      rewind_steps_lr=0, retrain_steps=T, method="finetune", **kw)


def weight_rewinding(train_steps: int, target_density: float, *, K: float = 0.7,
                     **kw) -> GIMPConfig:
    """Algorithm 2 (lottery ticket): rewind weights and schedule to the initialization."""
    T = train_steps
    return GIMPConfig(T, target_density, density_multiplier=K, rewind_steps=T,
                      rewind_steps_lr=T, retrain_steps=T, rewind_fraction=1.0,
                      method="weight_rewinding", **kw)


def stable_weight_rewinding(train_steps: int, target_density: float, *, rewind_to: int,
                            K: float = 0.7, **kw) -> GIMPConfig:
    """Algorithm 3: rewind weights and schedule to step ``rewind_to`` (thesis: 0.1%-7% of T)
    and retrain the ``T - rewind_to`` steps from there."""
    T = checks.integer(train_steps, "train_steps", minimum=0)
    k = checks.integer(rewind_to, f"rewind_to (within train_steps={T})", minimum=0, maximum=T)
    return GIMPConfig(T, target_density, density_multiplier=K, rewind_steps=T - k,
                      rewind_steps_lr=T - k, retrain_steps=T - k,
                      method=f"stable_weight_rewinding({k})", **kw)


def lr_rewinding(train_steps: int, target_density: float, *, K: float = 0.7, **kw) -> GIMPConfig:
    """Algorithm 4 (Renda et al. 2020): keep the weights, rewind the schedule to 0."""
    T = train_steps
    return GIMPConfig(T, target_density, density_multiplier=K, rewind_steps=0,
                      rewind_steps_lr=T, retrain_steps=T, rewind_fraction=0.0,
                      method="lr_rewinding", **kw)


def sgimp(train_steps: int, target_density: float, *, rewind_fraction: float = 0.75,
          K: float = 0.7, **kw) -> GIMPConfig:
    """Algorithm 6, sGIMP(rewind X%): rewind the parameters by ``rewind_fraction * T``, the
    schedule to its start, and retrain T steps. Thesis: X in [0.5, 0.98], default 0.75.
    sGIMP(0%) *is* learning-rate rewinding and sGIMP(100%) weight rewinding (Figure 3.5):
    the same configs, so the same stored runs."""
    T = checks.integer(train_steps, "train_steps", minimum=0)
    x = checks.real(rewind_fraction, "rewind_fraction", 0.0, 1.0)
    if round(x * T) == 0:
        return lr_rewinding(T, target_density, K=K, **kw)
    if round(x * T) == T:
        return weight_rewinding(T, target_density, K=K, **kw)
    return GIMPConfig(T, target_density, density_multiplier=K, rewind_steps=round(x * T),
                      rewind_steps_lr=T, retrain_steps=T, rewind_fraction=x,
                      method=f"sgimp({100 * x:g}%)", **kw)


def one_shot(train_steps: int, target_density: float, *, rewind_fraction: float = 0.0,
             **kw) -> GIMPConfig:
    """Train dense, prune to the target at once, rewind the parameters by
    ``rewind_fraction * T`` and the schedule to 0, retrain T steps: a single pruned level.
    ``rewind_fraction=0`` is one-shot learning-rate rewinding (Figure 3.10), 1 is one-shot
    lottery-ticket pruning."""
    base = sgimp(train_steps, target_density, rewind_fraction=rewind_fraction)
    return base.replace(one_shot=True, method=f"one_shot({100 * base.rewind_fraction:g}%)", **kw)


ALGORITHMS = ("fine-tuning (Alg. 1)", "weight rewinding (Alg. 2)",
              "stable weight rewinding (Alg. 3)", "LR rewinding (Alg. 4)")


def algorithms(train_steps: int, target_density: float, *, K: float = 0.7,
               stable_rewind: float = 0.05) -> dict[str, GIMPConfig]:
    """Algorithms 1-4 of Section 3.1 as GIMP configs, labelled as in :data:`ALGORITHMS`.
    ``stable_rewind`` is Algorithm 3's rewind point as a fraction of T (thesis: 0.1%-7%;
    at least one step)."""
    T = train_steps
    fraction = checks.real(stable_rewind, "stable_rewind", 0.0, 1.0)
    return dict(zip(ALGORITHMS, (
        finetune(T, target_density, K=K),
        weight_rewinding(T, target_density, K=K),
        stable_weight_rewinding(T, target_density, rewind_to=max(1, round(fraction * T)), K=K),
        lr_rewinding(T, target_density, K=K),
    )))


def sgimp_sweep(train_steps: int, percents: Iterable[float], target_density: float, *,
                K: float = 0.7) -> dict[str, GIMPConfig]:
    """sGIMP(X%) for each X in ``percents``, labelled ``"sGIMP(X%)"`` (with ``" = LRR"`` for
    0 and ``" = WR"`` for 100, which are those algorithms' very runs)."""
    names = {0: " = LRR", 100: " = WR"}
    return {f"sGIMP({x:g}%){names.get(x, '')}":
            sgimp(train_steps, target_density, rewind_fraction=x / 100, K=K) for x in percents}


# --------------------------------------------------------------------------------------
# One level of the loop
# --------------------------------------------------------------------------------------


def _checkpoint(model: nn.Module, position: int) -> dict:
    """What a level starts from: the whole module state (masks included) and the schedule
    position."""
    return {"model": runs.cpu_state(model.state_dict()), "position": position}


def _level(setup: Setup, config: GIMPConfig, data: Dataset, level: int, start: dict,
           progress: bool = False, on_step: tuple[int, Callback] | None = None,
           ) -> tuple[dict, dict | None]:
    """One cycle of Algorithm 5: train level ``level`` from ``start``, then prune and rewind.

    Returns:
        The level's record, and the checkpoint the next level starts from (``None`` after
        the last level).
    """
    densities = config.densities()
    model = setup.masked_model(data, config.exclude, state=start["model"])
    trainer = Trainer(model, data, setup.train, seed=seeding.derive(setup.seed, "gimp", level),
                      position=start["position"], progress=progress,
                      desc=f"level {level} @ {densities[level]:.3g}")
    callbacks = [on_step] if on_step is not None else []
    tic = time.perf_counter()

    first = trainer.run(config.rewind_point(level), callbacks)  # Train(...) to the rewind point
    rewind_state = copy.deepcopy(model.state_dict())             # keep that one state
    rest = trainer.run(config.steps(level) - config.rewind_point(level), callbacks)  # the rest
    record = _record(level, densities[level], model, data, _merge(first, rest),
                     start["position"], config.rewind_point(level), time.perf_counter() - tic)
    if level + 1 == len(densities):
        return record, None

    prune(model, densities[level + 1], scope=config.scope)  # Prune(model, density * K)
    masks = {name: mask.clone() for name, mask in masking.get_masks(model).items()}
    model.load_state_dict(rewind_state)                     # RewindParamBy(model, rewSteps)
    masking.set_masks(model, masks)                         #   ... under the new mask
    position = max(0, trainer.position - config.rewind_steps_lr)  # RewindSchedBy(rewStepsLR)
    return record, _checkpoint(model, position)


def _record(level: int, target: float, model: nn.Module, data: Dataset, fit: dict,
            start: int, rewind_point: int, seconds: float) -> dict:
    """One level's record: the densities, where the level read the schedule, its running
    training metrics, :func:`pruninglab.core.train.evaluate_splits` and each layer's density."""
    return {
        "level": level, "target_density": target, **masking.summary(model),
        "steps": fit["steps"], "position_start": start, "position_end": fit["position"],
        "rewind_point": rewind_point, "seconds": seconds,
        "train_loss_running": fit["loss"], "train_accuracy_running": fit["accuracy"],
        **evaluate_splits(model, data), "layers": masking.layer_densities(model),
    }


def _merge(a: dict, b: dict) -> dict:
    """Two consecutive :meth:`Trainer.run` results as one (means weighted by steps)."""
    steps = a["steps"] + b["steps"]

    def mean(key: str) -> float:
        parts = [(r[key], r["steps"]) for r in (a, b) if r["steps"]]
        return sum(v * n for v, n in parts) / steps if steps else math.nan

    return {"steps": steps, "loss": mean("loss"), "accuracy": mean("accuracy"),
            "position": b["position"], "seconds": a["seconds"] + b["seconds"]}


# --------------------------------------------------------------------------------------
# Running it through the store
# --------------------------------------------------------------------------------------


def run_config(setup: Setup, config: GIMPConfig) -> dict:
    """The dict the run store keys a GIMP run by (its hash names the run's folder)."""
    return {"kind": "gimp", "setup": setup.to_dict(), "method": config.to_dict()}


def experiment(setup: Setup, config: GIMPConfig, data: Dataset, progress: bool = True,
               on_step: tuple[int, Callback] | None = None) -> runner.Experiment:
    """GIMP as a :class:`~pruninglab.experiments.runner.Experiment`: one stage per level; stage 0
    starts from the masked initialization at schedule position 0."""
    setup.check_data(data)
    setup.check_train_steps(config.train_steps)
    densities = config.densities()
    return runner.Experiment(
        kind="gimp", config=run_config(setup, config),
        stages=[f"level {i} @ {d:.3g}" for i, d in enumerate(densities)],
        start=lambda: _checkpoint(setup.masked_model(data, config.exclude), position=0),
        stage=lambda level, state: _level(setup, config, data, level, state, progress, on_step),
        columns={"method": config.method, "seed": setup.seed}, label=config.method)


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
    """Run GIMP for ``setup`` and ``config``, through the run store.

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
