"""Generalized Iterative Magnitude Pruning (thesis Section 3.2, Algorithm 5) and its presets.

The loop, as in the thesis::

    density <- K
    Train(model, trainSteps);  Prune(model, density)
    while density > targetDensity:
        density <- density * K                 (the last level is clamped to the target)
        RewindParamBy(model, rewSteps)          parameters: within the cycle that just ended
        RewindSchedBy(model, rewStepsLR)        schedule position: from where it ended
        Train(model, retrainSteps);  Prune(model, density)

with the exact semantics of DESIGN.md:

* A *level* is one training cycle at one density: level 0 is dense and trains ``T`` steps
  from the initialization; level ``i`` trains ``retrain_steps`` at density ``K**i``.
  Each level is evaluated at the end of its training (never at a best epoch).
* After a cycle of ``n`` steps the parameters become the state the cycle had after
  ``max(0, n - rewind_steps)`` of its steps -- the whole module state, BN running
  statistics included -- times the new mask. Only that one state is kept, not every step.
* The schedule position moves back by ``rewind_steps_lr`` from where the cycle ended
  (clamped at 0); a schedule holds its last value past its end.
* The optimizer is reset at every level.

Presets: :func:`finetune` (Alg. 1), :func:`weight_rewinding` (Alg. 2),
:func:`stable_weight_rewinding` (Alg. 3), :func:`lr_rewinding` (Alg. 4), :func:`sgimp`
(Alg. 6) and :func:`one_shot`.

:func:`run` executes a config through the run store (:mod:`pruninglab.runs`): a finished
run comes back at once, an interrupted one continues after its last finished level.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import masking, runs
from .config import Setup
from .data import Dataset
from .pruning import prune
from .train import Callback, Trainer, evaluate_splits, resolve_device

__all__ = [
    "GIMPConfig",
    "finetune",
    "weight_rewinding",
    "stable_weight_rewinding",
    "lr_rewinding",
    "sgimp",
    "one_shot",
    "run",
    "run_seeds",
    "level_seed",
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
        train_steps: T, the steps of the dense training (level 0).
        target_density: the density to stop at, in (0, 1) (0.1 = 10x compression).
        density_multiplier: K in [0.5, 1): each level keeps K of the previous density
            (thesis: 0.7, a 30% pruning step).
        rewind_steps: how far parameters rewind within the cycle that just ended.
        rewind_steps_lr: how far the schedule position rewinds.
        retrain_steps: steps of every later cycle (``None``: equal to ``train_steps``).
        one_shot: prune to the target in a single level instead of K, K**2, ...
        scope: ``"global"`` (thesis) or ``"layerwise"``.
        exclude: layer names or patterns never pruned.
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
    method: str = "gimp"

    def __post_init__(self) -> None:
        for name in ("train_steps", "rewind_steps", "rewind_steps_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.retrain_steps is not None and (
            isinstance(self.retrain_steps, bool) or not isinstance(self.retrain_steps, int)
            or self.retrain_steps < 0
        ):  # fmt: skip
            raise ValueError(
                f"retrain_steps must be a non-negative integer, got {self.retrain_steps!r}")
        k = self.density_multiplier
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0.5 <= k < 1.0:
            raise ValueError(f"density_multiplier (K) must lie in [0.5, 1), got {k!r}")
        t = self.target_density
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t < 1.0:
            raise ValueError(f"target_density must lie in (0, 1), got {t!r}")
        if self.scope not in ("global", "layerwise"):
            raise ValueError(f"scope must be 'global' or 'layerwise', got {self.scope!r}")
        object.__setattr__(self, "exclude", tuple(self.exclude))

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
# Presets (thesis Algorithms 1-4 and 6)
# --------------------------------------------------------------------------------------


def finetune(train_steps: int, target_density: float, K: float = 0.7, **kw) -> GIMPConfig:
    """Algorithm 1: keep training from where it stopped at the final learning rate."""
    return GIMPConfig(train_steps, target_density, K, 0, 0, train_steps, method="finetune", **kw)


def weight_rewinding(train_steps: int, target_density: float, K: float = 0.7, **kw) -> GIMPConfig:
    """Algorithm 2 (lottery ticket): rewind weights and schedule to the initialization."""
    T = train_steps
    return GIMPConfig(T, target_density, K, T, T, T, method="weight_rewinding", **kw)


def stable_weight_rewinding(
    train_steps: int, rewind_to: int, target_density: float, K: float = 0.7, **kw
) -> GIMPConfig:
    """Algorithm 3: rewind weights and schedule to step ``rewind_to`` (thesis: 0.1%-7% of T)
    and retrain ``T - rewind_to`` steps."""
    if (isinstance(rewind_to, bool) or not isinstance(rewind_to, int)
            or not 0 <= rewind_to <= train_steps):  # fmt: skip
        raise ValueError(
            f"rewind_to must be an integer in [0, train_steps={train_steps}], got {rewind_to!r}")
    n = train_steps - rewind_to
    return GIMPConfig(train_steps, target_density, K, n, n, n,
                      method=f"stable_weight_rewinding({rewind_to})", **kw)  # fmt: skip


def lr_rewinding(train_steps: int, target_density: float, K: float = 0.7, **kw) -> GIMPConfig:
    """Algorithm 4 (Renda et al. 2020): keep the weights, rewind the schedule to 0."""
    T = train_steps
    return GIMPConfig(T, target_density, K, 0, T, T, method="lr_rewinding", **kw)


def sgimp(
    train_steps: int, rewind_fraction: float, target_density: float, K: float = 0.7, **kw
) -> GIMPConfig:
    """Algorithm 6, sGIMP(rewind X%): rewind the parameters by ``rewind_fraction * T``, the
    schedule to its start, and retrain T steps. Thesis: X in [0.5, 0.98], default 0.75."""
    x = rewind_fraction
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 <= x <= 1.0:
        raise ValueError(f"rewind_fraction must lie in [0, 1], got {x!r}")
    T = train_steps
    if round(x * T) == 0:  # sGIMP(0%) is learning-rate rewinding (Figure 3.5) ...
        return lr_rewinding(T, target_density, K, **kw)
    if round(x * T) == T:  # ... and sGIMP(100%) is weight rewinding: the same runs, reused
        return weight_rewinding(T, target_density, K, **kw)
    return GIMPConfig(T, target_density, K, round(x * T), T, T,
                      method=f"sgimp({100 * x:g}%)", **kw)  # fmt: skip


def one_shot(
    train_steps: int, target_density: float, rewind_fraction: float = 0.0, **kw
) -> GIMPConfig:
    """Train dense, prune to the target at once, rewind the parameters by
    ``rewind_fraction * T`` and the schedule to 0, retrain T steps: a single pruned level.
    ``rewind_fraction=0`` is one-shot learning-rate rewinding (Figure 3.10), 1 is one-shot
    lottery-ticket pruning."""
    base = sgimp(train_steps, rewind_fraction, target_density)
    return base.replace(one_shot=True, method=f"one_shot({100 * rewind_fraction:g}%)", **kw)


ALGORITHMS = ("fine-tuning (Alg. 1)", "weight rewinding (Alg. 2)",
              "stable weight rewinding (Alg. 3)", "LR rewinding (Alg. 4)")  # fmt: skip


def algorithms(train_steps: int, target_density: float, K: float = 0.7,
               stable_rewind: float = 0.05) -> dict[str, GIMPConfig]:  # fmt: skip
    """Algorithms 1-4 of Section 3.1 as GIMP configs, labelled as in :data:`ALGORITHMS`.
    ``stable_rewind`` is Algorithm 3's rewind point as a fraction of T (thesis: 0.1%-7%;
    at least one step)."""
    T = train_steps
    return dict(zip(ALGORITHMS, (
        finetune(T, target_density, K),
        weight_rewinding(T, target_density, K),
        stable_weight_rewinding(T, max(1, round(stable_rewind * T)), target_density, K),
        lr_rewinding(T, target_density, K),
    )))  # fmt: skip


def sgimp_sweep(train_steps: int, percents, target_density: float,
                K: float = 0.7) -> dict[str, GIMPConfig]:  # fmt: skip
    """sGIMP(X%) for each X in ``percents``, labelled ``"sGIMP(X%)"`` (with ``" = LRR"`` for
    0 and ``" = WR"`` for 100, which are those algorithms' very runs)."""
    names = {0: " = LRR", 100: " = WR"}
    return {f"sGIMP({x:g}%){names.get(x, '')}": sgimp(train_steps, x / 100, target_density, K)
            for x in percents}  # fmt: skip


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------


def run_config(setup: Setup, config: GIMPConfig) -> dict:
    """The dict the run store keys a GIMP run by (its hash names the run's folder)."""
    return {"kind": "gimp", "setup": setup.to_dict(), "method": config.to_dict()}


def level_seed(seed: int, level: int) -> int:
    """The batch-stream seed of ``level``: each level's data order depends only on the run's
    seed and the level, so a resumed run sees the same batches as an uninterrupted one."""
    return seed * 1_000_003 + level


def _record(level: int, target: float, model: nn.Module, data: Dataset, fit: dict,
            start: int, rewind_point: int, seconds: float) -> dict:  # fmt: skip
    """One level's record: the densities, where the level read the schedule, its running
    training metrics, :func:`pruninglab.train.evaluate_splits` and each layer's density."""
    return {
        "level": level, "target_density": target, **masking.summary(model),
        "steps": fit["steps"], "position_start": start, "position_end": fit["position"],
        "rewind_point": rewind_point, "seconds": seconds,
        "train_loss_running": fit["loss"], "train_accuracy_running": fit["accuracy"],
        **evaluate_splits(model, data),
        "layers": {name: float(m.float().mean()) for name, m in masking.get_masks(model).items()},
    }  # fmt: skip


def _checkpoint(model: nn.Module, position: int) -> dict:
    return {"model": runs.cpu_state(model.state_dict()), "position": position}


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
        columns of :func:`pruninglab.masking.summary` (``density``, ``compression``,
        ``kept``, ``total``), ``steps``, ``position_start``, ``position_end``,
        ``rewind_point``, ``seconds``, ``train_loss_running`` and
        ``train_accuracy_running`` (means over the level's augmented batches), the columns
        of :func:`pruninglab.train.evaluate_splits` (``test_*``, ``train_*``, ``val_*``
        with a validation split) and ``layers`` (``{layer: density}``).
    """
    if data is None:
        data = setup.load_data(resolve_device(device))
    setup.check_data(data)
    store_config = run_config(setup, config)
    if fetch_only and not runs.RunDir.path_for("gimp", store_config, store).is_dir():
        return None  # not even started: do not create an empty folder
    run_dir = runs.RunDir.open("gimp", store_config, store)
    densities = config.densities()

    records = run_dir.records()[: len(densities)]
    level, state = len(records), None
    if level < len(densities) and fetch_only:
        return None
    if level < len(densities):
        # Level n starts from checkpoint n (the state after level n-1's prune and rewind);
        # if it is missing or corrupt, step back and recompute the level before as well.
        while (state := run_dir.load_checkpoint(level)) is None and level > 0:
            level -= 1
        del records[level:]
        run_dir.discard_from(level)
        _levels(setup, config, data, run_dir, records, level, state, progress, on_level, on_step)
    elif on_level is not None:
        for record in records:
            on_level(record)
    df = pd.DataFrame(records)
    df.insert(0, "method", config.method)
    df.insert(1, "seed", setup.seed)
    return df


def _levels(setup, config, data, run_dir, records, start_level, state, progress, on_level, on_step):
    densities = config.densities()
    model = setup.build_model(data).to(data.device)
    masking.add_masks(model, config.exclude)
    position = 0
    if state is None:  # a fresh run: checkpoint 0 is the initialization
        run_dir.save_checkpoint(0, _checkpoint(model, 0))
    else:
        masking.load_state_dict(model, state["model"])
        position = int(state["position"])

    if on_level is not None:
        for record in records:  # the levels that came from the store
            on_level(record)
    levels = tqdm(range(start_level, len(densities)), desc=config.method, disable=not progress,
                  initial=start_level, total=len(densities), leave=False)  # fmt: skip
    for level in levels:
        tic = time.perf_counter()
        steps, rewind_point = config.steps(level), config.rewind_point(level)
        trainer = Trainer(model, data, setup.train, seed=level_seed(setup.seed, level),
                          position=position, progress=progress,
                          desc=f"level {level} @ {densities[level]:.3g}")  # fmt: skip
        callbacks = [on_step] if on_step is not None else []
        first = trainer.run(rewind_point, callbacks)
        rewind_state = copy.deepcopy(model.state_dict())  # the one state we keep
        rest = trainer.run(steps - rewind_point, callbacks)
        fit = _merge(first, rest)
        record = _record(level, densities[level], model, data, fit, position, rewind_point,
                         time.perf_counter() - tic)  # fmt: skip
        if level + 1 < len(densities):
            prune(model, densities[level + 1], scope=config.scope)  # on the trained weights
            new_masks = {n: m.clone() for n, m in masking.get_masks(model).items()}
            model.load_state_dict(rewind_state)  # RewindParamBy(rewind_steps)
            masking.set_masks(model, new_masks)
            position = max(0, trainer.position - config.rewind_steps_lr)  # RewindSchedBy
            run_dir.save_checkpoint(level + 1, _checkpoint(model, position))
        run_dir.write_record(level, record)
        records.append(record)
        if on_level is not None:
            on_level(record)
    levels.close()


def _merge(a: dict, b: dict) -> dict:
    steps = a["steps"] + b["steps"]

    def mean(key: str) -> float:
        parts = [(r[key], r["steps"]) for r in (a, b) if r["steps"]]
        return sum(v * n for v, n in parts) / steps if steps else math.nan

    return {"steps": steps, "loss": mean("loss"), "accuracy": mean("accuracy"),
            "position": b["position"], "seconds": a["seconds"] + b["seconds"]}  # fmt: skip


def run_seeds(
    setup: Setup, config: GIMPConfig, seeds: list[int] | tuple[int, ...], **kwargs
) -> pd.DataFrame:
    """:func:`run` once per seed (replicates); the rows of all runs in one DataFrame."""
    return pd.concat([run(setup.replace(seed=s), config, **kwargs) for s in seeds],
                     ignore_index=True)  # fmt: skip
