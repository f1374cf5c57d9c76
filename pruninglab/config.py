"""What every experiment shares: the model, the data and the training hyperparameters.

A :class:`Setup` is a frozen dataclass (open_lth style): it serializes to a plain dict
(``to_dict``), comes back from one (``from_dict``), and its dict, together with the
algorithm's own config, is what the run store hashes (:mod:`pruninglab.runs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from . import data as data_module
from . import models
from .schedules import Schedule
from .train import TrainConfig

__all__ = ["Setup"]


@dataclass(frozen=True)
class Setup:
    """Model, data set, training and seed of one experiment.

    Attributes:
        model: a name from :func:`pruninglab.models.names`.
        dataset: a name from :func:`pruninglab.data.names`.
        train: the training hyperparameters (its schedule fixes T).
        seed: initializes the model; the batch streams derive their seeds from it.
        val_size, train_size: passed to :func:`pruninglab.data.load`.
        bn_momentum, bn_eps: BN settings in PyTorch's convention (``None``: the family's
            thesis values; see :data:`pruninglab.models.BN_SETTINGS`).
        init: weight initialization, ``"torch"`` or ``"keras"``
            (:func:`pruninglab.models.init_layer`).
    """

    model: str
    dataset: str
    train: TrainConfig
    seed: int = 0
    val_size: int | float = 0
    train_size: int | None = None
    bn_momentum: float | None = None
    bn_eps: float | None = None
    init: str = "torch"

    def __post_init__(self) -> None:
        if self.dataset not in data_module.names():
            raise ValueError(f"dataset must be one of {data_module.names()}, got {self.dataset!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.init not in models.INITS:
            raise ValueError(f"init must be one of {models.INITS}, got {self.init!r}")
        if not models.is_known(self.model):
            models.create(self.model)  # raises the error that lists the known names

    def replace(self, **changes) -> Setup:
        """A copy with some fields changed (``setup.replace(seed=1)``)."""
        return dataclasses.replace(self, **changes)

    def load_data(self, device: str | torch.device = "cpu") -> data_module.Dataset:
        """The data set on ``device``, split as this setup says."""
        return data_module.load(self.dataset, device=device, val_size=self.val_size,
                                train_size=self.train_size, seed=self.seed)  # fmt: skip

    def build_model(self, data: data_module.Dataset) -> nn.Module:
        """A freshly initialized model for ``data``, its weights drawn from ``seed``."""
        torch.manual_seed(self.seed)
        return models.create(self.model, in_channels=data.in_channels,
                             num_classes=data.num_classes, input_size=data.input_size,
                             bn_momentum=self.bn_momentum, bn_eps=self.bn_eps,
                             init=self.init)  # fmt: skip

    def check_data(self, data: data_module.Dataset) -> None:
        """Raise ``ValueError`` if ``data`` was not loaded for this setup."""
        if data.name != self.dataset:
            raise ValueError(f"data is {data.name!r} but the setup asks for {self.dataset!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Setup:
        train = dict(d["train"])
        train["schedule"] = Schedule(**{k: (tuple(v) if isinstance(v, list) else v)
                                        for k, v in train["schedule"].items()})  # fmt: skip
        return cls(**{**d, "train": TrainConfig(**train)})
