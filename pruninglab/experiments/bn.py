"""Batch-normalization settings and iterative pruning (thesis Sections 2.3 and 3.3.3).

The thesis found that BN's momentum and epsilon -- irrelevant for dense networks -- change
iterative pruning at high sparsity (Figure 3.12, VGG19): mu=0.99, eps=1e-3 stayed accurate
where mu=0.997, eps=1e-5 did not. It states mu in TensorFlow's convention (the weight of
the *old* running value); :func:`pruninglab.core.models.tf_to_torch_momentum` converts.
"""

from __future__ import annotations

import pandas as pd

from ..core.models import tf_to_torch_momentum
from . import gimp, gimp_runs
from .config import Setup

__all__ = ["THESIS_SETTINGS", "compare"]

# Figure 3.12's two settings, TensorFlow convention: label -> (mu, eps).
THESIS_SETTINGS: dict[str, tuple[float, float]] = {
    "mu=0.99, eps=1e-3": (0.99, 1e-3),
    "mu=0.997, eps=1e-5": (0.997, 1e-5),
}


def compare(
    setup: Setup,
    config: gimp.GIMPConfig,
    settings: dict[str, tuple[float, float]] | None = None,
    seeds: list[int] | tuple[int, ...] = (0,),
    **run_kwargs,
) -> pd.DataFrame:
    """The same GIMP run under several BN settings.

    Args:
        setup: a setup whose model has BN layers.
        config: the pruning algorithm (thesis: iterative, to high sparsity).
        settings: ``{label: (tf_momentum, eps)}``; default :data:`THESIS_SETTINGS`.
        seeds: replicates.
        run_kwargs: passed to ``gimp.run`` (``data``, ``store``, ...).

    Returns:
        All levels of all runs, with a ``bn`` column holding the label.
    """
    variants = {label: (setup.replace(bn_momentum=tf_to_torch_momentum(tf_momentum), bn_eps=eps),
                        config)
                for label, (tf_momentum, eps) in (settings or THESIS_SETTINGS).items()}
    return gimp_runs.run_many(variants, seeds, label="bn", **run_kwargs)
