"""Timing by interleaved rounds, and ratios to a baseline measured in the same run.

Used by the benchmarks (:mod:`pruninglab.scale.bench`) and by the inference comparison of
:mod:`pruninglab.core.efficiency`. On a shared machine absolute times drift with the load; the
ratio of two variants timed in alternation is what can be compared.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pandas as pd
import torch

from . import checks

__all__ = ["Step", "interleaved", "ratio_table", "synchronize"]

Step = Callable[[], None]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (a no-op on the CPU), so a timer sees them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(variants: dict[str, Step], rounds: int, steps: int,
                warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each variant, one value per round.

    Every variant first runs ``warmup`` untimed steps. Then each round times ``steps`` steps
    of every variant in turn, the order rotating from round to round, so that slow drifts
    of a shared machine (other processes, clock changes) hit all variants alike.
    """
    rounds = checks.integer(rounds, "rounds", minimum=1)
    steps = checks.integer(steps, "steps", minimum=1)
    warmup = checks.integer(warmup, "warmup", minimum=0)
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = variants[name]
            tic = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - tic) / steps)
    return times


def ratio_table(times: dict[str, list[float]], baseline: str) -> pd.DataFrame:
    """Median and minimum milliseconds per step of each variant, and the ratio of its
    median to ``baseline``'s (above 1: slower than the baseline)."""
    if baseline not in times:
        raise ValueError(f"baseline {baseline!r} is not among the variants {list(times)}")
    base = statistics.median(times[baseline])
    rows = [{"variant": name, "median_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t),
             "ratio": statistics.median(t) / base} for name, t in times.items()]
    return pd.DataFrame(rows).set_index("variant")
