"""Training Optimal Masks (thesis Section 3.3.1): learn the mask, not the weights.

The thesis's method, phase by phase:

1. **Pretrain** the dense network for ``pretrain_fraction * T`` steps (10 % of T), past the
   unstable early phase (Frankle et al. 2020b). Then freeze the weights.
2. **Train mask logits** ``b`` (one per prunable weight). Every step draws a mask
   ``c ~ Bernoulli(sigmoid(b))``, runs the network with weights ``w * c``, and updates
   ``b <- b - lr * clip(dL/dc, -0.1, 0.1)``: the straight-through estimator (Bengio et al.
   2013) hands the gradient with respect to the sampled mask to the logits. ``b`` is clipped
   to ``[-15, 15]``, and a penalty pushes the masks down: by default a price per kept weight
   that a thermostat adjusts until the expected density sits at the target ``t`` (the
   thesis leaves the penalty's form open). (The gradient reaching ``b`` is the clipped
   ``dL/dc``; we hand it to Adam by default, see :class:`TOMConfig`.)
3. **Evaluate** with a deterministic mask: the top ``t`` fraction of logits are kept.
4. **Train the weights** under that fixed mask for the full schedule (T steps).

By default the mask training gets 0.9 T steps, so that the whole method costs 2 T, what a
one-shot method costs: Figure 3.10 compares them at "similar compute".

Choices the thesis leaves open are arguments of :class:`TOMConfig`, each with its default
and the reason for it: the logits' initialization, the logits' learning rate and how long
they train, the penalty's form and strength, and which weights the final training starts
from.

:func:`run` executes the method through the run store, one phase per stage
(:func:`_pretrain`, :func:`_train_masks` with :class:`MaskTrainer`, :func:`_final_training`;
phase 3, the evaluation mask, is :meth:`MaskTrainer.final_masks`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..core import checks, masking, optim, seeding
from ..core.data import Batches, Dataset
from ..core.pruning import prune
from ..core.train import Trainer, evaluate, evaluate_splits
from . import gimp, runner, runs
from .config import Setup
from .profiles import Profile

__all__ = [
    "TOMConfig",
    "PENALTIES",
    "MaskTrainer",
    "expected_density",
    "compared_densities",
    "PHASES",
    "experiment",
    "run_config",
    "run",
    "HIST_BINS",
    "THESIS_MNIST",
]

# The penalties that make the keep-probabilities decay (TOMConfig.penalty).
PENALTIES = ("price", "l1", "l2")

# Histogram bins for the logits (their range is clipped to [-15, 15], thesis Section 3.3.1).
HIST_BINS = np.linspace(-15.0, 15.0, 61)


@dataclass(frozen=True)
class TOMConfig:
    """Training Optimal Masks, with every open choice explicit.

    Attributes:
        train_steps: T, the full training length (the final weight training uses it).
        target_density: t, the fraction of weights the final mask keeps, in (0, 1).
        pretrain_fraction: dense pretraining as a fraction of T (thesis: 10 %).
        mask_steps: steps of logit training. Open in the thesis; default ``T - 0.1 T``
            (``None``): the method's whole compute (0.1 T + 0.9 T + T = 2 T) then equals a
            one-shot method's (T of training + T of retraining), so that the two compare at
            matched compute (Figure 3.10: "similar compute requirements"). The extra steps
            go to the masks, the phase TOM adds.
        mask_optimizer: ``"adam"`` (default) or ``"sgd"`` for the logits. The thesis writes
            the update as plain SGD, ``b <- b - alpha * clip(dL/dc)``, without alpha. But
            ``dL/dc = w * dL/dw`` is tiny (about 1e-5 per weight for the thesis MLP), so SGD
            needs an alpha tuned per network; Adam normalizes the scale and works with one
            setting. ``"sgd"`` with ``mask_momentum=0`` is the thesis's formula.
        mask_lr: the logits' step size. Default (``None``): Adam's 0.1 (which moves a logit
            across [-15, 15] in a few hundred consistent steps), or more where the mask
            steps are few: at least the step that moves a logit from ``logit_init`` to
            ``logit(t)`` in half the mask steps, so that the expected density can reach
            ``t`` within the budget (see :attr:`logit_lr`).
        mask_momentum: momentum of the logits' SGD (only for ``"sgd"``).
        logit_init: initial value of every logit (open). Default 3.0: every weight starts
            kept with probability sigmoid(3) = 0.95, close to the dense network the weights
            were pretrained as.
        penalty: what makes the keep-probabilities decay (the thesis: "usually, L2 or L1
            penalty is needed"; its form and strength are open).

            * ``"price"`` (default): an L1 penalty on the *sampled* mask, ``price * sum(c)``,
              whose gradient reaches the logits through the same straight-through estimator
              as the loss's: a weight's logit rises only where keeping it lowers the loss by
              more than the price. The price is tied to the target ``t``: while the expected
              density ``E[sigmoid(b)]`` is above ``t`` it is a cost, while at or below ``t``
              a reward (``-price * sum(c)``). After every step the price grows by the factor
              ``1 + price_growth`` if the density stayed on the same side of ``t``, and
              halves if it crossed (the step-size rule of Rprop). So the expected density
              falls to ``t`` and stays near it, whatever ``t`` is (a thermostat;
              ``expected_density`` and ``price`` in the ``masks`` record show it). The price
              never exceeds ``grad_clip``: past the clip a dearer price changes nothing.
            * ``"l1"`` / ``"l2"``: ``penalty_coef * sum(sigmoid(b))`` (or its square), the
              same weight whatever the target. On the thesis MLP (Adam, 1e-3, T/4 steps)
              the expected density ends near 3 % for every target, and a logit saturated at
              +15 no longer feels it (the sigmoid's slope there is 3e-7), so the density
              cannot go much lower.
        penalty_coef: ``"price"``: the starting price, small enough (default 1e-6, about a
            tenth of a typical ``|dL/dc|`` on the thesis MLP) that the masks first follow
            the loss alone; ``"l1"``/``"l2"``: the fixed weight (default 1e-3: on the thesis
            MLP with Adam it takes the expected density from 0.95 to a few per cent within
            ~100 steps).
        price_growth: the price's change per step (``"price"`` only); default (``None``):
            the rate at which the price can grow 10,000-fold in half the mask steps
            (``10 ** (8 / mask_steps) - 1``: 5 % per step for 360 mask steps). On the quick
            profile's MLP, 20 % per step still reaches ``t`` but drives the price to the
            clip, where it drowns the loss's gradient (the top-t mask's accuracy on the
            frozen weights ends at 33 % instead of 93 % for t = 0.118); 1 % per step leaves
            the expected density at 0.05 for t = 0.0016 after 360 steps.
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
    mask_lr: float | None = None
    mask_momentum: float = 0.9
    logit_init: float = 3.0
    penalty: str = "price"
    penalty_coef: float | None = None
    price_growth: float | None = None
    grad_clip: float = 0.1
    logit_clip: float = 15.0
    final_weights: str = "pretrained"
    method: str = "tom"

    def __post_init__(self) -> None:
        def fix(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        fix("train_steps", checks.integer(self.train_steps, "train_steps", minimum=1))
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
        """Steps of phase 2: ``mask_steps``, or what fills TOM's compute up to 2 T."""
        if self.mask_steps is not None:
            return self.mask_steps
        return max(1, self.train_steps - self.pretrain_steps)

    @property
    def logit_lr(self) -> float:
        """``mask_lr``, or by default ``max(0.1, 2 * (logit_init - logit(t)) / mask
        steps)``: Adam moves a logit by about its step size per step, so the logits can
        cross from their start to ``logit(t)`` in half the mask steps."""
        if self.mask_lr is not None:
            return self.mask_lr
        t = self.target_density
        distance = self.logit_init - math.log(t / (1.0 - t))
        return max(0.1, 2.0 * distance / self.mask_training_steps)

    @property
    def penalty_weight(self) -> float:
        """``penalty_coef``, or its default for the penalty: the starting price or the
        fixed weight of the L1/L2 penalty."""
        if self.penalty_coef is not None:
            return self.penalty_coef
        return 1e-6 if self.penalty == "price" else 1e-3

    @property
    def price_factor(self) -> float:
        """The price's factor per step, ``1 + price_growth``: by default the price can grow
        by 10**4 within half the mask steps."""
        if self.price_growth is not None:
            return 1.0 + self.price_growth
        return 10.0 ** (8.0 / self.mask_training_steps)

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
        model: a model with masks (:func:`pruninglab.core.masking.add_masks`); its parameters are
            not modified (BN running statistics do follow the masked activations).
        data: training data on the model's device.
        config: the :class:`TOMConfig`.
        seed: the run's seed; the batch order and the Bernoulli draws are its streams
            ``("tom", "masks")`` and ``("tom", "bernoulli")``.
    """

    def __init__(self, model: nn.Module, data: Dataset, config: TOMConfig, batch_size: int,
                 seed: int = 0) -> None:
        self.model, self.config = model, config
        self.layers = masking.masked_layers(model)
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
        self.price = config.penalty_weight  # the price of one kept weight ("price" only)

    def sample(self) -> dict[str, torch.Tensor]:
        """A Bernoulli mask per layer with the straight-through, clipped gradient."""
        return {n: masking.bernoulli_ste(b, self.config.grad_clip, self.generator)
                for n, b in self.logits.items()}

    def above_target(self) -> bool:
        """Whether the expected density is still above the target ``t``."""
        return self.expected_density() > self.config.target_density

    def penalty(self, masks: dict[str, torch.Tensor], above: bool | None = None) -> torch.Tensor:
        """The term added to the loss for the sampled ``masks`` (see ``TOMConfig.penalty``):
        ``price * (kept weights)`` while the expected density is above ``t``, and
        ``-price * (kept weights)``, a reward, while it is at or below; or the fixed L1/L2
        penalty on ``sigmoid(b)``. ``above``: :meth:`above_target` when the caller has it
        already (each call reads the logits back from the device)."""
        if self.config.penalty == "price":
            above = self.above_target() if above is None else above
            price = self.price if above else -self.price
            return price * sum(c.sum() for c in masks.values())
        probs = [torch.sigmoid(b) for b in self.logits.values()]
        power = 1 if self.config.penalty == "l1" else 2
        return self.config.penalty_weight * sum((p**power).sum() for p in probs)

    def step(self) -> float:
        """One update of the logits, then of the price; returns the cross-entropy of the
        sampled network."""
        x, y = next(self.batches)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.model.train()
        pricing = self.config.penalty == "price"
        above = self.above_target() if pricing else None
        try:  # the weights stay frozen: no gradients for them, only for the logits
            for p in trainable:
                p.requires_grad_(False)
            masks = self.sample()
            loss = F.cross_entropy(masking.functional_forward(self.model, x, masks), y)
            self.optimizer.zero_grad(set_to_none=True)
            (loss + self.penalty(masks, above)).backward()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        self.optimizer.step()
        with torch.no_grad():
            for b in self.logits.values():
                b.clamp_(-self.config.logit_clip, self.config.logit_clip)
        if pricing:  # the thermostat (Rprop's rule)
            # on the same side of t as before the step: a larger price (a cost above t, a
            # reward below); crossed t: half the price
            factor = self.config.price_factor if self.above_target() == above else 0.5
            self.price = min(self.price * factor, self.config.grad_clip)
        return float(loss.detach())

    def scores(self) -> dict[str, torch.Tensor]:
        """Logits as saliency (float64), ties among clipped logits broken by ``|w|``."""
        # float64 resolves 1e-9 * |w| next to a logit of 15 (its spacing there is ~2e-15)
        return {name: b.detach().double() + 1e-9 * self.layers[name].weight.detach().abs().double()
                for name, b in self.logits.items()}

    def final_masks(self, density: float) -> dict[str, torch.Tensor]:
        """The deterministic evaluation mask: the top ``density`` of all logits (global)."""
        probe = _clone_without_masks(self.model)
        prune(probe, density, saliency=lambda m, layers: self.scores())
        return {n: m.clone() for n, m in masking.get_masks(probe).items()}

    def histogram(self) -> list[int]:
        values = torch.cat([b.detach().flatten().cpu() for b in self.logits.values()]).numpy()
        return np.histogram(values, bins=HIST_BINS)[0].tolist()

    def expected_density(self) -> float:
        return expected_density(self.logits.values())


def expected_density(logits: Iterable[torch.Tensor]) -> float:
    """The expected density of masks drawn from ``logits`` (one tensor per layer, any
    shapes): each weight is kept with probability sigmoid(b), so the expected number kept
    is the sum of sigmoid(b) over all weights, divided by their number. Every weight
    counts once, whatever its layer's size."""
    logits = list(logits)
    # one read-back from the device for all layers' sums, not one per layer
    kept = torch.stack([torch.sigmoid(b.detach()).sum() for b in logits]).tolist()
    return sum(kept) / sum(b.numel() for b in logits)


def compared_densities(profile: Profile, wanted: Sequence[float] | None = None,
                       collapse: float | None = None) -> list[float]:
    """The densities notebook 07 compares TOM at, highest first: the iterative levels
    (``K, K**2, ...`` down to the profile's target) nearest to each of ``wanted`` (default:
    10x, 4x and 1x the target), so that every method prunes to exactly the same density,
    and ``collapse`` (default: ``profile.one_shot_collapse``), the density where one-shot
    LR rewinding collapses, when there is one."""
    target = profile.target_density
    levels = gimp.weight_rewinding(profile.steps_for(), target,
                                   K=profile.density_multiplier).densities()[1:]
    wanted = [10 * target, 4 * target, target] if wanted is None else list(wanted)
    for w in wanted:
        checks.real(w, "wanted densities", 0.0, low_open=True)
    chosen = {min(levels, key=lambda d: abs(math.log(d / w))) for w in wanted}
    collapse = profile.one_shot_collapse if collapse is None else collapse
    if collapse is not None:
        chosen.add(checks.real(collapse, "collapse", 0.0, 1.0, low_open=True, high_open=True))
    return sorted(chosen, reverse=True)


def _clone_without_masks(model: nn.Module) -> nn.Module:
    probe = copy.deepcopy(model)
    for layer in masking.masked_layers(probe).values():
        getattr(layer, masking.MASK).fill_(True)
    return probe


def _masked_accuracy(model: nn.Module, masks: dict, x, y) -> dict:
    probe = _clone_without_masks(model)
    masking.set_masks(probe, masks)
    return evaluate(probe, x, y)


# --------------------------------------------------------------------------------------
# The three phases, and the run through the store
# --------------------------------------------------------------------------------------

PHASES = ("pretrain", "masks", "final")


def _pretrain(setup: Setup, config: TOMConfig, data: Dataset, start: dict,
              progress: bool) -> tuple[dict, dict]:
    """Phase 1: train the dense network ``pretrain_fraction * T`` steps."""
    model = setup.masked_model(data, state=start["model"])
    Trainer(model, data, setup.train, seed=seeding.derive(setup.seed, "tom", "pretrain"),
            progress=progress, desc="pretrain").run(config.pretrain_steps)
    record = {"phase": "pretrain", "steps": config.pretrain_steps, **_metrics(model, data)}
    return record, {"model": runs.cpu_state(model.state_dict())}


def _train_masks(setup: Setup, config: TOMConfig, data: Dataset, start: dict, progress: bool,
                 eval_every: int | None) -> tuple[dict, dict]:
    """Phase 2: train the mask logits on the frozen pretrained weights; install the top-t
    mask. The record's ``history`` holds, every ``eval_every`` steps, the expected density,
    the top-t mask's test accuracy and a histogram of the logits."""
    model = setup.masked_model(data, state=start["model"])
    trainer = MaskTrainer(model, data, config, setup.train.batch_size, seed=setup.seed)
    steps = config.mask_training_steps
    every = eval_every or max(1, steps // 10)
    history = []
    for step in tqdm(range(1, steps + 1), desc="mask logits", disable=not progress,
                     leave=False):
        loss = trainer.step()
        if step % every == 0 or step == steps:
            masks = trainer.final_masks(config.target_density)
            accuracy = _masked_accuracy(model, masks, data.x_test, data.y_test)["accuracy"]
            history.append({"step": step, "loss": loss, "price": trainer.price,
                            "expected_density": trainer.expected_density(),
                            "test_accuracy": accuracy, "histogram": trainer.histogram()})
    masking.set_masks(model, trainer.final_masks(config.target_density))
    record = {"phase": "masks", "steps": steps, "history": history, **_metrics(model, data)}
    return record, {"model": runs.cpu_state(model.state_dict())}


def _final_training(setup: Setup, config: TOMConfig, data: Dataset, start: dict,
                    initial: dict | None, progress: bool) -> tuple[dict, None]:
    """Phase 4: train the weights under the fixed mask for the full schedule, from the
    pretrained weights or from the initialization ``initial`` (``config.final_weights``)."""
    model = setup.masked_model(data, state=start["model"])
    masks = {name: mask.clone() for name, mask in masking.get_masks(model).items()}
    if config.final_weights == "init":
        model.load_state_dict(initial["model"])
    masking.set_masks(model, masks)
    Trainer(model, data, setup.train, seed=seeding.derive(setup.seed, "tom", "final"),
            progress=progress, desc="final training").run(config.train_steps)
    return {"phase": "final", "steps": config.train_steps, **_metrics(model, data)}, None


def run_config(setup: Setup, config: TOMConfig) -> dict:
    """The dict the run store keys a TOM run by (its hash names the run's folder)."""
    return {"kind": "tom", "setup": setup.to_dict(), "method": config.to_dict()}


def experiment(setup: Setup, config: TOMConfig, data: Dataset, progress: bool = True,
               eval_every: int | None = None) -> runner.Experiment:
    """TOM as a :class:`~pruninglab.experiments.runner.Experiment`: the stages are :data:`PHASES`;
    stage 0 starts from the masked initialization."""
    setup.check_data(data)
    setup.check_train_steps(config.train_steps)
    if eval_every is not None:
        eval_every = checks.integer(eval_every, "eval_every", minimum=1)

    def start() -> dict:
        return {"model": runs.cpu_state(setup.masked_model(data).state_dict())}

    def stage(index: int, state: dict) -> tuple[dict, dict | None]:
        if index == 0:
            return _pretrain(setup, config, data, state, progress)
        if index == 1:
            return _train_masks(setup, config, data, state, progress, eval_every)
        initial = start() if config.final_weights == "init" else None
        return _final_training(setup, config, data, state, initial, progress)

    return runner.Experiment(
        kind="tom", config=run_config(setup, config),
        stages=list(PHASES), start=start, stage=stage,
        columns={"method": config.method, "seed": setup.seed,
                 "total_steps": config.total_steps}, label=config.method)


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
    """Run Training Optimal Masks through the run store (resumable phase by phase).

    Args:
        setup, data, store, device, progress, fetch_only: as in
        :func:`pruninglab.experiments.gimp.run`.
        config: the TOM settings.
        eval_every: during mask training, every this many steps record the test accuracy
            of the top-``t`` mask on the frozen weights and a histogram of the logits
            (default: 10 points over the phase).
        on_phase: called with each phase's record.

    Returns:
        Three rows, ``phase`` = ``pretrain`` (dense), ``masks`` (frozen weights, top-t mask)
        and ``final`` (weights retrained under the mask), with ``method``, ``seed`` and
        ``total_steps`` (the whole method's training steps); the ``masks`` row carries the
        logit ``history`` (step, expected density, accuracy, histogram counts over
        :data:`HIST_BINS`).
    """
    data = setup.resolve_data(data, device)
    return runner.run(experiment(setup, config, data, progress, eval_every), store, progress,
                      on_record=on_phase, fetch_only=fetch_only)


def _metrics(model: nn.Module, data: Dataset) -> dict:
    return {**masking.summary(model), **evaluate_splits(model, data)}


# Section 3.3.1: the MLP of Table 3.1 on MNIST at 96 % sparsity, test accuracy (%) mean and
# std: Training Optimal Masks against iterative pruning (weight rewinding, Table 3.1's "none").
THESIS_MNIST: dict[str, tuple[float, float]] = {"tom": (98.639, 0.039),
                                                "iterative": (98.624, 0.039)}


