"""Generalized Iterative Magnitude Pruning (thesis Section 3.2, Algorithm 5) and its presets.

:func:`loop` is Algorithm 5 and :func:`level` one pass of its ``while`` loop, each line
commented with the pseudocode line it does; docs/design.md ("GIMP") gives the exact rules.
``gimp.run`` (in :mod:`~pruninglab.experiments.gimp_runs`) is ``loop`` through the run store.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
from torch import nn
from tqdm.auto import trange

from ..core import checks, masking, seeding
from ..core.data import Dataset
from ..core.pruning import SCOPES, prune
from ..core.train import Callback, TrainConfig, Trainer, evaluate_splits
from . import forwarding

__all__ = ["GIMPConfig", "loop", "level", "schedule_trace", "finetune", "weight_rewinding",
           "stable_weight_rewinding", "lr_rewinding", "sgimp", "one_shot"]


MAX_LEVELS = 1_000  # pruning levels one run may take: a mistyped K (0.9999999) is refused


@dataclass(frozen=True)
class GIMPConfig:
    """The inputs of Algorithm 5 (the presets below set them for Algorithms 1-4 and 6)."""

    train_steps: int                     # T: steps of level 0 = the setup's schedule length
    target_density: float                # stop here, in (0, 1); 0.1 = 10x compression
    density_multiplier: float = 0.7      # K in [0.5, 1): density *= K per level (Sec. 3.4)
    rewind_steps: int = 0                # steps the parameters rewind from a cycle's end
    rewind_steps_lr: int = 0             # steps the schedule position rewinds
    retrain_steps: int | None = None     # steps of every later level (None: T)
    one_shot: bool = False               # prune to the target at once instead of K, K**2, ...
    scope: str = "global"                # "global" (thesis) or "layerwise"
    exclude: tuple[str, ...] = ()        # layer names or shell patterns never pruned
    rewind_fraction: float | None = None  # sGIMP's X of T: rewind_steps = round(X * T)
    method: str = "gimp"                 # a label for plots and the store
    carry_optimizer: bool = False        # rewind the momentum too (Renda et al.); else fresh

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
        levels = math.ceil(math.log(self.target_density) / math.log(self.density_multiplier))
        if not self.one_shot and levels > MAX_LEVELS:  # each level is a training
            raise ValueError(f"K={self.density_multiplier!r} reaches target_density="
                             f"{self.target_density!r} in {levels:,} levels; at most "
                             f"{MAX_LEVELS:,} are allowed (Section 3.4's K=0.7 reaches 0.001 "
                             "in 20): lower K or raise the target")
        checks.one_of(self.scope, "scope", SCOPES)
        exclude = (self.exclude,) if isinstance(self.exclude, str) else tuple(self.exclude)
        if any(not isinstance(p, str) for p in exclude):
            raise ValueError(f"exclude must be layer names or patterns (strings), got "
                             f"{checks.shown(exclude)}")
        fix("exclude", exclude)
        for name in ("one_shot", "carry_optimizer"):
            checks.boolean(getattr(self, name), name)
        checks.label(self.method, "method")
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
        """``[1, K, K**2, ..., target]`` (the last clamped), or ``[1, target]`` one-shot."""
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
        """What the run store hashes; ``carry_optimizer`` only when set (older runs'
        hashes)."""
        d = dataclasses.asdict(self)
        if not d["carry_optimizer"]:
            del d["carry_optimizer"]
        return d


def schedule_trace(config: GIMPConfig, levels: int | None = None) -> list[tuple[int, int, int]]:
    """``(level, first position, last position + 1)`` in the learning-rate schedule for each
    of the first ``levels`` levels (default: all), without training: for plots."""
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
    """Algorithm 6, sGIMP(X%): rewind the parameters by ``rewind_fraction * T`` (thesis:
    0.5-0.98, default 0.75), the schedule to 0, retrain T. sGIMP(0%) and sGIMP(100%) return
    the very configs of Algorithms 4 and 2 (Figure 3.5), so their stored runs are shared."""
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
    """sGIMP pruned to the target in one level: ``rewind_fraction`` 0 is one-shot LR
    rewinding (Figure 3.10), 1 one-shot lottery-ticket pruning."""
    base = sgimp(train_steps, target_density, rewind_fraction=rewind_fraction)
    return base.replace(one_shot=True, method=f"one_shot({100 * base.rewind_fraction:g}%)", **kw)


# --------------------------------------------------------------------------------------
# Algorithm 5
# --------------------------------------------------------------------------------------


def loop(model: nn.Module, data: Dataset, config: GIMPConfig, *, train: TrainConfig,
         seed: int = 0, progress: bool = True, on_level: Callable[[dict], None] | None = None,
         on_step: tuple[int, Callback] | None = None) -> pd.DataFrame:
    """Algorithm 5 on any ``model``, in place and in memory: one row per :func:`level`.
    ``on_level`` sees each record; ``on_step`` is ``(every, fn)``, a training callback."""
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
    """Level ``index``: train the masked ``model``, evaluate, prune to the next density and
    rewind, in place. ``start``: the schedule ``"position"`` (and ``"optimizer"`` state when
    carried). Returns the level's record and the next level's ``start`` (``None`` at the end).
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
    # where the level read the schedule, its wall time, the means over its augmented batches
    fit = trainer.running_means()
    return {"steps": fit["steps"], "position_start": position_start,
            "position_end": fit["position"], "rewind_point": rewind_point, "seconds": seconds,
            "train_loss_running": fit["loss"], "train_accuracy_running": fit["accuracy"]}


# The store glue and the notebooks' labelled sets live beside the algorithm, not in it.
__getattr__, __dir__ = forwarding(__name__, {
    "run": "gimp_runs", "run_many": "gimp_runs", "run_config": "gimp_runs",
    "ALGORITHMS": "comparisons", "algorithms": "comparisons", "sgimp_sweep": "comparisons"})
