"""The step-based training loop (iterations, not epochs).

:class:`Trainer` holds a model, its optimizer, a seeded stream of batches and the
**schedule position**: the iteration at which the learning-rate schedule is read. The
position is plain explicit state, so a pruning algorithm can rewind it
(``trainer.position = 0``) independently of the parameters.

Regularization follows the thesis (Section 3.4): ``l2`` is the coefficient beta_2 of a
penalty ``beta_2 * sum(w**2)`` on the kernels of Conv/Linear layers only (not biases, not
BN). Its gradient is ``2 * beta_2 * w``, so it is applied as PyTorch weight decay
``2 * l2`` on those tensors.

Masked models (see :mod:`pruninglab.core.masking`) are supported directly: the optimizers of
:mod:`pruninglab.core.optim` apply the masks inside their step, so pruned weights stay exactly
zero.

On CUDA the loop takes a fast path: channels-last memory, bf16 autocast,
optional ``torch.compile``, and no host synchronisation per step (loss and accuracy are
summed on the device and read only when a callback or the progress bar asks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checks, masking, optim
from .data import Batches, Dataset
from .schedules import Schedule

__all__ = [
    "TrainConfig",
    "Trainer",
    "Event",
    "Callback",
    "evaluate",
    "evaluate_splits",
    "SPLITS",
    "resolve_device",
    "kernels",
]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training (thesis Section 3.4 defaults where it gives them).

    Attributes:
        schedule: learning rate by iteration; ``schedule.steps`` is the training length T.
        batch_size: images per step (thesis: 128).
        optimizer: ``"sgd"`` (with momentum) or ``"adam"``.
        momentum: SGD momentum (0.9; the thesis does not state it).
        l2: L2 coefficient beta_2 in the thesis's meaning, on kernels (1e-4; WRN 2e-4).
        augment: augment training batches; ``None`` follows the data set.
        amp: bf16 autocast on CUDA (ignored on CPU).
        channels_last: NHWC memory layout on CUDA for conv nets (ignored on CPU).
        compile: wrap the model in ``torch.compile(mode="reduce-overhead")``: compiled and
            replayed as CUDA graphs (CUDA only).
    """

    schedule: Schedule
    batch_size: int = 128
    optimizer: str = "sgd"
    momentum: float = 0.9
    l2: float = 1e-4
    augment: bool | None = None
    amp: bool = True
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise ValueError(f"schedule must be a pruninglab Schedule, got {self.schedule!r}")
        object.__setattr__(self, "batch_size",
                           checks.integer(self.batch_size, "batch_size", minimum=1))
        checks.one_of(self.optimizer, "optimizer", ("sgd", "adam"))
        object.__setattr__(self, "momentum",
                           checks.real(self.momentum, "momentum", 0.0, 1.0, high_open=True))
        object.__setattr__(self, "l2", checks.real(self.l2, "l2", 0.0))

    @property
    def steps(self) -> int:
        """The training length T (iterations)."""
        return self.schedule.steps

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else is checked and returned."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} asked for, but CUDA is not available here")
    return device


def kernels(model: nn.Module) -> list[nn.Parameter]:
    """The weights of Conv/Linear layers: the tensors the thesis's L2 penalty applies to."""
    return [m.weight for m in model.modules() if isinstance(m, masking.PRUNABLE_TYPES)]


@dataclass
class Event:
    """What a callback sees: the position, the running averages since the last event, and
    the trainer (``event.trainer.model`` for live evaluation)."""

    step: int  # steps taken by this trainer so far
    position: int  # schedule position after the step
    lr: float
    loss: float
    accuracy: float
    trainer: Trainer


Callback = Callable[[Event], None]


@dataclass
class Trainer:
    """Trains ``model`` on ``data`` with ``config``, step by step.

    Args:
        model: any ``nn.Module`` (masked or not); moved to ``data``'s device.
        data: a :class:`~pruninglab.core.data.Dataset` whose tensors sit on the training device.
        config: the hyperparameters.
        seed: fixes the batch order and the augmentation.
        position: the schedule position to start at.
        progress: show a tqdm progress bar (turn off in headless runs).
        desc: the progress bar's label.

    ``run(n)`` trains ``n`` steps and may be called repeatedly; the optimizer state and the
    batch stream carry over between calls, and :meth:`running_means` sums them up.
    ``reset_optimizer()`` starts fresh moments; :meth:`optimizer_state` and
    :meth:`load_optimizer_state` save and restore them.
    """

    model: nn.Module
    data: Dataset
    config: TrainConfig
    seed: int = 0
    position: int = 0
    progress: bool = True
    desc: str = "train"
    steps_done: int = field(default=0, init=False)
    fits: list[dict] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.position = checks.integer(self.position, "position", minimum=0)
        self.seed = checks.integer(self.seed, "seed", minimum=0)
        if not isinstance(self.data, Dataset):
            raise ValueError(f"data must be a pruninglab Dataset, got {type(self.data).__name__}")
        self.data.check()  # float32 images, int64 labels: before any step, not at the first
        dtypes = {p.dtype for p in self.model.parameters() if p.is_floating_point()}
        if dtypes - {self.data.x_train.dtype}:
            raise ValueError(f"the model's parameters are {sorted(map(str, dtypes))} but the "
                             f"images are {self.data.x_train.dtype}; use a float32 model")
        self.device = self.data.device
        self.cuda = self.device.type == "cuda"
        self.model.to(self.device)
        if self.cuda and self.config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = self.model
        if self.config.compile and self.cuda:
            # CUDA graphs: ResNet-20 is launch-bound on a big GPU, and the default mode
            # left it as slow as eager (pruninglab bench train --compile).
            self.forward = torch.compile(self.model, mode="reduce-overhead")
        augment = self.data.augment if self.config.augment is None else self.config.augment
        self.batches = iter(Batches(self.data.x_train, self.data.y_train,
                                    self.config.batch_size, self.seed, augment))
        self.reset_optimizer()

    def reset_optimizer(self) -> None:
        """A fresh optimizer (no momentum or Adam moments), as after every GIMP rewind."""
        cfg = self.config
        decay = {id(p) for p in kernels(self.model)}
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if id(p) in decay], "weight_decay": 2 * cfg.l2},
            {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        lr = cfg.schedule(self.position)
        # pruninglab.core.optim: the masks applied inside the step, and no torch._dynamo import
        if cfg.optimizer == "sgd":
            self.optimizer = optim.SGD(groups, lr=lr, momentum=cfg.momentum, model=self.model)
        else:
            self.optimizer = optim.Adam(groups, lr=lr, model=self.model)

    def optimizer_state(self) -> dict[str, dict]:
        """Each trained parameter's optimizer state by its name in the model (momentum
        buffers; Adam's moments and step), copied; zeros where no step was taken yet."""
        return {name: self.optimizer.param_state(p)
                for name, p in self.model.named_parameters() if p.requires_grad}

    def load_optimizer_state(self, state: dict[str, dict]) -> None:
        """Restore what :meth:`optimizer_state` returned (on this model or one of the same
        architecture); the next step multiplies it by the current masks."""
        params = {name: p for name, p in self.model.named_parameters() if p.requires_grad}
        if set(state) != set(params):
            raise ValueError(f"state names parameters {sorted(set(state) - set(params))} the "
                             f"model lacks and lacks {sorted(set(params) - set(state))}")
        for name, p in params.items():
            self.optimizer.load_param_state(p, state[name])

    def running_means(self) -> dict:
        """Every :meth:`run` so far as one: ``{"steps", "loss", "accuracy", "position"}``,
        the loss and accuracy the means of the runs' means weighted by their steps."""
        steps = sum(fit["steps"] for fit in self.fits)

        def mean(key: str) -> float:
            parts = [(fit[key], fit["steps"]) for fit in self.fits if fit["steps"]]
            return sum(v * n for v, n in parts) / steps if steps else math.nan

        return {"steps": steps, "loss": mean("loss"), "accuracy": mean("accuracy"),
                "position": self.position}

    def run(self, steps: int, callbacks: Sequence[tuple[int, Callback]] = ()) -> dict:
        """Train ``steps`` iterations from the current position.

        Args:
            steps: number of optimizer steps (>= 0).
            callbacks: ``(every, fn)`` pairs; ``fn(event)`` is called whenever the trainer's
                steps so far (``steps_done``, counted over all calls) reach a multiple of
                ``every``, and after the last step of this call.

        Returns:
            ``{"steps", "loss", "accuracy", "seconds", "position"}``: the mean training
            loss and accuracy over these steps (on augmented batches) and the wall time.
        """
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        for every, _ in callbacks:
            if not isinstance(every, int) or every < 1:
                raise ValueError(f"callback intervals must be positive integers, got {every!r}")
        self.model.train()
        total_loss = torch.zeros((), device=self.device)
        total_correct = torch.zeros((), device=self.device, dtype=torch.long)
        window_loss = torch.zeros((), device=self.device)
        window_correct = torch.zeros((), device=self.device, dtype=torch.long)
        window_steps = 0
        start = time.perf_counter()
        bar = tqdm(total=steps, desc=self.desc, disable=not self.progress or steps == 0,
                   leave=False, mininterval=0.5)
        for i in range(steps):
            lr = self.config.schedule(self.position)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            x, y = next(self.batches)
            if self.cuda and self.config.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16,
                                enabled=self.cuda and self.config.amp):
                logits = self.forward(x)
                loss = F.cross_entropy(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()  # applies the masks: pruned weights stay exactly 0
            self.position += 1
            self.steps_done += 1
            with torch.no_grad():  # accumulate on the device: no host sync per step
                window_loss += loss.detach()
                window_correct += (logits.argmax(1) == y).sum()
            window_steps += 1
            bar.update(1)
            last = i == steps - 1
            due = [fn for every, fn in callbacks if self.steps_done % every == 0 or last]
            if due or last or (self.progress and (i + 1) % 50 == 0):
                w_loss = float(window_loss) / window_steps
                w_acc = float(window_correct) / (window_steps * self.config.batch_size)
                bar.set_postfix(loss=f"{w_loss:.3f}", acc=f"{w_acc:.3f}", lr=f"{lr:.3g}")
                if due:
                    event = Event(self.steps_done, self.position, lr, w_loss, w_acc, self)
                    for fn in due:
                        fn(event)
                    self.model.train()
                total_loss += window_loss
                total_correct += window_correct
                window_loss.zero_()
                window_correct.zero_()
                window_steps = 0
        bar.close()
        n_images = steps * self.config.batch_size
        fit = {
            "steps": steps,
            "loss": float(total_loss) / steps if steps else math.nan,
            "accuracy": float(total_correct) / n_images if steps else math.nan,
            "seconds": time.perf_counter() - start,
            "position": self.position,
        }
        self.fits.append(dict(fit))
        return fit


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict:
    """Mean cross-entropy loss and accuracy (fraction in [0, 1]) of ``model`` in eval mode.

    Args:
        x: images ``(N, C, H, W)`` on the model's device; y: labels ``(N,)``.
    """
    if len(x) == 0:
        raise ValueError("evaluate needs at least one example, got an empty tensor")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(xb).float()
        loss += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    return {"loss": float(loss) / len(x), "accuracy": float(correct) / len(x)}


SPLITS = ("test", "train", "val")


def evaluate_splits(model: nn.Module, data: Dataset, max_train: int | None = 10_000,
                    splits: Sequence[str] = SPLITS) -> dict[str, float]:
    """:func:`evaluate` on each split of ``data``, as the flat record the experiments store.

    Args:
        model: the model, on ``data``'s device.
        data: the data set; its training images are evaluated as they are (not augmented).
        max_train: evaluate only the first this many training images (``None``: all), which
            keeps the train metrics cheap on large sets; ``data.eval_size`` lowers it.
        splits: which of ``"test"``, ``"train"``, ``"val"`` to evaluate, in this order of
            keys; ``"val"`` is skipped when ``data`` has no validation split.

    Returns:
        ``{"test_loss", "test_accuracy", "train_loss", "train_accuracy", "val_loss",
        "val_accuracy"}`` for the splits asked for (mean cross-entropy in nats; accuracy as
        a fraction in [0, 1]).
    """
    if isinstance(splits, str) or not set(splits) <= set(SPLITS):
        raise ValueError(f"splits must be a sequence of names from {SPLITS}, got {splits!r}")
    if max_train is not None:
        max_train = checks.integer(max_train, "max_train (or None)", minimum=1)
    if data.eval_size is not None:
        max_train = min(data.eval_size, max_train or data.eval_size)
    tensors = {"test": (data.x_test, data.y_test),
               "train": (data.x_train[:max_train], data.y_train[:max_train]),
               "val": (data.x_val, data.y_val)}
    out = {}
    for split in SPLITS:  # a fixed key order, whatever the order of ``splits``
        x, y = tensors[split]
        if split in splits and x is not None:
            result = evaluate(model, x, y)
            out[f"{split}_loss"], out[f"{split}_accuracy"] = result["loss"], result["accuracy"]
    return out
