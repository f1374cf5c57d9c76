"""Reading pruning results as verdicts on the thesis's claims: one rule, used by the
notebooks that make the runs (05, 06) and by the reproduction report (notebook 11).

The rule. A claim compares two methods A and B through per-seed test accuracies (in %).
:func:`compare` gives the difference mean(A) - mean(B) with a 95 % t-interval:

* **paired** where the runs share at least two seeds (the interval of the per-seed
  differences: a seed's data order and initialization cancel out);
* **Welch** where they do not but each side has at least two seeds;
* **none** with fewer seeds: one seed cannot tell a difference from the noise (on 1,000
  test images one run's accuracy alone has a standard error near 0.8 points).

A *tolerance band* of ``tolerance`` points around zero marks differences too small to
matter. Then, for "A beats B" (:func:`better`):

* ``reproduced`` when the whole interval lies above ``+tolerance``;
* ``contradicted`` when the whole interval lies below ``-tolerance``;
* ``inconclusive`` otherwise (the interval reaches into the band, or crosses it).

For "A matches or beats B" (:func:`at_least`) the interval only has to lie above
``-tolerance`` to reproduce the claim; it is contradicted when it lies below ``-tolerance``.
With three seeds a 95 % t-interval is about 2.5 standard errors wide on each side, so an
honest verdict on a small effect is often ``inconclusive``.

The claim checks take the rows of :func:`pruninglab.experiments.gimp_runs.run` (columns ``method``,
``seed``, ``level``, ``test_accuracy``), or run-store frames renamed to those columns.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from scipy import stats

__all__ = ["LEVEL", "Comparison", "Judgement", "Finding", "compare", "judge", "better",
           "at_least", "combine", "ranking", "final_accuracy", "paired", "fmt",
           "finetune_worst", "lrr_at_least_swr", "early_rise", "width_gap", "table"]

LEVEL = 0.95  # the confidence level of every interval


@dataclass(frozen=True)
class Comparison:
    """mean(A) - mean(B) in accuracy points with its confidence interval.

    Attributes:
        difference: the difference of the means (points).
        low, high: the interval's ends (points; infinite when ``kind`` is ``"none"``).
        seeds: the seeds behind it (pairs for a paired interval, else the smaller side).
        kind: ``"paired"``, ``"Welch"``, ``"one-sample"`` (A against a fixed number) or
            ``"none"`` (too few seeds for an interval).
        level: the confidence level.
    """

    difference: float
    low: float
    high: float
    seeds: int
    kind: str
    level: float = LEVEL

    def __str__(self) -> str:
        if self.kind == "none":
            return f"{self.difference:+.2f} (n={self.seeds}: too few seeds for an interval)"
        return (f"{self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}] "
                f"({self.level:.0%} {self.kind} t, n={self.seeds})")


@dataclass(frozen=True)
class Judgement:
    """A verdict and the comparisons it rests on."""

    verdict: str
    comparisons: tuple[Comparison, ...] = ()

    @property
    def seeds(self) -> int | None:
        """The fewest seeds behind any of its comparisons (``None`` without any)."""
        return min((c.seeds for c in self.comparisons), default=None)

    @property
    def interval(self) -> str:
        """Its comparisons as text (``"—"`` without any)."""
        return "; ".join(map(str, self.comparisons)) or "—"


@dataclass(frozen=True)
class Finding:
    """One claim checked on our runs: the claim, our numbers, the verdict
    (``reproduced``, ``inconclusive``, ``contradicted`` or ``not run yet``), the fewest seeds
    behind it and the interval(s) of the difference it rests on."""

    claim: str
    ours: str
    verdict: str
    seeds: int | None = None
    interval: str = "—"

    @classmethod
    def of(cls, claim: str, ours: str, judgement: Judgement) -> Finding:
        return cls(claim, ours, judgement.verdict, judgement.seeds, judgement.interval)


def paired(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Two per-seed series restricted to their common seeds, when they share any, so that a
    method run on one seed is compared with the same seed of the other."""
    common = a.index.intersection(b.index)
    return (a.loc[common], b.loc[common]) if len(common) else (a, b)


def _t(level: float, df: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2, df))


def compare(a: pd.Series, b: pd.Series | float, level: float = LEVEL) -> Comparison:
    """The difference mean(a) - mean(b) and its ``level`` t-interval (see the module's rule).

    Args:
        a: per-seed accuracies (points), indexed by seed.
        b: the same for the other method, or a fixed number (a published accuracy): then
            the interval is ``a``'s one-sample interval shifted by it.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    a = a.dropna()
    if not isinstance(b, pd.Series):
        return _interval(a - float(b), "one-sample", level)
    b = b.dropna()
    common = a.index.intersection(b.index)
    if len(common) >= 2:
        return _interval(a.loc[common] - b.loc[common], "paired", level)
    difference = a.mean() - b.mean()
    if len(a) < 2 or len(b) < 2:
        return Comparison(difference, -math.inf, math.inf, min(len(a), len(b)), "none", level)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison(difference, difference, difference, min(len(a), len(b)), "Welch",
                          level)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = _t(level, df) * se
    return Comparison(difference, difference - half, difference + half, min(len(a), len(b)),
                      "Welch", level)


def _interval(d: pd.Series, kind: str, level: float) -> Comparison:
    n = len(d)
    if n < 2:
        mean = d.mean() if n else math.nan
        return Comparison(mean, -math.inf, math.inf, n, "none", level)
    half = _t(level, n - 1) * d.std(ddof=1) / math.sqrt(n)
    return Comparison(d.mean(), d.mean() - half, d.mean() + half, n, kind, level)


def judge(comparison: Comparison, tolerance: float, claim: str = "better") -> Judgement:
    """The verdict on ``comparison`` against the band ``[-tolerance, +tolerance]``.

    Args:
        claim: ``"better"`` (A beats B: reproduced above the band) or ``"at least"`` (A
            matches or beats B: reproduced above ``-tolerance``).
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 accuracy points, got {tolerance!r}")
    if claim not in ("better", "at least"):
        raise ValueError(f"claim must be 'better' or 'at least', got {claim!r}")
    floor = tolerance if claim == "better" else -tolerance
    if comparison.low > floor:
        verdict = "reproduced"
    elif comparison.high < -tolerance:
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    return Judgement(verdict, (comparison,))


def better(a: pd.Series, b: pd.Series | float, tolerance: float) -> Judgement:
    """The verdict on "a beats b" (see the module's rule)."""
    return judge(compare(a, b), tolerance, "better")


def at_least(a: pd.Series, b: pd.Series | float, tolerance: float) -> Judgement:
    """The verdict on "a matches or beats b" (see the module's rule)."""
    return judge(compare(a, b), tolerance, "at least")


def combine(judgements: Sequence[Judgement]) -> Judgement:
    """A claim made of several comparisons: ``contradicted`` if any part is, ``reproduced``
    if every part is, else ``inconclusive``."""
    if not judgements:
        raise ValueError("combine needs at least one judgement")
    verdicts = {j.verdict for j in judgements}
    verdict = ("contradicted" if "contradicted" in verdicts
               else "reproduced" if verdicts == {"reproduced"} else "inconclusive")
    return Judgement(verdict, tuple(c for j in judgements for c in j.comparisons))


def ranking(ordered: Mapping[str, pd.Series], tolerance: float,
            ties: Collection[str] = ()) -> Judgement:
    """The verdict on a ranking (best first): the rule on each adjacent pair, combined.

    Args:
        ordered: ``{name: per-seed accuracies}``, most accurate first.
        ties: names that the claim only says match the entry above them ("at least"
            rather than "better").
    """
    names = list(ordered)
    if len(names) < 2:
        raise ValueError(f"a ranking needs at least two entries, got {names}")
    unknown = set(ties) - set(names)
    if unknown:
        raise ValueError(f"ties names entries that are not ranked: {sorted(unknown)}")
    return combine([(at_least if lo in ties else better)(ordered[hi], ordered[lo], tolerance)
                    for hi, lo in zip(names, names[1:])])


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


def fmt(values: pd.Series) -> str:
    """``"93.10"`` for one seed, ``"93.10 ± 0.20 (n=3)"`` (mean ± standard deviation over
    seeds) for several."""
    if len(values) == 0:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f} (n={len(values)})"


def _iterative(final: Mapping[str, pd.Series]) -> dict[str, pd.Series]:
    return {m: v for m, v in final.items() if not m.startswith("one_shot")}


def finetune_worst(final: Mapping[str, pd.Series], tolerance: float) -> Finding:
    """Figure 3.1: fine-tuning is the least accurate way to retrain (the least accurate
    rewinding method matches or beats it at the target density)."""
    claim = "Fine-tuning is the least accurate way to retrain"
    by = _iterative(final)
    others = {m: v for m, v in by.items() if m != "finetune"}
    if "finetune" not in by or len(others) < 2:
        return Finding(claim, "—", "not run yet")
    worst_other = min(others.values(), key=lambda v: v.mean())
    ours = "; ".join(f"{m} {fmt(v)}" for m, v in sorted(by.items()))
    return Finding.of(claim, ours, at_least(worst_other, by["finetune"], tolerance))


def lrr_at_least_swr(final: Mapping[str, pd.Series], tolerance: float) -> Finding:
    """Figures 3.1-3.2: learning-rate rewinding matches or beats stable weight rewinding."""
    claim = "LR rewinding matches or beats stable weight rewinding (small networks)"
    swr = next((m for m in final if m.startswith("stable_weight_rewinding")), None)
    if "lr_rewinding" not in final or swr is None:
        return Finding(claim, "—", "not run yet")
    ours = f"LRR {fmt(final['lr_rewinding'])}; {swr} {fmt(final[swr])}"
    return Finding.of(claim, ours, at_least(final["lr_rewinding"], final[swr], tolerance))


def early_rise(results: pd.DataFrame, tolerance: float) -> Finding:
    """Figure 3.1: rewinding methods first gain accuracy over the dense network at low
    compression (per seed, the best of levels 1-3 over the rewinding methods beats level 0;
    the best of several is biased upwards by the noise, which the interval cannot remove)."""
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
    return Finding.of(claim, ours, better(best, dense, tolerance))


def width_gap(wider: pd.DataFrame, narrower: pd.DataFrame, names: tuple[str, str],
              tolerance: float) -> Finding:
    """Figures 3.3-3.6: learning-rate rewinding degrades on wide networks where sGIMP(75%)
    does not, so sGIMP(75%) - LRR at the target is larger for the wider network.

    Args:
        wider, narrower: :func:`pruninglab.experiments.gimp_runs.run` rows of both methods for
            each network.
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
    return Finding.of(claim, ours, better(gaps[0], gaps[1], tolerance))


def table(findings: list[Finding]) -> pd.DataFrame:
    """Findings as a table: ``claim``, ``ours``, ``verdict``, ``seeds``, ``interval``."""
    return pd.DataFrame([f.__dict__ for f in findings])
