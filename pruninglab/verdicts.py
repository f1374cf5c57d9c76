"""Reading pruning results as verdicts on the thesis's claims: one rule, used by the
notebooks that make the runs (05, 06) and by the reproduction report (notebook 11).

The rule. Per-seed accuracies (in %) of two methods are compared on the seeds they share;
the *noise allowance* is ``tolerance`` points or the larger standard deviation over seeds,
whichever is larger. Then:

* :func:`better` ("A beats B"): ``reproduced`` when mean(A) - mean(B) exceeds the allowance,
  ``contradicted`` when it is below minus the allowance, ``inconclusive`` in between;
* :func:`at_least` ("A matches or beats B"): ``contradicted`` only when A falls short by
  more than the allowance, else ``reproduced``.

The claim checks take the rows of :func:`pruninglab.gimp.run` (columns ``method``,
``seed``, ``level``, ``test_accuracy``), or run-store frames renamed to those columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

__all__ = ["Finding", "final_accuracy", "at_least", "better", "allowance", "paired",
           "fmt", "sign", "finetune_worst", "lrr_at_least_swr", "early_rise", "width_gap", "table"]


@dataclass(frozen=True)
class Finding:
    """One claim checked on our runs: the claim, our numbers, and the verdict
    (``reproduced``, ``inconclusive``, ``contradicted`` or ``not run yet``)."""

    claim: str
    ours: str
    verdict: str


def final_accuracy(results: pd.DataFrame, by: str = "method") -> dict[str, pd.Series]:
    """Test accuracy (%) at each run's last level: ``{label of by: Series indexed by seed}``
    (empty for no rows)."""
    if not len(results):
        return {}
    missing = {by, "seed", "level", "test_accuracy"} - set(results)
    if missing:
        raise ValueError(f"results lacks the columns {sorted(missing)}; pass gimp.run's rows")
    out = {}
    for label, part in results.groupby(by):
        last = part[part["level"] == part.groupby("seed")["level"].transform("max")]
        out[label] = 100 * last.set_index("seed")["test_accuracy"]
    return out


def paired(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Two per-seed series restricted to their common seeds, when they share any, so that a
    method run on one seed is compared with the same seed of the other."""
    common = a.index.intersection(b.index)
    return (a.loc[common], b.loc[common]) if len(common) else (a, b)


def allowance(*series: pd.Series, tolerance: float) -> float:
    """The noise allowance: ``tolerance`` or the largest standard deviation over seeds."""
    spreads = [s.std(ddof=1) for s in series if len(s) > 1]
    return max([tolerance] + [x for x in spreads if not math.isnan(x)])


def sign(gap: float, allow: float) -> str:
    """``reproduced`` above ``allow``, ``contradicted`` below ``-allow``, else ``inconclusive``."""
    if gap > allow:
        return "reproduced"
    return "contradicted" if gap < -allow else "inconclusive"


def better(a: pd.Series, b: pd.Series, tolerance: float) -> str:
    """The verdict on "a beats b" (see the module's rule)."""
    a, b = paired(a, b)
    return sign(a.mean() - b.mean(), allowance(a, b, tolerance=tolerance))


def at_least(a: pd.Series, b: pd.Series, tolerance: float) -> str:
    """The verdict on "a matches or beats b": contradicted only beyond the allowance."""
    a, b = paired(a, b)
    short = a.mean() < b.mean() - allowance(a, b, tolerance=tolerance)
    return "contradicted" if short else "reproduced"


def fmt(values: pd.Series) -> str:
    """``"93.10"`` for one seed, ``"93.10 ± 0.20 (n=3)"`` for several."""
    if len(values) == 0:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f} (n={len(values)})"


def _iterative(final: Mapping[str, pd.Series]) -> dict[str, pd.Series]:
    return {m: v for m, v in final.items() if not m.startswith("one_shot")}


def finetune_worst(final: Mapping[str, pd.Series], tolerance: float) -> Finding:
    """Figure 3.1: fine-tuning is the least accurate way to retrain (every rewinding method
    is at least as accurate at the target density)."""
    claim = "Fine-tuning is the least accurate way to retrain"
    by = _iterative(final)
    others = {m: v for m, v in by.items() if m != "finetune"}
    if "finetune" not in by or len(others) < 2:
        return Finding(claim, "—", "not run yet")
    worst_other = min(others.values(), key=lambda v: v.mean())
    ours = "; ".join(f"{m} {fmt(v)}" for m, v in sorted(by.items()))
    return Finding(claim, ours, at_least(worst_other, by["finetune"], tolerance))


def lrr_at_least_swr(final: Mapping[str, pd.Series], tolerance: float) -> Finding:
    """Figures 3.1-3.2: learning-rate rewinding matches or beats stable weight rewinding."""
    claim = "LR rewinding matches or beats stable weight rewinding (small networks)"
    swr = next((m for m in final if m.startswith("stable_weight_rewinding")), None)
    if "lr_rewinding" not in final or swr is None:
        return Finding(claim, "—", "not run yet")
    ours = f"LRR {fmt(final['lr_rewinding'])}; {swr} {fmt(final[swr])}"
    return Finding(claim, ours, at_least(final["lr_rewinding"], final[swr], tolerance))


def early_rise(results: pd.DataFrame, tolerance: float) -> Finding:
    """Figure 3.1: rewinding methods first gain accuracy over the dense network at low
    compression (the best of levels 1-3 of every rewinding method, per seed, beats level 0)."""
    claim = "Rewinding methods first gain accuracy at low compression"
    if not len(results):
        return Finding(claim, "—", "not run yet")
    rewinding = results[(results["method"] != "finetune")
                        & ~results["method"].str.startswith("one_shot")]
    if not len(rewinding):
        return Finding(claim, "—", "not run yet")
    dense = 100 * rewinding[rewinding["level"] == 0].groupby("seed")["test_accuracy"].mean()
    early = rewinding[rewinding["level"].between(1, 3)]
    if not len(early):
        return Finding(claim, "—", "not run yet")
    best = 100 * early.groupby("seed")["test_accuracy"].max()
    gain = best.mean() - dense.mean()
    ours = f"dense {fmt(dense)}; best of levels 1-3 {fmt(best)} ({gain:+.2f})"
    return Finding(claim, ours, better(best, dense, tolerance))


def width_gap(wider: pd.DataFrame, narrower: pd.DataFrame, names: tuple[str, str],
              tolerance: float) -> Finding:
    """Figures 3.3-3.6: learning-rate rewinding degrades on wide networks where sGIMP(75%)
    does not, so sGIMP(75%) - LRR at the target is larger for the wider network.

    Args:
        wider, narrower: :func:`pruninglab.gimp.run` rows of both methods for each network.
        names: the two networks' names, for the text.
    """
    claim = "LR rewinding degrades on wide networks; sGIMP(50-98%) does not"
    gaps = []
    for frame in (wider, narrower):
        final = final_accuracy(frame)
        if not {"lr_rewinding", "sgimp(75%)"} <= set(final):
            return Finding(claim, "—", "not run yet")
        gap = (final["sgimp(75%)"] - final["lr_rewinding"]).dropna()
        gaps.append(gap)
    ours = (f"sGIMP(75%) - LRR: {gaps[0].mean():+.2f} ({names[0]}), {gaps[1].mean():+.2f} "
            f"({names[1]}), seeds {len(gaps[0])} and {len(gaps[1])}")
    return Finding(claim, ours, better(gaps[0], gaps[1], tolerance))


def table(findings: list[Finding]) -> pd.DataFrame:
    """Findings as a table: ``claim``, ``ours``, ``verdict``."""
    return pd.DataFrame([f.__dict__ for f in findings])
