"""Piecewise-constant learning-rate schedules indexed by iteration (thesis Section 3.4).

A :class:`Schedule` maps a *schedule position* (an iteration count, not an epoch) to a
learning rate. Past its last boundary it holds its final value forever, which is what
fine-tuning (Algorithm 1) relies on when it keeps training "with the final learning rate".

>>> s = resnet()            # 72,000 iterations: 0.1, /10 at 36k and 54k
>>> s(0), s(35_999), s(36_000), s(54_000), s(10**6)
(0.1, 0.1, 0.01, 0.001, 0.001)
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from . import checks

__all__ = ["Schedule", "constant", "resnet", "vgg", "wrn", "preset", "PRESETS"]


@dataclass(frozen=True)
class Schedule:
    """Learning rate ``values[i]`` for positions in ``[boundaries[i-1], boundaries[i])``.

    Attributes:
        steps: the training length ``T`` this schedule was designed for (iterations).
        boundaries: increasing iterations where the rate changes, each in ``(0, steps]``.
        values: ``len(boundaries) + 1`` learning rates.
    """

    steps: int
    boundaries: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", checks.integer(self.steps, "steps", minimum=1))
        b = tuple(checks.integer(x, "boundaries", minimum=1) for x in self.boundaries)
        if len(self.values) != len(b) + 1:
            raise ValueError(f"values must hold len(boundaries) + 1 = {len(b) + 1} rates, "
                             f"got {len(self.values)}")
        if any(not 0 < x <= self.steps for x in b) or list(b) != sorted(set(b)):
            raise ValueError(
                f"boundaries must increase strictly within (0, steps={self.steps}], got {b}")
        values = tuple(checks.real(v, "values (learning rates)", 0.0) for v in self.values)
        object.__setattr__(self, "boundaries", b)
        object.__setattr__(self, "values", values)

    def __call__(self, position: int) -> float:
        """The learning rate at schedule position ``position`` (>= 0)."""
        if position < 0:
            raise ValueError(f"position must be >= 0, got {position}")
        return self.values[bisect.bisect_right(self.boundaries, position)]

    def scaled(self, steps: int) -> Schedule:
        """The same shape stretched to ``steps`` iterations (boundaries keep their fractions)."""
        bounds = tuple(max(1, round(b * steps / self.steps)) for b in self.boundaries)
        return Schedule(steps, bounds, self.values)

    def scaled_lr(self, factor: float) -> Schedule:
        """The same boundaries with every rate multiplied by ``factor``."""
        return Schedule(self.steps, self.boundaries, tuple(v * factor for v in self.values))


def constant(lr: float, steps: int) -> Schedule:
    """A single rate for ``steps`` iterations (and after)."""
    return Schedule(steps, (), (lr,))


def _decay(lr: float, steps: int, fractions: tuple[float, ...], factor: float) -> Schedule:
    bounds = tuple(round(f * steps) for f in fractions)
    return Schedule(steps, bounds, tuple(lr / factor**i for i in range(len(bounds) + 1)))


def resnet(steps: int = 72_000) -> Schedule:
    """ResNets: 72,000 iterations at 0.1, divided by 10 at 36,000 and 54,000 (Section 3.4)."""
    return _decay(0.1, steps, (0.5, 0.75), 10.0)


def vgg(steps: int = 80_000) -> Schedule:
    """VGG: 80,000 iterations at 0.1, divided by 5 at 32,000, 48,000 and 64,000."""
    return _decay(0.1, steps, (0.4, 0.6, 0.8), 5.0)


def wrn(steps: int = 80_000) -> Schedule:
    """Wide ResNets: 80,000 iterations at 0.2, divided by 5 at 32,000, 48,000 and 64,000."""
    return _decay(0.2, steps, (0.4, 0.6, 0.8), 5.0)


PRESETS = {"resnet": resnet, "vgg": vgg, "wrn": wrn}


def preset(name: str, steps: int | None = None) -> Schedule:
    """A thesis schedule by family name (``resnet``, ``vgg``, ``wrn``), optionally scaled to
    ``steps`` iterations for shorter runs."""
    if name not in PRESETS:
        raise ValueError(f"unknown schedule preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]() if steps is None else PRESETS[name](steps)
