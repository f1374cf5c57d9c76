"""Training Optimal Masks (thesis Section 3.3.1): learn the mask, not the weights.

1. **Pretrain** the dense network ``pretrain_fraction * T`` steps (10 %: past the unstable
   early phase, Frankle et al. 2020b), then freeze its weights.
2. **Train mask logits** ``b``, one per prunable weight: each step samples
   ``c ~ Bernoulli(sigmoid(b))``, runs the network with ``w * c`` and moves ``b`` by the
   straight-through gradient ``clip(dL/dc, -0.1, 0.1)``; ``b`` stays in ``[-15, 15]`` and a
   penalty pushes the keep-probabilities down.
3. **Evaluate** with the deterministic mask that keeps the top ``t`` of the logits.
4. **Train the weights** ``T`` steps under that fixed mask.

By default the whole method costs 2 T, what a one-shot method costs: Figure 3.10 compares
them at "similar compute".

The choices the thesis leaves open are :class:`TOMConfig` fields; docs/design.md ("Training
Optimal Masks") gives each default's reason, docs/measurements.md the runs behind them.
``tom.run`` (in :mod:`~pruninglab.experiments.tom_runs`) stores one phase per stage.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..core import checks, masking, optim, seeding
from ..core.data import Batches, Dataset
from ..core.pruning import prune
from ..core.train import TrainConfig, Trainer, evaluate, evaluate_splits
from . import forwarding

__all__ = ["TOMConfig", "MaskTrainer", "expected_density", "pretrain", "train_masks",
           "final_training", "PHASES", "PENALTIES", "HIST_BINS"]

PENALTIES = ("price", "l1", "l2")    # what makes the keep-probabilities decay
PHASES = ("pretrain", "masks", "final")  # the stored stages: phase 1, phases 2-3, phase 4
HIST_BINS = np.linspace(-15.0, 15.0, 61)  # logit histogram bins over the clip range


@dataclass(frozen=True)
class TOMConfig:
    """Training Optimal Masks with every open choice explicit (``None``: derived, below)."""

    train_steps: int                  # T: the final weight training's steps
    target_density: float             # t in (0, 1): the fraction the final mask keeps
    pretrain_fraction: float = 0.1    # dense pretraining, a fraction of T (thesis: 10 %)
    mask_steps: int | None = None     # logit steps (None: T - pretrain steps; all = 2 T)
    mask_optimizer: str = "adam"      # dL/dc ~ 1e-5: Adam's step needs no tuning; "sgd" with
    #                                   mask_momentum=0 is the thesis's formula
    mask_lr: float | None = None      # logit step size (None: logit_lr below)
    mask_momentum: float = 0.9        # "sgd" only
    logit_init: float = 3.0           # every weight starts kept with p = sigmoid(3) = 0.95
    penalty: str = "price"            # "price": steers E[density] to t; fixed "l1"/"l2" miss t
    penalty_coef: float | None = None  # starting price, or the l1/l2 weight (None: 1e-6 / 1e-3)
    price_growth: float | None = None  # the price's growth per step (None: price_factor below)
    grad_clip: float = 0.1            # |dL/dc| clip (thesis)
    logit_clip: float = 15.0          # |b| clip (thesis)
    final_weights: str = "pretrained"  # phase 4 starts from "pretrained" or "init" weights
    method: str = "tom"               # a label

    def __post_init__(self) -> None:
        def fix(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        fix("train_steps", checks.integer(self.train_steps, "train_steps", minimum=1))
        checks.label(self.method, "method")
        fix("target_density", checks.real(self.target_density, "target_density", 0.0, 1.0,
                                          low_open=True, high_open=True))
        fix("pretrain_fraction", checks.real(self.pretrain_fraction, "pretrain_fraction",
                                             0.0, 1.0))
        if self.mask_steps is not None:
            fix("mask_steps", checks.integer(self.mask_steps, "mask_steps (or None)", minimum=1))
        checks.one_of(self.mask_optimizer, "mask_optimizer", ("adam", "sgd"))
        checks.one_of(self.penalty, "penalty", PENALTIES)
        if self.mask_lr is not None:
            fix("mask_lr", checks.real(self.mask_lr, "mask_lr (or None)", 0.0, low_open=True))
        for name in ("grad_clip", "logit_clip"):
            fix(name, checks.real(getattr(self, name), name, 0.0, low_open=True))
        if self.penalty_coef is not None:
            fix("penalty_coef", checks.real(self.penalty_coef, "penalty_coef (or None)", 0.0))
        if self.price_growth is not None:
            fix("price_growth", checks.real(self.price_growth, "price_growth (or None)", 0.0,
                                            low_open=True))
        fix("mask_momentum", checks.real(self.mask_momentum, "mask_momentum", 0.0, 1.0,
                                         high_open=True))
        fix("logit_init", checks.real(self.logit_init, f"logit_init (within ±logit_clip="
                                      f"{self.logit_clip})", -self.logit_clip, self.logit_clip))
        checks.one_of(self.final_weights, "final_weights", ("pretrained", "init"))

    @property
    def pretrain_steps(self) -> int:
        return round(self.pretrain_fraction * self.train_steps)

    @property
    def mask_training_steps(self) -> int:
        """``mask_steps``, or what fills the method's compute up to 2 T."""
        if self.mask_steps is not None:
            return self.mask_steps
        return max(1, self.train_steps - self.pretrain_steps)

    @property
    def logit_lr(self) -> float:
        """``mask_lr``, or Adam's 0.1, raised so that a logit can cross from ``logit_init`` to
        ``logit(t)`` in half the mask steps (Adam moves it about one step size per step)."""
        if self.mask_lr is not None:
            return self.mask_lr
        t = self.target_density
        distance = self.logit_init - math.log(t / (1.0 - t))
        return max(0.1, 2.0 * distance / self.mask_training_steps)

    @property
    def penalty_weight(self) -> float:
        """``penalty_coef``, or the starting price 1e-6 (a tenth of a typical ``|dL/dc|``) or
        the fixed L1/L2 weight 1e-3."""
        if self.penalty_coef is not None:
            return self.penalty_coef
        return 1e-6 if self.penalty == "price" else 1e-3

    @property
    def price_factor(self) -> float:
        """``1 + price_growth``, or what lets the price grow 10**4-fold in half the mask steps
        (5 % per step for 360 steps)."""
        if self.price_growth is not None:
            return 1.0 + self.price_growth
        return 10.0 ** (8.0 / self.mask_training_steps)

    @property
    def total_steps(self) -> int:
        """The whole method's forward-backward passes: its compute in training steps."""
        return self.pretrain_steps + self.mask_training_steps + self.train_steps

    def replace(self, **changes) -> TOMConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class MaskTrainer:
    """Phase 2: one logit per masked weight of ``model`` (masks needed; ``data`` on its
    device), trained while the weights stay frozen (BN running statistics follow the masked
    activations). Batches and draws: streams ``("tom", "masks" | "bernoulli")`` of ``seed``.
    """

    def __init__(self, model: nn.Module, data: Dataset, config: TOMConfig, batch_size: int,
                 seed: int = 0) -> None:
        self.model, self.config = model, config
        self.layers = masking.masked_layers(model)
        if not self.layers:
            raise ValueError("the model has no masks to train; call masking.add_masks(model)")
        self.logits = {name: torch.full_like(layer.weight, config.logit_init, requires_grad=True)
                       for name, layer in self.layers.items()}
        params = list(self.logits.values())
        if config.mask_optimizer == "adam":
            self.optimizer = optim.Adam(params, lr=config.logit_lr)
        else:
            self.optimizer = optim.SGD(params, lr=config.logit_lr, momentum=config.mask_momentum)
        self.batches = iter(Batches(data.x_train, data.y_train, batch_size,
                                    seeding.derive(seed, "tom", "masks"), data.augment))
        self.generator = torch.Generator(device=data.device).manual_seed(
            seeding.derive(seed, "tom", "bernoulli"))
        self.price = config.penalty_weight  # of one kept weight ("price" only)

    def step(self) -> float:
        """One update of the logits, then of the price; returns the sampled net's loss."""
        x, y = next(self.batches)
        pricing = self.config.penalty == "price"
        above = self.above_target() if pricing else None
        self.model.train()
        with _frozen(self.model):  # 1. the weights stay fixed; only the logits get gradients
            masks = self.sample()  # 2. c ~ Bernoulli(sigmoid(b)), straight-through, clipped
            # 3. the loss of the network with weights w * c
            loss = F.cross_entropy(masking.functional_forward(self.model, x, masks), y)
            self.optimizer.zero_grad(set_to_none=True)
            (loss + self.penalty(masks, above)).backward()  # 4. clip(dL/dc) reaches b
        self.optimizer.step()  # 5. b <- b - lr * clip(dL/dc), by Adam or SGD
        with torch.no_grad():  # 6. b stays in [-logit_clip, logit_clip]
            for b in self.logits.values():
                b.clamp_(-self.config.logit_clip, self.config.logit_clip)
        if pricing:  # 7. the price grows while E[density] stays on one side of t, halves when
            # it crosses (Rprop's rule): a thermostat that holds the expected density at t
            factor = self.config.price_factor if self.above_target() == above else 0.5
            self.price = min(self.price * factor, self.config.grad_clip)
        return float(loss.detach())

    def sample(self) -> dict[str, torch.Tensor]:
        return {n: masking.bernoulli_ste(b, self.config.grad_clip, self.generator)
                for n, b in self.logits.items()}

    def above_target(self) -> bool:
        return self.expected_density() > self.config.target_density

    def penalty(self, masks: dict[str, torch.Tensor], above: bool | None = None) -> torch.Tensor:
        """``"price"``: ``price * (kept weights)`` above ``t``, the same as a reward at or
        below it (``above``: :meth:`above_target`, if known); ``"l1"``/``"l2"``: a fixed
        weight on ``sum(sigmoid(b))`` or on the sum of its squares."""
        if self.config.penalty == "price":
            above = self.above_target() if above is None else above
            price = self.price if above else -self.price
            return price * sum(c.sum() for c in masks.values())
        probs = [torch.sigmoid(b) for b in self.logits.values()]
        power = 1 if self.config.penalty == "l1" else 2
        return self.config.penalty_weight * sum((p**power).sum() for p in probs)

    def scores(self) -> dict[str, torch.Tensor]:
        """The logits as saliency, ties among clipped logits broken by ``|w|``."""
        # float64 resolves 1e-9 * |w| next to a logit of 15 (its spacing there is ~2e-15)
        return {name: b.detach().double() + 1e-9 * self.layers[name].weight.detach().abs().double()
                for name, b in self.logits.items()}

    def final_masks(self, density: float) -> dict[str, torch.Tensor]:
        """Phase 3: the top ``density`` of all logits (one global threshold)."""
        probe = _clone_without_masks(self.model)
        prune(probe, density, saliency=lambda m, layers: self.scores())
        return {n: m.clone() for n, m in masking.get_masks(probe).items()}

    def histogram(self) -> list[int]:
        values = torch.cat([b.detach().flatten().cpu() for b in self.logits.values()]).numpy()
        return np.histogram(values, bins=HIST_BINS)[0].tolist()

    def expected_density(self) -> float:
        return expected_density(self.logits.values())


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in trainable:
            p.requires_grad_(False)
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def expected_density(logits: Iterable[torch.Tensor]) -> float:
    """``sum(sigmoid(b)) / (number of weights)`` over all ``logits`` (one tensor per layer):
    every weight counts once, whatever its layer's size."""
    logits = list(logits)
    # one read-back from the device for all layers' sums, not one per layer
    kept = torch.stack([torch.sigmoid(b.detach()).sum() for b in logits]).tolist()
    return sum(kept) / sum(b.numel() for b in logits)



def _clone_without_masks(model: nn.Module) -> nn.Module:
    probe = copy.deepcopy(model)
    for layer in masking.masked_layers(probe).values():
        getattr(layer, masking.MASK).fill_(True)
    return probe


def _metrics(model: nn.Module, data: Dataset) -> dict:
    return {**masking.summary(model), **evaluate_splits(model, data)}


# The phases, each on a masked model in place; each returns its record.


def pretrain(model: nn.Module, data: Dataset, config: TOMConfig, *, train: TrainConfig,
             seed: int = 0, progress: bool = False) -> dict:
    """Phase 1: train the dense ``model`` (masks are added) ``pretrain_fraction * T`` steps."""
    masking.add_masks(model)
    Trainer(model, data, train, seed=seeding.derive(seed, "tom", "pretrain"),
            progress=progress, desc="pretrain").run(config.pretrain_steps)
    return {"phase": "pretrain", "steps": config.pretrain_steps, **_metrics(model, data)}


def train_masks(model: nn.Module, data: Dataset, config: TOMConfig, *, batch_size: int,
                seed: int = 0, progress: bool = False, eval_every: int | None = None) -> dict:
    """Phases 2 and 3: train the logits on the frozen weights, install the top-t mask. The
    record's ``history`` holds, every ``eval_every`` steps (default: 10 points), the expected
    density, the price, the top-t mask's test accuracy and a histogram over :data:`HIST_BINS`.
    """
    trainer = MaskTrainer(model, data, config, batch_size, seed=seed)
    steps = config.mask_training_steps
    every = max(1, steps // 10) if eval_every is None else checks.integer(
        eval_every, "eval_every", minimum=1)
    history = []
    for step in tqdm(range(1, steps + 1), desc="mask logits", disable=not progress,
                     leave=False):
        loss = trainer.step()
        if step % every == 0 or step == steps:
            probe = _clone_without_masks(model)
            masking.set_masks(probe, trainer.final_masks(config.target_density))
            history.append({"step": step, "loss": loss, "price": trainer.price,
                            "expected_density": trainer.expected_density(),
                            "test_accuracy": evaluate(probe, data.x_test, data.y_test)["accuracy"],
                            "histogram": trainer.histogram()})
    masking.set_masks(model, trainer.final_masks(config.target_density))
    return {"phase": "masks", "steps": steps, "history": history, **_metrics(model, data)}


def final_training(model: nn.Module, data: Dataset, config: TOMConfig, *, train: TrainConfig,
                   seed: int = 0, progress: bool = False,
                   initial: Mapping[str, torch.Tensor] | None = None) -> dict:
    """Phase 4: train the weights ``T`` steps under the fixed mask, from where they are or,
    with ``final_weights="init"``, from ``initial`` (a copy of the initialization's state)."""
    if config.final_weights == "init":
        if initial is None:
            raise ValueError('final_weights="init" needs initial=, a copy of the masked '
                             "initialization's state_dict taken before pretraining")
        masking.restore(model, initial)
    Trainer(model, data, train, seed=seeding.derive(seed, "tom", "final"),
            progress=progress, desc="final training").run(config.train_steps)
    return {"phase": "final", "steps": config.train_steps, **_metrics(model, data)}


# The store glue, the thesis's figure and the notebooks' densities live beside the algorithm.
__getattr__, __dir__ = forwarding(__name__, {
    "run": "tom_runs", "experiment": "tom_runs", "run_config": "tom_runs",
    "THESIS_MNIST": "tom_runs", "compared_densities": "comparisons"})
