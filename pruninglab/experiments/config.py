"""What every experiment shares: the model, the data and the training hyperparameters.

A :class:`Setup` is a frozen dataclass (open_lth style): it serializes to a plain dict
(``to_dict``), comes back from one (``from_dict``), and its dict, together with the
algorithm's own config, is what the run store hashes (:mod:`pruninglab.experiments.runs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..core import checks, masking, models, seeding
from ..core import data as data_module
from ..core.schedules import Schedule
from ..core.train import TrainConfig, resolve_device

__all__ = ["Setup", "LATER_FIELDS"]

# Fields of Setup added after runs were stored, with the default that leaves them out of
# ``to_dict`` (and so out of the run store's hash).
LATER_FIELDS = {"eval_size": None}


@dataclass(frozen=True)
class Setup:
    """Model, data set, training and seed of one experiment.

    Attributes:
        model: a name from :func:`pruninglab.core.models.names`.
        dataset: a name from :func:`pruninglab.core.data.names`.
        train: the training hyperparameters (its schedule fixes T).
        seed: the run's seed, in ``[0, 2**63 - 1]``; every random stream (the model's
            initialization, the validation split, the batch orders) derives its own seed
            from it (:func:`pruninglab.core.seeding.derive`).
        val_size, train_size, eval_size: passed to :func:`pruninglab.core.data.load`
            (``eval_size``: evaluate at most this many test and training images, for runs
            that must take seconds, such as tests of the full profile).
        bn_momentum, bn_eps: BN settings in PyTorch's convention (``None``: the family's
            thesis values; see :data:`pruninglab.core.models.BN_SETTINGS`).
        init: weight initialization, ``"torch"`` or ``"keras"``
            (:func:`pruninglab.core.models.init_layer`).
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
    eval_size: int | None = None

    def __post_init__(self) -> None:
        checks.one_of(self.dataset, "dataset", data_module.names())
        object.__setattr__(self, "seed", seeding.check_seed(self.seed))
        checks.one_of(self.init, "init", models.INITS)
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"train must be a pruninglab TrainConfig, got {self.train!r}")
        if not models.is_known(self.model):
            models.create(self.model)  # raises the error that lists the known names
        if self.train_size is not None:
            object.__setattr__(self, "train_size",
                               checks.integer(self.train_size, "train_size", minimum=1))
        if self.eval_size is not None:
            object.__setattr__(self, "eval_size",
                               checks.integer(self.eval_size, "eval_size", minimum=1))
        if self.bn_momentum is not None:
            object.__setattr__(self, "bn_momentum", checks.real(
                self.bn_momentum, "bn_momentum (PyTorch convention)", 0.0, 1.0))
        if self.bn_eps is not None:
            object.__setattr__(self, "bn_eps", checks.real(self.bn_eps, "bn_eps", 0.0,
                                                           low_open=True))

    def replace(self, **changes) -> Setup:
        """A copy with some fields changed (``setup.replace(seed=1)``)."""
        return dataclasses.replace(self, **changes)

    def load_data(self, device: str | torch.device = "cpu") -> data_module.Dataset:
        """The data set on ``device``, split as this setup says (the validation split and
        the training subset drawn from the stream ``derive(seed, "data")``)."""
        return data_module.load(self.dataset, device=device, val_size=self.val_size,
                                train_size=self.train_size, eval_size=self.eval_size,
                                seed=seeding.derive(self.seed, "data"))

    def resolve_data(self, data: data_module.Dataset | None,
                     device: str | torch.device = "auto") -> data_module.Dataset:
        """``data`` checked against this setup, or, when ``None``, the data set loaded onto
        ``device`` (``"auto"``: CUDA if available)."""
        if data is None:
            data = self.load_data(resolve_device(device))
        self.check_data(data)
        return data

    def build_model(self, data: data_module.Dataset) -> nn.Module:
        """A freshly initialized model for ``data`` (on the CPU), its weights drawn from the
        stream ``derive(seed, "init")``; torch's global random state is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeding.derive(self.seed, "init"))
            return models.create(self.model, in_channels=data.in_channels,
                                 num_classes=data.num_classes, input_size=data.input_size,
                                 bn_momentum=self.bn_momentum, bn_eps=self.bn_eps,
                                 init=self.init)

    def masked_model(self, data: data_module.Dataset, exclude: Sequence[str] = (),
                     state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
        """:meth:`build_model` on ``data``'s device with all-True masks on every prunable
        layer ``exclude`` spares, holding ``state`` (a masked state dict, e.g. a
        checkpoint's ``"model"``) when given: what every experiment's stages start from.

        Raises:
            ValueError: a pattern of ``exclude`` matches no layer, or ``exclude`` leaves no
                layer to prune.
        """
        model = self.build_model(data).to(data.device)
        layers = masking.prunable_layers(model)
        masking.add_masks(model, exclude)  # a pattern that matches no layer raises
        if not masking.masked_layers(model):
            raise ValueError(f"exclude={list(exclude)!r} leaves no prunable layer of "
                             f"{self.model!r} to prune; its layers: {', '.join(layers)}")
        if state is not None:
            masking.load_state_dict(model, state)
        return model

    def check_train_steps(self, train_steps: int) -> None:
        """Raise ``ValueError`` unless an experiment's ``train_steps`` (T) is the length of
        this setup's learning-rate schedule (else it would train a schedule of another
        length without a word)."""
        if train_steps != self.train.steps:
            raise ValueError(
                f"config.train_steps={train_steps} differs from the length of the setup's "
                f"learning-rate schedule, setup.train.steps={self.train.steps}; build the "
                "config with train_steps=setup.train.steps (or give the setup a schedule of "
                "that length)")

    def check_data(self, data: data_module.Dataset) -> None:
        """Raise ``ValueError`` if ``data`` was not loaded for this setup."""
        if not isinstance(data, data_module.Dataset):
            raise ValueError(f"data must be a pruninglab Dataset, got {type(data).__name__}")
        if data.name != self.dataset:
            raise ValueError(f"data is {data.name!r} but the setup asks for {self.dataset!r}")
        if data.eval_size != self.eval_size:
            raise ValueError(f"data was loaded with eval_size={data.eval_size} but the setup "
                             f"asks for eval_size={self.eval_size}; load it with "
                             "setup.load_data()")
        data.check()

    def to_dict(self) -> dict:
        """The fields as a plain dict (what the run store hashes). Fields added after runs
        were stored (:data:`LATER_FIELDS`) are left out while they hold their default, so
        that those runs keep their hash."""
        d = dataclasses.asdict(self)
        for name, default in LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Setup:
        train = dict(d["train"])
        train["schedule"] = Schedule(**{k: (tuple(v) if isinstance(v, list) else v)
                                        for k, v in train["schedule"].items()})
        return cls(**{**d, "train": TrainConfig(**train)})
