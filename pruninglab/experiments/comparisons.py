"""The labelled sets the notebooks compare: Algorithms 1-4 (notebook 05), sGIMP's rewind
points (06) and the densities TOM is compared at (07)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..core import checks
from . import gimp
from .gimp import GIMPConfig
from .profiles import Profile

__all__ = ["ALGORITHMS", "algorithms", "sgimp_sweep", "compared_densities"]

ALGORITHMS = ("fine-tuning (Alg. 1)", "weight rewinding (Alg. 2)",
              "stable weight rewinding (Alg. 3)", "LR rewinding (Alg. 4)")


def algorithms(train_steps: int, target_density: float, *, K: float = 0.7,
               stable_rewind: float = 0.05) -> dict[str, GIMPConfig]:
    """Algorithms 1-4 of Section 3.1 as GIMP configs, labelled as in :data:`ALGORITHMS`.
    ``stable_rewind``: Algorithm 3's rewind point as a fraction of T (thesis: 0.1 %-7 %;
    at least one step)."""
    T = train_steps
    fraction = checks.real(stable_rewind, "stable_rewind", 0.0, 1.0)
    return dict(zip(ALGORITHMS, (
        gimp.finetune(T, target_density, K=K),
        gimp.weight_rewinding(T, target_density, K=K),
        gimp.stable_weight_rewinding(T, target_density, rewind_to=max(1, round(fraction * T)),
                                     K=K),
        gimp.lr_rewinding(T, target_density, K=K),
    )))


def sgimp_sweep(train_steps: int, percents: Iterable[float], target_density: float, *,
                K: float = 0.7) -> dict[str, GIMPConfig]:
    """sGIMP(X%) for each X in ``percents``, labelled ``"sGIMP(X%)"`` (with ``" = LRR"`` for
    0 and ``" = WR"`` for 100, which are those algorithms' very runs)."""
    names = {0: " = LRR", 100: " = WR"}
    return {f"sGIMP({x:g}%){names.get(x, '')}":
            gimp.sgimp(train_steps, target_density, rewind_fraction=x / 100, K=K)
            for x in percents}


def compared_densities(profile: Profile, wanted: Sequence[float] | None = None,
                       collapse: float | None = None) -> list[float]:
    """The densities notebook 07 compares TOM at, highest first: the iterative levels
    (``K, K**2, ...``) nearest to each of ``wanted`` (default: 10x, 4x and 1x the profile's
    target), so that every method prunes to exactly the same density, and ``collapse``
    (default: ``profile.one_shot_collapse``), where one-shot LR rewinding collapses."""
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
