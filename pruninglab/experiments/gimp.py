"""Generalized Iterative Magnitude Pruning (thesis Section 3.2, Algorithm 5) and its presets.

:func:`loop` is Algorithm 5 and :func:`level` one pass of its ``while`` loop, each line
commented with the line of the thesis's pseudocode it does. The exact semantics (what
"rewind by n steps" means, what the state holds) are in docs/design.md ("GIMP").
:class:`GIMPConfig` holds the inputs; the presets set them for Algorithms 1-4 and 6.

:func:`run` and :func:`run_many` run a config through the run store (a finished run comes
back at once, an interrupted one goes on after its last stored level); the glue that makes
each :func:`level` a stored stage lives in :mod:`pruninglab.experiments.gimp_runs`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from tqdm.auto import trange

from ..core import checks, masking, seeding
from ..core.data import Dataset
from ..core.pruning import SCOPES, prune
from ..core.train import Callback, TrainConfig, Trainer, evaluate_splits
from .config import Setup

__all__ = [
    "GIMPConfig",
    "loop",
    "level",
    "finetune",
    "weight_rewinding",
    "stable_weight_rewinding",
    "lr_rewinding",
    "sgimp",
    "one_shot",
    "run",
    "run_many",
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
        carry_optimizer: ``False`` (our design; the thesis is silent): every level starts
            with a fresh optimizer. ``True``: the optimizer's state (momentum buffers) at
            the rewind point is restored with the parameters, as Renda et al.'s code
            restores every variable at a rewind.
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
    carry_optimizer: bool = False

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
        if not isinstance(self.carry_optimizer, bool):
            raise ValueError(f"carry_optimizer must be True or False, got "
                             f"{self.carry_optimizer!r}")
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
        """The fields as a plain dict (what the run store hashes); ``carry_optimizer`` only
        when ``True``, so that the runs stored before it existed keep their hash."""
        d = dataclasses.asdict(self)
        if not d["carry_optimizer"]:
            del d["carry_optimizer"]
        return d


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
# Algorithm 5
# --------------------------------------------------------------------------------------


def loop(model: nn.Module, data: Dataset, config: GIMPConfig, *, train: TrainConfig,
         seed: int = 0, progress: bool = True, on_level: Callable[[dict], None] | None = None,
         on_step: tuple[int, Callback] | None = None) -> pd.DataFrame:
    """Algorithm 5 on ``model``, in memory: one :func:`level` after the other.

    Args:
        model: any model with prunable layers; they get masks (``config.exclude`` spared)
            and are pruned in place.
        data: the data set; ``train``: the training hyperparameters (``train.steps`` = T);
            ``seed``: each level's batch order derives from it.
        on_level: called with each level's record; ``on_step``: ``(every, fn)``, a
            training callback (:class:`pruninglab.core.train.Trainer`).

    Returns:
        One row per level: the columns of :func:`run` but ``method`` and ``seed``.
    """
    if not masking.add_masks(model, config.exclude):
        raise ValueError(f"config.exclude={list(config.exclude)!r} leaves no layer to prune")
    densities = config.densities()       # 1, K, K * K, ... until targetDensity (clamped to it)
    start, records = {"position": 0}, []  # the schedule at its start
    for index in trange(len(densities), desc=config.method, disable=not progress, leave=False):
        # level 0: Train, Prune; each later level: one pass of "while density > targetDensity"
        record, start = level(model, data, config, index, train=train, start=start, seed=seed,
                              progress=progress, on_step=on_step)
        records.append(record)
        if on_level is not None:
            on_level(record)
    return pd.DataFrame(records)


def level(model: nn.Module, data: Dataset, config: GIMPConfig, index: int, *,
          train: TrainConfig, start: Mapping | None = None, seed: int = 0,
          progress: bool = False, on_step: tuple[int, Callback] | None = None,
          ) -> tuple[dict, dict | None]:
    """Level ``index`` of Algorithm 5: train the masked ``model``, evaluate it, then prune
    it to the next density and rewind it, in place (``model`` ends as the next level starts).

    Args:
        start: ``{"position": step of the schedule to start at}`` (``None``: 0) and, with
            ``config.carry_optimizer``, ``"optimizer"``: a state to restore
            (:meth:`~pruninglab.core.train.Trainer.optimizer_state`).

    Returns:
        The level's record (a row of :func:`run`), and the next level's ``start``
        (``None`` after the last level).
    """
    densities, start = config.densities(), start or {"position": 0}
    trainer = Trainer(model, data, train, seed=seeding.derive(seed, "gimp", index),
                      position=start["position"], progress=progress,
                      desc=f"level {index} @ {densities[index]:.3g}")
    if config.carry_optimizer and "optimizer" in start:
        trainer.load_optimizer_state(start["optimizer"])
    callbacks = [on_step] if on_step is not None else []
    point = config.rewind_point(index)                  # rewSteps before the cycle's end
    tic = time.perf_counter()

    # Train(model, trainSteps), or retrainSteps after level 0, keeping the state at `point`
    trainer.run(point, callbacks)
    rewind_state = copy.deepcopy(model.state_dict())
    rewind_optimizer = trainer.optimizer_state() if config.carry_optimizer else None
    trainer.run(config.steps(index) - point, callbacks)
    record = {"level": index, "target_density": densities[index], **masking.summary(model),
              **_running(trainer, start["position"], point, time.perf_counter() - tic),
              **evaluate_splits(model, data), "layers": masking.layer_densities(model)}
    if index + 1 == len(densities):                     # density = targetDensity: the end
        return record, None

    prune(model, densities[index + 1], scope=config.scope)  # density <- density * K; Prune
    masking.restore(model, rewind_state)                     # RewindParamBy(model, rewSteps)
    next_start = {"position": max(0, trainer.position - config.rewind_steps_lr)}  # RewindSchedBy
    if rewind_optimizer is not None:
        next_start["optimizer"] = rewind_optimizer  # the momentum rewinds too (Renda et al.)
    return record, next_start


def _running(trainer: Trainer, position_start: int, rewind_point: int,
             seconds: float) -> dict:
    """The level's training in its record: where it read the schedule, its wall time, and
    the running loss and accuracy (means over its augmented batches)."""
    fit = trainer.running_means()
    return {"steps": fit["steps"], "position_start": position_start,
            "position_end": fit["position"], "rewind_point": rewind_point, "seconds": seconds,
            "train_loss_running": fit["loss"], "train_accuracy_running": fit["accuracy"]}


# --------------------------------------------------------------------------------------
# Through the run store (pruninglab.experiments.gimp_runs)
# --------------------------------------------------------------------------------------


def run_config(setup: Setup, config: GIMPConfig) -> dict:
    """The dict the run store keys a GIMP run by (its hash names the run's folder)."""
    return {"kind": "gimp", "setup": setup.to_dict(), "method": config.to_dict()}


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
    """:func:`loop` for ``setup`` and ``config``, through the run store: the stored levels
    come back, the missing ones are trained (each level a stage of
    :func:`pruninglab.experiments.gimp_runs.experiment`).

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
    from . import gimp_runs, runner

    data = setup.resolve_data(data, device)
    return runner.run(gimp_runs.experiment(setup, config, data, progress, on_step), store,
                      progress, on_record=on_level, fetch_only=fetch_only)


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
