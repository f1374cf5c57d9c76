"""Training Optimal Masks (thesis Section 3.3.1): learn the mask, not the weights.

The thesis's method, phase by phase:

1. **Pretrain** the dense network for ``pretrain_fraction * T`` steps (10 % of T), past the
   unstable early phase (Frankle et al. 2020b). Then freeze the weights.
2. **Train mask logits** ``b`` (one per prunable weight). Every step draws a mask
   ``c ~ Bernoulli(sigmoid(b))``, runs the network with weights ``w * c``, and updates
   ``b <- b - lr * clip(dL/dc, -0.1, 0.1)``: the straight-through estimator (Bengio et al.
   2013) hands the gradient with respect to the sampled mask to the logits. ``b`` is clipped
   to ``[-15, 15]``, and a penalty on ``sigmoid(b)`` pushes the masks down. (The gradient
   reaching ``b`` is the clipped ``dL/dc``; we hand it to Adam by default, see
   :class:`TOMConfig`.)
3. **Evaluate** with a deterministic mask: the top ``t`` fraction of logits are kept.
4. **Train the weights** under that fixed mask for the full schedule (T steps).

Choices the thesis leaves open are arguments of :class:`TOMConfig`, each with its default
and the reason for it: the logits' initialization, the logits' learning rate and how long
they train, the penalty's form and strength, and which weights the final training starts
from.

:func:`run` executes the method through the run store (:class:`MaskTrainer` is phase 2);
:func:`cumulative_steps` and :func:`compute_table` set each method's accuracy beside the
training steps that bought it (Figure 3.10; notebook 07).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import masking, runs
from .config import Setup
from .data import Batches, Dataset
from .pruning import check_density, prune
from .train import Trainer, evaluate, evaluate_splits, resolve_device

__all__ = [
    "TOMConfig",
    "MaskTrainer",
    "run",
    "HIST_BINS",
    "THESIS_MNIST",
    "cumulative_steps",
    "compute_table",
]

# Histogram bins for the logits (their range is clipped to [-15, 15], thesis Section 3.3.1).
HIST_BINS = np.linspace(-15.0, 15.0, 61)


@dataclass(frozen=True)
class TOMConfig:
    """Training Optimal Masks, with every open choice explicit.

    Attributes:
        train_steps: T, the full training length (the final weight training uses it).
        target_density: t, the fraction of weights the final mask keeps, in (0, 1).
        pretrain_fraction: dense pretraining as a fraction of T (thesis: 10 %).
        mask_steps: steps of logit training. Open in the thesis; default ``T // 4``
            (``None``), which keeps TOM's total compute (0.1 T + 0.25 T + T) close to a
            one-shot method's (2 T).
        mask_optimizer: ``"adam"`` (default) or ``"sgd"`` for the logits. The thesis writes
            the update as plain SGD, ``b <- b - alpha * clip(dL/dc)``, without alpha. But
            ``dL/dc = w * dL/dw`` is tiny (about 1e-5 per weight for the thesis MLP), so SGD
            needs an alpha tuned per network; Adam normalizes the scale and works with one
            setting. ``"sgd"`` with ``mask_momentum=0`` is the thesis's formula.
        mask_lr: the logits' step size (Adam: 0.1 moves a logit across [-15, 15] in a few
            hundred consistent steps).
        mask_momentum: momentum of the logits' SGD (only for ``"sgd"``).
        logit_init: initial value of every logit (open). Default 3.0: every weight starts
            kept with probability sigmoid(3) = 0.95, close to the dense network the weights
            were pretrained as.
        penalty: ``"l1"`` (sum of sigmoid(b)) or ``"l2"`` (sum of sigmoid(b)**2): the
            "L1 or L2 penalty" that makes the keep-probabilities decay.
        penalty_coef: its weight (open). Default 1e-3: on the thesis MLP with Adam it takes
            the expected density from 0.95 to a few per cent within ~100 steps, the range
            Table 3.1 works in; stronger penalties overshoot the target, weaker ones leave
            most masks on.
        grad_clip: clip of dL/dc (thesis: 0.1).
        logit_clip: clip of the logits (thesis: 15).
        final_weights: where the final weight training starts: ``"pretrained"`` (the frozen
            weights the mask was trained for; default) or ``"init"`` (the initialization, a
            lottery-ticket-style restart).
        method: a label.
    """

    train_steps: int
    target_density: float
    pretrain_fraction: float = 0.1
    mask_steps: int | None = None
    mask_optimizer: str = "adam"
    mask_lr: float = 0.1
    mask_momentum: float = 0.9
    logit_init: float = 3.0
    penalty: str = "l1"
    penalty_coef: float = 1e-3
    grad_clip: float = 0.1
    logit_clip: float = 15.0
    final_weights: str = "pretrained"
    method: str = "tom"

    def __post_init__(self) -> None:
        if isinstance(self.train_steps, bool) or not isinstance(self.train_steps, int) \
                or self.train_steps < 1:  # fmt: skip
            raise ValueError(f"train_steps must be a positive integer, got {self.train_steps!r}")
        t = self.target_density
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t < 1.0:
            raise ValueError(f"target_density must lie in (0, 1), got {t!r}")
        if not 0.0 <= self.pretrain_fraction <= 1.0:
            raise ValueError(
                f"pretrain_fraction must lie in [0, 1], got {self.pretrain_fraction!r}")
        if self.mask_steps is not None and (isinstance(self.mask_steps, bool)
                                            or not isinstance(self.mask_steps, int)
                                            or self.mask_steps < 1):  # fmt: skip
            raise ValueError(
                f"mask_steps must be a positive integer or None, got {self.mask_steps!r}")
        if self.mask_optimizer not in ("adam", "sgd"):
            raise ValueError(f"mask_optimizer must be 'adam' or 'sgd', got {self.mask_optimizer!r}")
        if self.penalty not in ("l1", "l2"):
            raise ValueError(f"penalty must be 'l1' or 'l2', got {self.penalty!r}")
        for name in ("mask_lr", "grad_clip", "logit_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.penalty_coef >= 0:
            raise ValueError(f"penalty_coef must be >= 0, got {self.penalty_coef!r}")
        if not 0.0 <= self.mask_momentum < 1.0:
            raise ValueError(f"mask_momentum must lie in [0, 1), got {self.mask_momentum!r}")
        if abs(self.logit_init) > self.logit_clip:
            raise ValueError(f"logit_init must lie within ±logit_clip, got {self.logit_init!r}")
        if self.final_weights not in ("pretrained", "init"):
            raise ValueError(
                f"final_weights must be 'pretrained' or 'init', got {self.final_weights!r}")

    @property
    def pretrain_steps(self) -> int:
        return round(self.pretrain_fraction * self.train_steps)

    @property
    def mask_training_steps(self) -> int:
        return self.mask_steps if self.mask_steps is not None else max(1, self.train_steps // 4)

    @property
    def total_steps(self) -> int:
        """Forward-backward passes of the whole method (its compute, in training steps)."""
        return self.pretrain_steps + self.mask_training_steps + self.train_steps

    def replace(self, **changes) -> TOMConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class MaskTrainer:
    """Phase 2: trains one logit per masked weight of a model whose weights stay frozen.

    Args:
        model: a model with masks (:func:`pruninglab.masking.add_masks`); its parameters are
            not modified (BN running statistics do follow the masked activations).
        data: training data on the model's device.
        config: the :class:`TOMConfig`.
        seed: fixes the batch order and the Bernoulli draws.
    """

    def __init__(self, model: nn.Module, data: Dataset, config: TOMConfig, batch_size: int,
                 seed: int = 0) -> None:  # fmt: skip
        self.model, self.config = model, config
        self.layers = masking.masked_layers(model)
        self.logits = {name: torch.full_like(layer.weight, config.logit_init, requires_grad=True)
                       for name, layer in self.layers.items()}  # fmt: skip
        params = list(self.logits.values())
        if config.mask_optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=config.mask_lr)
        else:
            self.optimizer = torch.optim.SGD(params, lr=config.mask_lr,
                                             momentum=config.mask_momentum)  # fmt: skip
        self.batches = iter(Batches(data.x_train, data.y_train, batch_size, seed, data.augment))
        self.generator = torch.Generator(device=data.device).manual_seed(seed + 1)

    def sample(self) -> dict[str, torch.Tensor]:
        """A Bernoulli mask per layer with the straight-through, clipped gradient."""
        return {n: masking.bernoulli_ste(b, self.config.grad_clip, self.generator)
                for n, b in self.logits.items()}  # fmt: skip

    def penalty(self) -> torch.Tensor:
        probs = [torch.sigmoid(b) for b in self.logits.values()]
        power = 1 if self.config.penalty == "l1" else 2
        return self.config.penalty_coef * sum((p**power).sum() for p in probs)

    def step(self) -> float:
        """One update of the logits; returns the cross-entropy of the sampled network."""
        x, y = next(self.batches)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.model.train()
        try:  # the weights stay frozen: no gradients for them, only for the logits
            for p in trainable:
                p.requires_grad_(False)
            loss = F.cross_entropy(masking.functional_forward(self.model, x, self.sample()), y)
            self.optimizer.zero_grad(set_to_none=True)
            (loss + self.penalty()).backward()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        self.optimizer.step()
        with torch.no_grad():
            for b in self.logits.values():
                b.clamp_(-self.config.logit_clip, self.config.logit_clip)
        return float(loss.detach())

    def scores(self) -> dict[str, torch.Tensor]:
        """Logits as saliency (float64), ties among clipped logits broken by ``|w|``."""
        # float64 resolves 1e-9 * |w| next to a logit of 15 (its spacing there is ~2e-15)
        return {name: b.detach().double() + 1e-9 * self.layers[name].weight.detach().abs().double()
                for name, b in self.logits.items()}  # fmt: skip

    def final_masks(self, density: float) -> dict[str, torch.Tensor]:
        """The deterministic evaluation mask: the top ``density`` of all logits (global)."""
        probe = _clone_without_masks(self.model)
        prune(probe, density, saliency=lambda m, layers: self.scores())
        return {n: m.clone() for n, m in masking.get_masks(probe).items()}

    def histogram(self) -> list[int]:
        values = torch.cat([b.detach().flatten().cpu() for b in self.logits.values()]).numpy()
        return np.histogram(values, bins=HIST_BINS)[0].tolist()

    def expected_density(self) -> float:
        kept = sum(float(torch.sigmoid(b.detach()).sum()) for b in self.logits.values())
        return kept / sum(b.numel() for b in self.logits.values())


def _clone_without_masks(model: nn.Module) -> nn.Module:
    probe = copy.deepcopy(model)
    for layer in masking.masked_layers(probe).values():
        getattr(layer, masking.MASK).fill_(True)
    return probe


def _masked_accuracy(model: nn.Module, masks: dict, x, y) -> dict:
    probe = _clone_without_masks(model)
    masking.set_masks(probe, masks)
    return evaluate(probe, x, y)


def run(
    setup: Setup,
    config: TOMConfig,
    data: Dataset | None = None,
    store: str | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    eval_every: int | None = None,
    on_phase: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """Run Training Optimal Masks through the run store (resumable phase by phase).

    Args:
        setup, data, store, device, progress: as in :func:`pruninglab.gimp.run`.
        config: the TOM settings.
        eval_every: during mask training, every this many steps record the test accuracy
            of the top-``t`` mask on the frozen weights and a histogram of the logits
            (default: 10 points over the phase).
        on_phase: called with each phase's record.

    Returns:
        Three rows, ``phase`` = ``pretrain`` (dense), ``masks`` (frozen weights, top-t mask)
        and ``final`` (weights retrained under the mask); the ``masks`` row carries the
        logit ``history`` (step, expected density, accuracy, histogram counts over
        :data:`HIST_BINS`).
    """
    if data is None:
        data = setup.load_data(resolve_device(device))
    setup.check_data(data)
    check_density(config.target_density, "target_density")
    run_dir = runs.RunDir.open("tom", {"kind": "tom", "setup": setup.to_dict(),
                                       "method": config.to_dict()}, store)  # fmt: skip
    records = run_dir.records()
    phases = ["pretrain", "masks", "final"]
    state = run_dir.load_checkpoint(len(records)) if len(records) < 3 else None
    if len(records) < 3 and state is None and records:
        records = []  # no checkpoint to continue from: start over
        run_dir.discard_from(0)

    model = setup.build_model(data).to(data.device)
    masking.add_masks(model)
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    if state is not None:
        masking.load_state_dict(model, state["model"])
    every = eval_every or max(1, config.mask_training_steps // 10)
    bar = tqdm(total=3, initial=len(records), desc=config.method, disable=not progress,
               leave=False)  # fmt: skip
    for phase in phases[len(records):]:
        tic = time.perf_counter()
        record: dict = {"phase": phase}
        if phase == "pretrain":
            trainer = Trainer(model, data, setup.train, seed=setup.seed * 7919 + 0,
                              progress=progress, desc="pretrain")  # fmt: skip
            trainer.run(config.pretrain_steps)
            record["steps"] = config.pretrain_steps
            record.update(_metrics(model, data))
            run_dir.save_checkpoint(1, {"model": runs.cpu_state(model.state_dict())})
        elif phase == "masks":
            mask_trainer = MaskTrainer(model, data, config, setup.train.batch_size,
                                       seed=setup.seed * 7919 + 1)  # fmt: skip
            history = []
            steps = config.mask_training_steps
            for step in tqdm(range(1, steps + 1), desc="mask logits", disable=not progress,
                             leave=False):  # fmt: skip
                loss = mask_trainer.step()
                if step % every == 0 or step == steps:
                    masks = mask_trainer.final_masks(config.target_density)
                    acc = _masked_accuracy(model, masks, data.x_test, data.y_test)
                    history.append({"step": step, "loss": loss,
                                    "expected_density": mask_trainer.expected_density(),
                                    "test_accuracy": acc["accuracy"],
                                    "histogram": mask_trainer.histogram()})  # fmt: skip
            masks = mask_trainer.final_masks(config.target_density)
            masking.set_masks(model, masks)
            record.update(steps=steps, history=history, **_metrics(model, data))
            run_dir.save_checkpoint(2, {"model": runs.cpu_state(model.state_dict())})
        else:
            masks = {n: m.clone() for n, m in masking.get_masks(model).items()}
            if config.final_weights == "init":
                model.load_state_dict(init_state)
            masking.set_masks(model, masks)
            trainer = Trainer(model, data, setup.train, seed=setup.seed * 7919 + 2,
                              progress=progress, desc="final training")  # fmt: skip
            trainer.run(config.train_steps)
            record["steps"] = config.train_steps
            record.update(_metrics(model, data))
        record["seconds"] = time.perf_counter() - tic
        run_dir.write_record(len(records), record)
        records.append(record)
        bar.update(1)
        if on_phase is not None:
            on_phase(record)
    bar.close()
    df = pd.DataFrame(records)
    df.insert(0, "method", config.method)
    df.insert(1, "seed", setup.seed)
    df["total_steps"] = config.total_steps
    return df


def _metrics(model: nn.Module, data: Dataset) -> dict:
    return {**masking.summary(model), **evaluate_splits(model, data)}


# --------------------------------------------------------------------------------------
# Accuracy beside compute (Section 3.3.1 and Figure 3.10; notebook 07)
# --------------------------------------------------------------------------------------

# Section 3.3.1: the MLP of Table 3.1 on MNIST at 96 % sparsity, test accuracy (%) mean and
# std: Training Optimal Masks against iterative pruning (weight rewinding, Table 3.1's "none").
THESIS_MNIST: dict[str, tuple[float, float]] = {"tom": (98.639, 0.039),
                                                "iterative": (98.624, 0.039)}  # fmt: skip


def cumulative_steps(records: pd.DataFrame) -> pd.DataFrame:
    """GIMP records with ``total_steps``: the training steps a run spent up to and including
    each level -- its compute if it stopped there. Level ``i`` of weight rewinding costs
    ``(i + 1) T``; a one-shot run's pruned level costs ``2 T``.

    Args:
        records: whole runs of :func:`pruninglab.gimp.run` (or several concatenated), each
            run's rows in level order starting at level 0, with a ``steps`` column.

    Returns:
        A copy with the ``total_steps`` column.
    """
    missing = {"level", "steps"} - set(records)
    if missing:
        raise ValueError(f"records lacks the columns {sorted(missing)}; pass gimp.run's records")
    if len(records) and records["level"].iloc[0] != 0:
        raise ValueError("records must hold whole runs, each starting at level 0, got first "
                         f"level {records['level'].iloc[0]!r}")  # fmt: skip
    run_id = (records["level"] == 0).cumsum()
    out = records.copy()
    out["total_steps"] = records.groupby(run_id)["steps"].cumsum()
    return out


def compute_table(results: pd.DataFrame, train_steps: int, metric: str = "test_accuracy",
                  digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """Accuracy beside the compute that bought it: one row per method and density.

    Args:
        results: rows with ``method``, ``seed``, ``density``, ``total_steps`` and ``metric``
            (a fraction) -- TOM's ``final`` rows, :func:`pruninglab.at_init.run` rows, GIMP
            rows after :func:`cumulative_steps`, concatenated.
        train_steps: T, the unit of the ``steps / T`` column.
        metric: the accuracy column.
        digits: densities that agree to this many significant digits are one density (the
            same target reached by different methods differs only in the last digits).

    Returns:
        Columns ``method, density, accuracy`` (mean over seeds, %), ``std`` (%, sample std;
        NaN for one seed), ``seeds``, ``steps`` (training steps, forward-backward passes) and
        ``steps / T``; sorted by density (highest first), then steps.
    """
    missing = {"method", "seed", "density", "total_steps", metric} - set(results)
    if missing:
        raise ValueError(f"results lacks the columns {sorted(missing)}")
    if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps < 1:
        raise ValueError(f"train_steps must be a positive integer, got {train_steps!r}")
    frame = results.assign(density=results["density"].map(lambda d: float(f"{d:.{digits}g}")))
    g = frame.groupby(["method", "density"], sort=False)
    table = pd.DataFrame({"accuracy": 100 * g[metric].mean(), "std": 100 * g[metric].std(),
                          "seeds": g["seed"].nunique(),
                          "steps": g["total_steps"].mean()}).reset_index()  # fmt: skip
    table["steps / T"] = table["steps"] / train_steps
    return table.sort_values(["density", "steps"], ascending=[False, True], ignore_index=True)
