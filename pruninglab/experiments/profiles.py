"""Run profiles: how big an experiment a notebook runs (docs/design.md, "Profiles").

* ``smoke`` -- seconds, for tests: scikit-learn's 8x8 digits, a few dozen steps.
* ``quick`` -- minutes on a laptop CPU: the thesis MLP on the embedded ``mnist5k``, long
  enough that the effect each notebook is about shows.
* ``gpu`` -- minutes on one GPU: the thesis's CIFAR-10 architectures (ResNet-20, WRN-16-8,
  VGG19) on Fashion-MNIST padded to 32x32 (``fashion-mnist-32``), 1,000 steps per training,
  so that the claims about width and about VGG's rewinding get runs of the networks they
  are about. Not CIFAR-10: notebook 11 marks its verdicts so.
* ``full`` -- the thesis's settings (Section 3.4) on a GPU: CIFAR-10, ResNet/WRN/VGG,
  72,000-80,000 iterations per training, batch 128, pruning step 30%.

``PRUNINGLAB_PROFILE`` in the environment overrides the profile a notebook asks for, because
nbval cannot pass parameters.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..core import checks, models, schedules
from ..core.train import TrainConfig
from .config import Setup

__all__ = ["Profile", "PROFILES", "GPU_RUNS", "get", "resolve", "thesis_train_config"]


def _family(model: str) -> str:
    """The thesis schedule a model trains with: its family's, the ResNet one for the rest."""
    family = models.family(model)
    return "resnet" if family == "other" else family


def thesis_train_config(model: str, steps: int | None = None, batch_size: int = 128,
                        compile: bool = False) -> TrainConfig:
    """Section 3.4's hyperparameters for ``model``'s family, optionally scaled to ``steps``:
    ResNets 72k iterations, LR 0.1 /10 at 50% and 75%, L2 1e-4; VGG 80k, LR 0.1 /5 at 40%,
    60%, 80%, L2 1e-4; WRN 80k, LR 0.2 /5 at the same points, L2 2e-4. Other models (MLPs,
    the small conv net) use the ResNet shape. ``compile`` turns on ``torch.compile`` (it
    only acts on CUDA)."""
    family = _family(model)
    l2 = 2e-4 if family == "wrn" else 1e-4
    return TrainConfig(schedules.preset(family, steps), batch_size=batch_size, l2=l2,
                       compile=compile)


@dataclass(frozen=True)
class Profile:
    """Defaults of one profile; notebooks read their sizes from here.

    Attributes:
        dataset, model: what the notebooks train by default.
        train_steps: T, iterations of one full training.
        batch_size: images per step.
        target_density: where iterative pruning stops.
        density_multiplier: K, the density kept per pruning step (thesis: 0.7).
        seeds: replicates for plots with a spread.
        eval_every: steps between live-curve points.
        thesis_lengths: T follows the model's family as in Section 3.4 (72,000 for ResNets,
            80,000 for VGG and WRN) instead of ``train_steps``.
        compile: train with ``torch.compile`` (CUDA only; the full profile's fast path).
        wide_model, narrow_model: the two networks notebook 06 compares for the thesis's
            width claim (Figure 3.6: WRN-16-8 against ResNet-20 on CIFAR-10).
        thesis_networks: notebooks 07, 09 and 10 train the thesis's CIFAR-10 networks (VGG19,
            the ResNets, WRN-16-8) where the thesis does, instead of the MLPs.
        eval_size: evaluate at most this many test and training images (``None``: every
            test image); only an override for tests of the large profiles sets it.
        one_shot_collapse: a density (a level ``K**n``) below the target where one-shot LR
            rewinding collapses on this profile's data: Figure 3.10's regime, where the
            thesis's "TOM matches or beats one-shot" was made (VGG19 on CIFAR-10, one-shot
            LRR "fails to find any trainable networks under 95 % sparsity"). Notebook 07
            compares TOM there too. ``None``: the profile's own densities are already in
            that regime (full: 0.01-0.001 on VGG19).
    """

    name: str
    dataset: str
    model: str
    train_steps: int
    batch_size: int
    target_density: float
    density_multiplier: float
    seeds: tuple[int, ...]
    eval_every: int
    thesis_lengths: bool = False
    compile: bool = False
    one_shot_collapse: float | None = None
    wide_model: str = "mlp"
    narrow_model: str = "lenet300"
    thesis_networks: bool = False
    eval_size: int | None = None

    def steps_for(self, model: str | None = None) -> int:
        """T for ``model`` (default: the profile's model) in this profile."""
        if self.thesis_lengths:
            return schedules.preset(_family(model or self.model)).steps
        return self.train_steps

    def setup(self, model: str | None = None, dataset: str | None = None, seed: int = 0,
              train_steps: int | None = None, **changes) -> Setup:
        """A :class:`~pruninglab.experiments.config.Setup` with this profile's defaults; any
        argument overrides them (``changes`` go to ``Setup``: ``bn_momentum``, ``val_size``,
        ...)."""
        model = model or self.model
        steps = self.steps_for(model) if train_steps is None else train_steps  # 0 is an error
        train = thesis_train_config(model, steps, self.batch_size, self.compile)
        changes.setdefault("eval_size", self.eval_size)
        return Setup(model=model, dataset=dataset or self.dataset, train=train, seed=seed,
                     **changes)

    def replace(self, **changes) -> Profile:
        return dataclasses.replace(self, **changes)

    def shrunk(self, train_steps: int | None = None, batch_size: int | None = None,
               target_density: float | None = None, eval_size: int | None = None) -> Profile:
        """This profile with its sizes overridden (``None`` keeps one): what a notebook's
        ``TRAIN_STEPS``, ``BATCH_SIZE``, ``TARGET_DENSITY`` and ``EVAL_SIZE`` parameters do,
        so that a test runs the full profile's code paths in seconds. ``train_steps`` sets
        T for every model (the thesis's per-family lengths are off)."""
        changes: dict = {}
        if train_steps is not None:
            changes.update(train_steps=checks.integer(train_steps, "train_steps", minimum=1),
                           thesis_lengths=False)
        if batch_size is not None:
            changes["batch_size"] = checks.integer(batch_size, "batch_size", minimum=1)
        if target_density is not None:
            changes["target_density"] = checks.real(target_density, "target_density", 0.0, 1.0,
                                                    low_open=True, high_open=True)
        if eval_size is not None:
            changes["eval_size"] = checks.integer(eval_size, "eval_size", minimum=1)
        return self.replace(**changes)


PROFILES: dict[str, Profile] = {
    # smoke: 0.7**5 only runs notebook 07's code path (one-shot LRR does not collapse on
    # the digits in 40 steps; docs/measurements.md, "Collapse densities").
    "smoke": Profile("smoke", "digits", "mlp", train_steps=40, batch_size=64,
                     target_density=0.3, density_multiplier=0.7, seeds=(0,), eval_every=10,
                     one_shot_collapse=0.7**5),
    # quick: one-shot LRR on the MLP collapses at 0.7**18 (docs/measurements.md).
    "quick": Profile("quick", "mnist5k", "mlp", train_steps=400, batch_size=128,
                     target_density=0.01, density_multiplier=0.7, seeds=(0, 1, 2),
                     eval_every=50, one_shot_collapse=0.7**18),
    # gpu: sized for about 5 minutes on one H200 with several trainings on the GPU at once
    # (bench concurrent): notebook 06 with MODEL vgg19 makes Figure 3.5's sGIMP(X %) runs and
    # Figure 3.6's width pair, 27 runs x 6 trainings x 1,000 steps. T = 1,000 (two epochs)
    # keeps Section 3.4's schedule shapes, scaled; 0.7**5 = 0.168 is five pruning levels.
    # No torch.compile: its start (a minute per model and process) outweighs 1,000 steps.
    "gpu": Profile("gpu", "fashion-mnist-32", "resnet20", train_steps=1_000, batch_size=128,
                   target_density=0.7**5, density_multiplier=0.7, seeds=(0, 1, 2),
                   eval_every=100, wide_model="wrn-16-8", narrow_model="resnet20",
                   thesis_networks=True),
    "full": Profile("full", "cifar10", "resnet20", train_steps=72_000, batch_size=128,
                    target_density=0.001, density_multiplier=0.7, seeds=(0, 1, 2),
                    eval_every=2_000, thesis_lengths=True, compile=True,
                    wide_model="wrn-16-8", narrow_model="resnet20", thesis_networks=True),
}


# The gpu profile's runs, model -> the sGIMP rewind fractions it is run with: notebook 06
# with MODEL vgg19 makes them, and so does the packaged sweep `gpu` (a test checks that they
# agree). Figure 3.5: sGIMP(X %) on VGG19, X from 0 % (LR rewinding) to 100 % (weight
# rewinding); Figure 3.6: LR rewinding against sGIMP(75 %) on the wide and the narrow network.
GPU_RUNS: dict[str, tuple[float, ...]] = {
    "vgg19": (0.0, 0.25, 0.5, 0.75, 1.0),
    "wrn-16-8": (0.0, 0.75),
    "resnet20": (0.0, 0.75),
}


def get(name: str) -> Profile:
    """The profile called ``name`` (``smoke``, ``quick``, ``gpu`` or ``full``)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def resolve(name: str) -> Profile:
    """The profile to use: ``$PRUNINGLAB_PROFILE`` if set, else ``name``."""
    chosen = os.environ.get("PRUNINGLAB_PROFILE")
    if chosen and chosen not in PROFILES:
        raise ValueError(f"PRUNINGLAB_PROFILE={chosen!r} is not a profile; known profiles: "
                         f"{', '.join(PROFILES)} (or unset it)")
    return get(chosen or name)
