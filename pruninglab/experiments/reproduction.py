"""Every claim of the thesis, checked against the run store (notebook 11).

:func:`evidence` reads whatever runs the stores hold (the runs notebooks 05-10 made, the
CPU-scale records committed in ``pruninglab/results/``, full-profile runs copied from a GPU
box) and :func:`claims` turns them into one row per claim of the thesis: what we ran, our
numbers beside the thesis's, and a verdict:

* ``reproduced`` -- the thesis's direction holds beyond the noise;
* ``contradicted`` -- the opposite holds beyond the noise;
* ``inconclusive`` -- neither: the interval reaches into the tolerance band;
* ``not testable at this scale`` -- the claim is about networks or data the profile does not
  run (e.g. Wide ResNets on CIFAR-10); our nearest numbers are still shown;
* ``not run yet`` -- the runs the claim needs are not in the store.

"Beyond the noise" is the rule of :mod:`pruninglab.experiments.verdicts`: the 95 % t-interval of the
difference over seeds (paired where the runs share seeds, Welch's otherwise) lies wholly on
one side of a band of ``tolerance`` accuracy points (default 0.3). Each row says how many
seeds stand behind it, the interval, and the test-set size behind each seed's accuracy.
One seed gives no interval and so never a verdict. A deterministic count (Table 1.1)
needs no seeds. Nothing here trains: the claims read stored records only, so the notebook
renders in seconds.

In the ``smoke`` profile (40 training steps on 8x8 digits, there to test the code) every
verdict carries :data:`SMOKE_NOTE`: such runs say nothing about the thesis.
:func:`verdict_counts` counts the verdicts with or without it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import data, efficiency, models, schedules
from . import bn, gimp, profiles, runs, shuffle, tom_runs, verdicts
from .profiles import Profile
from .verdicts import at_least, better, fmt

__all__ = ["VERDICTS", "SMOKE_NOTE", "DATA_NOTES", "Evidence", "evidence", "claims", "beside",
           "plain_verdict", "verdict_counts", "packaged_results", "RENDA_2020", "FULL_RECIPE",
           "MEASURED_H200", "gpu_hours", "gpu_recipe"]

VERDICTS = ("reproduced", "inconclusive", "contradicted", "not testable at this scale",
            "not run yet")

# Appended to every verdict of the smoke profile, whose runs test the code, not the thesis.
SMOKE_NOTE = "smoke run: tests the code, not a finding"

# Renda et al. 2020 on CIFAR-10, the numbers the thesis reproduces (Section 3.2):
# model -> (dense accuracy %, {density: accuracy % with LR rewinding}).
RENDA_2020 = {
    "resnet20": (91.71, {0.107: 91.01}),
    "resnet56": (93.46, {0.107: 93.56, 0.023: 91.26}),
}


def packaged_results(profile: str = "quick") -> Path:
    """The folder of committed CPU-scale run records for ``profile`` (JSON only)."""
    return Path(str(resources.files("pruninglab.experiments") / "results" / profile))


@dataclass
class Evidence:
    """The stored runs one profile's claims are judged on.

    Attributes:
        profile: the profile whose sizes (data set, model, T) select the runs.
        gimp, tom, shuffle, at_init: ``runs.load`` frames of each kind (possibly empty).
    """

    profile: Profile
    gimp: pd.DataFrame
    tom: pd.DataFrame
    shuffle: pd.DataFrame
    at_init: pd.DataFrame

    def runs_on_dataset(self) -> int:
        """How many stored runs of any kind are on the profile's data set."""
        return sum(frame.loc[frame["setup.dataset"] == self.profile.dataset, "run"].nunique()
                   for frame in (self.gimp, self.tom, self.shuffle, self.at_init) if len(frame))

    def iterative(self, model: str | None = None, dataset: str | None = None,
                  bn: bool = False) -> pd.DataFrame:
        """GIMP runs of this profile's training length for ``model`` on ``dataset`` (default:
        the profile's), with the thesis's default BN settings unless ``bn``."""
        df = _select(self.gimp, self.profile, model, dataset)
        if len(df) and not bn:
            df = df[df["setup.bn_momentum"].isna() & df["setup.bn_eps"].isna()]
        return df


def _select(df: pd.DataFrame, profile: Profile, model: str | None, dataset: str | None,
            init: str | None = "torch", whole_training_set: bool = True) -> pd.DataFrame:
    """Runs of ``model`` on ``dataset`` with the profile's T (and ``init``, unless ``None``),
    trained on all of its training set unless ``whole_training_set`` is false."""
    if not len(df):
        return df
    keep = ((df["setup.model"] == (model or profile.model))
            & (df["setup.dataset"] == (dataset or profile.dataset))
            & (df["setup.train.schedule.steps"] == profile.steps_for(model or profile.model)))
    if "setup.train_size" in df and whole_training_set:
        keep &= df["setup.train_size"].isna()
    if init is not None:
        keep &= df["setup.init"] == init
    return df[keep]


def evidence(profile: Profile, stores: Sequence[str | os.PathLike | None]) -> Evidence:
    """Load every run of every kind from ``stores`` (``None`` = the default store); a run
    folder present in several stores is read once (the first store wins)."""

    def load(kind: str) -> pd.DataFrame:
        frames = [runs.load(s, kind=kind) for s in stores]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        seen, out = set(), []
        for frame in frames:
            fresh = frame[~frame["run"].isin(seen)]
            seen |= set(frame["run"])
            out.append(fresh)
        return pd.concat(out, ignore_index=True)

    return Evidence(profile, load("gimp"), load("tom"), load("shuffle"), load("at_init"))


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _as_results(df: pd.DataFrame) -> pd.DataFrame:
    """Run-store GIMP rows with the columns of :func:`~pruninglab.experiments.gimp_runs.run`."""
    return df.rename(columns={"method.method": "method", "setup.seed": "seed"})


def _at_target(df: pd.DataFrame, target: float) -> pd.DataFrame:
    """The runs in ``df`` pruned to ``target``, as :func:`gimp_runs.run`'s rows."""
    return _as_results(df[np.isclose(df["method.target_density"], target)]) if len(df) else df


def _by_method(df: pd.DataFrame, target: float) -> dict[str, pd.Series]:
    """Final test accuracy (%) per seed of each method run to ``target``."""
    return verdicts.final_accuracy(_at_target(df, target))


@dataclass
class _Row:
    claim: str
    source: str
    ran: str
    ours: str
    thesis: str
    verdict: str
    seeds: int | None = None
    interval: str = "—"


def _judged(claim: str, source: str, ran: str, ours: str, thesis: str,
            judgement: verdicts.Judgement | verdicts.Finding, verdict: str | None = None) -> _Row:
    """A row whose verdict (unless ``verdict`` overrides it), seeds and interval come from
    :mod:`pruninglab.experiments.verdicts`' rule."""
    return _Row(claim, source, ran, ours, thesis, verdict or judgement.verdict,
                judgement.seeds, judgement.interval)


Check = Callable[[Evidence, float], _Row]


def _not_run(claim: str, source: str, thesis: str, needs: str) -> _Row:
    return _Row(claim, source, needs, "—", thesis, "not run yet")


def _is_cifar(ev: Evidence) -> bool:
    return ev.profile.dataset == "cifar10"


# What a verdict on one of the thesis's CIFAR-10 networks says when its runs were on another
# data set (the gpu profile's): appended to the verdict, as the smoke profile's note is.
DATA_NOTES = {"fashion-mnist-32": "on Fashion-MNIST at 32×32, not CIFAR-10"}


def _scale_note(ev: Evidence, dataset: str) -> str:
    """How the runs behind a thesis-network row differ from the thesis's: the data set
    (:data:`DATA_NOTES`) and a training shorter than Section 3.4's; ``""`` if neither."""
    notes = [] if dataset == "cifar10" else [
        DATA_NOTES.get(dataset, f"on {dataset}, not CIFAR-10")]
    if not ev.profile.thesis_lengths:
        shortest, longest = sorted({schedules.preset(f).steps for f in ("resnet", "vgg", "wrn")})
        notes.append(f"{ev.profile.train_steps:,} steps per training, not the thesis's "
                     f"{shortest:,}–{longest:,}")
    return "; ".join(notes)


def _thesis_net_runs(ev: Evidence, model: str) -> tuple[pd.DataFrame, str]:
    """The iterative runs of one of the thesis's CIFAR-10 networks, and the data set their
    records name: the profile's data set (the gpu profile's ``fashion-mnist-32``) if it
    holds some, else CIFAR-10. ``(empty, "")`` when neither does."""
    for dataset in dict.fromkeys([ev.profile.dataset, "cifar10"]):
        df = ev.iterative(model, dataset)
        if len(df):
            return df, dataset
    return ev.gimp.iloc[:0], ""


def _marked(row: _Row, ev: Evidence, dataset: str) -> _Row:
    """``row`` with :func:`_scale_note`'s mark on its verdict, where there is one."""
    note = _scale_note(ev, dataset)
    if note:
        row.verdict = f"{row.verdict} ({note})"
    return row


def _per_seed(df: pd.DataFrame) -> pd.Series:
    """Test accuracy (%) per seed of run-store rows (averaged over rows of one seed)."""
    return 100 * df.groupby("setup.seed")["test_accuracy"].mean()


# A published number is matched when our interval reaches no lower than this many points
# below it (or ``tolerance``, if larger): about one seed's standard error on CIFAR-10's
# 10,000 test images at 91 % accuracy is 0.3 points, and runs differ by more than that.
PUBLISHED_BAND = 0.5


# --------------------------------------------------------------------------------------
# The claims
# --------------------------------------------------------------------------------------


# The eight counts docs/design.md pins (WRN-16-4's row of Table 1.1 is not among them).
PINNED_COUNTS = ("resnet20", "resnet56", "resnet110", "wrn-16-8", "wrn-28-10", "vgg13", "vgg16",
                 "vgg19")


def _table_1_1(ev: Evidence, tol: float) -> _Row:
    table = models.table_1_1()
    misses = table[table["difference"] != 0]
    ours = f"{len(table) - len(misses)} of {len(table)} counts equal" + "".join(
        f"; {r.Index}: ours {int(r.parameters):,}, thesis {int(r.thesis_parameters):,}"
        for r in misses.itertuples())
    verdict = "contradicted" if any(n in misses.index for n in PINNED_COUNTS) else "reproduced"
    return _Row("Parameter counts of the CIFAR-10 networks", "Table 1.1",
                "pruninglab.core.models.table_1_1(): every row built and counted", ours,
                "ResNet-20 272,282 … WRN-28-10 36,479,194 (9 rows)", verdict,
                interval="a deterministic count: no seeds, no interval")


def _dense_accuracy(ev: Evidence, tol: float) -> _Row:
    claim, source = "Dense CIFAR-10 accuracies of the reproduced networks", "Table 1.1"
    thesis = ", ".join(f"{n} {a}%" for n, (_, a) in models.TABLE_1_1.items())
    found = {name: _thesis_net_runs(ev, name) for name in models.TABLE_1_1}
    found = {name: (df[df["level"] == 0], dataset) for name, (df, dataset) in found.items()
             if len(df)}
    if not found:
        return _Row(claim, source, "needs the full profile (CIFAR-10, 72k-80k steps) on a GPU",
                    "—", thesis, "not testable at this scale")
    # CIFAR-10's runs where there are any: the thesis's numbers are CIFAR-10's
    on_cifar = {name: v for name, v in found.items() if v[1] == "cifar10"}
    found = on_cifar or found
    dataset = next(iter(found.values()))[1]
    parts, judged = [], []
    for name, (dense, _) in found.items():
        ref = models.TABLE_1_1[name][1]
        ours = _per_seed(dense)
        parts.append(f"{name} {fmt(ours)} (thesis {ref})")
        judged.append(at_least(ours, ref, max(PUBLISHED_BAND, tol)))
    ran = f"level 0 of the stored GIMP runs on {dataset}"
    note = _scale_note(ev, dataset)
    if note:  # not the thesis's data or training: nothing to compare with
        return _Row(claim, source, ran, "; ".join(parts), thesis,
                    f"not testable at this scale ({note})")
    return _judged(claim, source, ran, "; ".join(parts), thesis, verdicts.combine(judged))


def _renda(ev: Evidence, tol: float) -> _Row:
    claim = "LR rewinding reaches Renda et al.'s numbers"
    source = "Section 3.2 (Renda et al. 2020)"
    thesis = ("ResNet-20 dense 91.71, LRR at density 10.7% 91.01; ResNet-56 dense 93.46, "
              "LRR 93.56 (10.7%), 91.26 (2.3%)")
    if not _is_cifar(ev):
        return _Row(claim, source, "needs ResNet-20/56 on CIFAR-10 (full profile)", "—", thesis,
                    "not testable at this scale")
    parts, judged = [], []
    for name, (_, points) in RENDA_2020.items():
        df = ev.iterative(name)
        df = df[df["method.method"] == "lr_rewinding"] if len(df) else df
        for density, ref in points.items():
            near = df[np.isclose(df["density"], density, rtol=0.2)] if len(df) else df
            if len(near):
                ours = _per_seed(near)
                parts.append(f"{name} @ {density:.3g}: {fmt(ours)} (Renda {ref})")
                judged.append(at_least(ours, ref, max(PUBLISHED_BAND, tol)))
    if not judged:
        return _not_run(claim, source, thesis, "LR rewinding of ResNet-20/56 on CIFAR-10")
    return _judged(claim, source, "lr_rewinding runs at the nearest level", "; ".join(parts),
                   thesis, verdicts.combine(judged))


def _algorithms_final(ev: Evidence) -> tuple[dict[str, pd.Series], str]:
    df = ev.iterative()
    if not len(df):
        return {}, ""
    by = _by_method(df, ev.profile.target_density)
    return by, f"{ev.profile.model} on {ev.profile.dataset}, T={ev.profile.steps_for()}"


def _finetune_worst(ev: Evidence, tol: float) -> _Row:
    source, thesis = "Figure 3.1", "fine-tuning below every rewinding method"
    by, where = _algorithms_final(ev)
    found = verdicts.finetune_worst(by, tol)
    if found.verdict == "not run yet":
        return _not_run(found.claim, source, thesis, "notebook 05 (Algorithms 1-4)")
    return _judged(found.claim, source, f"Algorithms 1-4 to density "
                   f"{ev.profile.target_density:g}, {where}", found.ours, thesis, found)


def _lrr_vs_swr(ev: Evidence, tol: float) -> _Row:
    source, thesis = "Figures 3.1-3.2", "LRR >= SWR, gap widest at extreme sparsity"
    by, where = _algorithms_final(ev)
    found = verdicts.lrr_at_least_swr(by, tol)
    if found.verdict == "not run yet":
        return _not_run(found.claim, source, thesis, "notebook 05")
    ran = (f"{where}, density {ev.profile.target_density:g}"
           + ("" if _is_cifar(ev) else " (an MLP stands in for the small ResNets)"))
    return _judged(found.claim, source, ran, found.ours, thesis, found)


def _rise(ev: Evidence, tol: float) -> _Row:
    source, thesis = "Figure 3.1", "a rise above dense at low compression"
    found = verdicts.early_rise(_at_target(ev.iterative(), ev.profile.target_density), tol)
    if found.verdict == "not run yet":
        return _not_run(found.claim, source, thesis, "notebook 05")
    return _judged(found.claim, source, "levels 1-3 of the rewinding runs of notebooks 05-06 "
                   "vs dense", found.ours, thesis, found)


def _wide(ev: Evidence, tol: float) -> _Row:
    claim = "LR rewinding degrades on wide networks; sGIMP(50-98%) does not"
    source = "Figures 3.3-3.6, 3.9"
    thesis = "WRN-16-8: LRR several points below sGIMP(75%) over many levels"
    for model in ("wrn-16-8", "wrn-28-10", "wrn-16-4"):
        df, dataset = _thesis_net_runs(ev, model)
        if not len(df):
            continue
        by = _by_method(df, df["method.target_density"].min())
        if "lr_rewinding" in by and "sgimp(75%)" in by:
            return _marked(_judged(
                claim, source, f"{model} on {dataset}",
                f"LRR {fmt(by['lr_rewinding'])}; sGIMP(75%) {fmt(by['sgimp(75%)'])}",
                thesis, better(by["sgimp(75%)"], by["lr_rewinding"], tol)), ev, dataset)
    target = ev.profile.target_density
    wide, narrow = ev.profile.wide_model, ev.profile.narrow_model
    found = verdicts.width_gap(_at_target(ev.iterative(wide), target),
                               _at_target(ev.iterative(narrow), target), (wide, narrow), tol)
    if found.verdict == "not run yet":
        needs = ("needs LR rewinding and sGIMP(75%) of a Wide ResNet (notebook 06)"
                 if ev.profile.thesis_networks else "needs a Wide ResNet (gpu or full profile)")
        return _Row(claim, source, needs, "—", thesis, "not testable at this scale")
    why = ("not LR rewinding and sGIMP(75%) of a Wide ResNet to the same density"
           if ev.profile.thesis_networks else "no Wide ResNet at this scale")
    return _judged(claim, source,
                   f"{wide} vs {narrow} on {ev.profile.dataset} (notebook 06); "
                   f"{why} (on these runs the rule says {found.verdict})",
                   found.ours, thesis, found, verdict="not testable at this scale")


def _sgimp_best(ev: Evidence, tol: float) -> _Row:
    claim = "sGIMP is at least as good as every other method"
    source = "Figures 3.7-3.8"
    by, where = _algorithms_final(ev)
    df = ev.iterative()
    fractions = {} if not len(df) or "method.rewind_fraction" not in df else dict(
        zip(df["method.method"], df["method.rewind_fraction"]))
    sg = {m: v for m, v in by.items() if m.startswith("sgimp(")}
    mid = {m: v for m, v in sg.items() if 0.5 <= fractions.get(m, math.nan) <= 0.98}
    if not mid or len(by) - len(sg) < 2:
        return _not_run(claim, source, "sGIMP(50-98%) >= every other method", "notebooks 05-06")
    best_sg = max(mid.items(), key=lambda kv: kv[1].mean())
    others = {m: v for m, v in by.items() if m not in sg}
    best_other = max(others.items(), key=lambda kv: kv[1].mean())
    return _judged(claim, source, f"sGIMP(50-98%) vs Algorithms 1-4 and one-shot, {where}",
                   f"best sGIMP: {best_sg[0]} {fmt(best_sg[1])}; best other: {best_other[0]} "
                   f"{fmt(best_other[1])}", "sGIMP(50-98%) >= every other method",
                   at_least(best_sg[1], best_other[1], tol))


def _vgg_rewind_100(ev: Evidence, tol: float) -> _Row:
    claim = "Rewinding 100% (weight rewinding) is the worst sGIMP variant for VGG"
    source = "Figure 3.5"
    thesis = "VGG19: sGIMP(100%) clearly below the other rewind values"
    vgg, dataset = _thesis_net_runs(ev, "vgg19")
    if len(vgg):
        by = _by_method(vgg, vgg["method.target_density"].min())
        rest = {m: v for m, v in by.items() if m.startswith("sgimp(") or m == "lr_rewinding"}
        if "weight_rewinding" in by and len(rest) >= 2:
            worst = min(rest.items(), key=lambda kv: kv[1].mean())  # the others' least accurate
            return _marked(_judged(claim, source, f"vgg19 on {dataset}",
                                   f"WR {fmt(by['weight_rewinding'])}; least accurate other "
                                   f"rewind {worst[0]} {fmt(worst[1])}", thesis,
                                   better(worst[1], by["weight_rewinding"], tol)), ev,
                                   dataset)
    by, where = _algorithms_final(ev)
    ours = "—"
    if "weight_rewinding" in by:
        sg = {m: v.mean() for m, v in by.items() if m.startswith("sgimp(") or m == "lr_rewinding"}
        rank = sorted(sg, key=sg.get)
        ours = (f"{ev.profile.model}: WR {by['weight_rewinding'].mean():.2f}; other rewinds "
                + ", ".join(f"{m} {sg[m]:.2f}" for m in rank))
    return _Row(claim, source, f"needs VGG19 (gpu or full profile); MLP numbers for reference "
                f"({where})",
                ours, thesis, "not testable at this scale")


def _tom_final(ev: Evidence, model: str | None) -> pd.DataFrame:
    """The final rows of the TOM runs at one-shot's compute: 0.1 T + mask steps + T = 2 T
    (the default; runs with other mask budgets are left out, so that every TOM row compares
    at matched compute)."""
    t = _select(ev.tom, ev.profile, model, None) if len(ev.tom) else ev.tom
    if not len(t):
        return t
    total = t.groupby("run")["steps"].transform("sum")  # the steps of its three phases
    return t[(t["phase"] == "final") & (total == 2 * t["method.train_steps"])]


def _tom_vs_one_shot(ev: Evidence, tol: float) -> _Row:
    claim = "Training Optimal Masks matches or beats one-shot methods at similar compute"
    source = "Figure 3.10"
    thesis = ("VGG19: TOM >= one-shot LRR, SNIP, ... below iterative methods; one-shot LRR "
              "fails under 95% sparsity")
    t = _tom_final(ev, None)
    if not len(t):
        return _not_run(claim, source, thesis, "notebook 07 (TOM at matched compute, 2 T)")
    parts, judged = [], []
    gi = ev.iterative()
    one_shots = gi[gi["method.one_shot"].astype(bool)] if len(gi) else gi
    ai = _select(ev.at_init, ev.profile, None, None) if len(ev.at_init) else ev.at_init
    for density, part in t.groupby("method.target_density"):
        ours_tom = _per_seed(part)
        rivals = {}
        if len(one_shots):
            one = one_shots[np.isclose(one_shots["method.target_density"], density)]
            rivals.update(_by_method(one, density) if len(one) else {})
        if len(ai):
            snip = ai[(ai["criterion"] == "snip") & np.isclose(ai["density"], density, rtol=1e-3)]
            if len(snip):
                rivals["SNIP"] = _per_seed(snip)
        if not rivals:
            continue
        best = max(rivals.items(), key=lambda kv: kv[1].mean())
        collapse = ev.profile.one_shot_collapse
        where = (" (one-shot LRR's collapse)" if collapse and np.isclose(density, collapse)
                 else "")
        judgement = at_least(ours_tom, best[1], tol)
        parts.append(f"@{density:.3g}{where}: TOM {fmt(ours_tom)} vs best one-shot {best[0]} "
                     f"{fmt(best[1])}: {judgement.verdict}")
        judged.append(judgement)
    if not judged:
        return _not_run(claim, source, thesis, "notebook 07 (one-shot and SNIP runs)")
    return _judged(claim, source, f"TOM, one-shot magnitude (LRR/WR), SNIP at matched compute "
                   f"(TOM and one-shot 2 T each, SNIP 1 T); {ev.profile.model} on "
                   f"{ev.profile.dataset}", "; ".join(parts), thesis, verdicts.combine(judged))


def _tom_vs_iterative(ev: Evidence, tol: float) -> _Row:
    claim = "On the MLP, TOM reaches iterative pruning's accuracy"
    source = "Section 3.3.1"
    mu_t, sd_t = tom_runs.THESIS_MNIST["tom"]
    mu_i, sd_i = tom_runs.THESIS_MNIST["iterative"]
    thesis = f"MNIST, 96% sparsity: TOM {mu_t} ± {sd_t}, iterative {mu_i} ± {sd_i}"
    t = _tom_final(ev, "mlp")
    gi = ev.iterative("mlp")
    if not len(t) or not len(gi):
        return _not_run(claim, source, thesis, "notebook 07 with the MLP (TOM at 2 T)")
    density = min(t["method.target_density"].unique(), key=lambda d: abs(math.log(d / 0.04)))
    ours_tom = _per_seed(t[np.isclose(t["method.target_density"], density)])
    wr = gi[(gi["method.method"] == "weight_rewinding") & np.isclose(gi["density"], density,
                                                                     rtol=1e-3)]
    if not len(wr):
        return _not_run(claim, source, thesis, "weight rewinding through the TOM densities")
    ours_it = _per_seed(wr)
    levels = int(wr["level"].max()) + 1  # weight rewinding trains T per level, dense included
    return _judged(claim, source, f"mlp on {ev.profile.dataset} at density {density:.3g} "
                   f"(about accuracy, not compute: TOM 2 T, weight rewinding {levels} T)",
                   f"TOM {fmt(ours_tom)}; weight rewinding {fmt(ours_it)}", thesis,
                   at_least(ours_tom, ours_it, tol))


def _table_3_1(ev: Evidence, tol: float) -> _Row:
    claim = "Table 3.1's ordering of mask modifications"
    source = "Table 3.1"
    thesis = ("none 98.62 > shuffle within masks 98.32 ≈ reinitialize 98.26 > shuffle masks and "
              "weights 97.35 > shuffle masks and reinitialize 96.90")
    s = ev.shuffle
    if len(s):  # Table 3.1 runs with Keras's initializer, as the thesis's TensorFlow code
        s = _select(s, ev.profile, "mlp", None, init="keras", whole_training_set=False)
    if not len(s) or s["modification"].nunique() < len(shuffle.MODIFICATIONS):
        return _not_run(claim, source, thesis, "notebook 08")
    # MODIFICATIONS is in the thesis's order; Section 3.3.2 calls shuffling within the
    # masks and reinitializing not significantly different, so that pair is "matches".
    ordered = {name: _per_seed(s[s["modification"] == name]) for name in shuffle.MODIFICATIONS}
    judgement = verdicts.ranking(ordered, tol, ties={"reinitialize"})
    ours = "; ".join(f"{name} {fmt(v)}" for name, v in ordered.items())
    sizes = s["setup.train_size"].dropna().unique() if "setup.train_size" in s else []
    ran = (f"mlp on {ev.profile.dataset}" + (f" ({int(sizes[0]):,} training images)"
                                             if len(sizes) else "")
           + ", weight-rewinding ticket at 4%; the rule on each adjacent pair")
    return _judged(claim, source, ran, ours, thesis, judgement)


def _bn(ev: Evidence, tol: float) -> _Row:
    claim = "BN momentum/eps matter for iterative pruning at high sparsity"
    source = "Figure 3.12"
    thesis = "VGG19: mu=0.99, eps=1e-3 stable at high sparsity; mu=0.997, eps=1e-5 not"
    if not len(ev.gimp):
        return _not_run(claim, source, thesis, "notebook 09")
    model = "vgg19" if _is_cifar(ev) else "mlp-bn"
    df = _select(ev.gimp, ev.profile, model, None)
    finals, early = {}, {}
    for label, (mu, eps) in bn.THESIS_SETTINGS.items():  # the store keeps PyTorch's momentum
        # None (the family's defaults) as NaN: a column of Nones alone is not numeric
        part = df[np.isclose(df["setup.bn_eps"].astype(float), eps) & np.isclose(
            df["setup.bn_momentum"].astype(float), models.tf_to_torch_momentum(mu))] if len(
            df) else df
        if not len(part):
            return _not_run(claim, source, thesis, "notebook 09")
        sparsest = part[part["level"] >= part["level"].max() - 1]  # the two sparsest levels
        finals[label] = _per_seed(sparsest)
        early[label] = _per_seed(part[part["level"].between(1, 2)])
        density = part["density"].min()
    (a, b) = bn.THESIS_SETTINGS
    low = (early[a] - early[b]).abs().mean()
    ours = (f"{model}, two sparsest levels (density down to {density:.3g}): {a} "
            f"{fmt(finals[a])}; {b} {fmt(finals[b])}; |gap| {low:.2f} at levels 1-2")
    return _judged(claim, source, f"sGIMP(75%) under both settings, {model} on "
                   f"{ev.profile.dataset}", ours, thesis, better(finals[a], finals[b], tol))


def _sparse_beats_dense(ev: Evidence, tol: float) -> _Row:
    claim = "A larger pruned network beats a smaller dense one of the same size"
    source = "Figure 1.1"
    thesis = "sparse ResNet-56 > dense ResNet-20; sparse WRN-16-8 > dense WRN-16-4 at equal size"
    big, small = ("resnet56", "resnet20") if _is_cifar(ev) else ("mlp", "lenet300")
    method = "sgimp(75%)"  # notebook 10 prunes every network with sGIMP(75%)
    b, s = (ev.iterative(m) for m in (big, small))
    b, s = (x[x["method.method"] == method] if len(x) else x for x in (b, s))
    if not len(b) or not len(s):
        return _not_run(claim, source, thesis, f"notebook 10 ({method} of {big} and {small})")
    dense_small = s[s["level"] == 0]
    size = dense_small["kept"].iloc[0]
    near = b[b["kept"] <= size * 1.05]
    if not len(near):
        return _not_run(claim, source, thesis, f"{big} pruned below {small}'s size")
    first = near[near["level"] == near.groupby("run")["level"].transform("min")]
    ours_big, ours_small = _per_seed(first), _per_seed(dense_small)
    return _judged(claim, source, f"{method}: {big} at its first level with <= {size:,} weights "
                   f"vs dense {small}", f"{big} sparse {fmt(ours_big)}; {small} dense "
                   f"{fmt(ours_small)}", thesis, better(ours_big, ours_small, tol))


CHECKS: list[Check] = [
    _table_1_1, _dense_accuracy, _renda, _finetune_worst, _rise, _lrr_vs_swr, _wide,
    _sgimp_best, _vgg_rewind_100, _tom_vs_one_shot, _tom_vs_iterative, _table_3_1, _bn,
    _sparse_beats_dense,
]


def claims(ev: Evidence, tolerance: float = 0.3) -> pd.DataFrame:
    """One row per claim: ``claim``, ``source`` (figure or table), ``ran`` (what we ran),
    ``ours``, ``thesis``, ``verdict`` (one of :data:`VERDICTS`; in the smoke profile followed
    by ``" (" + SMOKE_NOTE + ")"``), ``seeds`` (the fewest seeds behind the verdict),
    ``interval`` (the difference it rests on, with its 95 % interval and whether paired or
    Welch; see :mod:`pruninglab.experiments.verdicts`) and ``test images`` (the test-set size behind
    each seed's accuracy)."""
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 accuracy points, got {tolerance!r}")
    rows = [check(ev, tolerance) for check in CHECKS]
    report = pd.DataFrame([r.__dict__ for r in rows])
    report["seeds"] = report["seeds"].astype("Int64")
    images = pd.Series(data.TEST_SIZES.get(ev.profile.dataset), index=report.index,
                       dtype="Int64")
    report["test images"] = images.where(report["seeds"].notna())
    if ev.profile.name == "smoke":
        report["verdict"] = report["verdict"] + f" ({SMOKE_NOTE})"
    return report


def beside(reports: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`claims` reports of one profile on several data sets, side by side: one row per
    claim; columns ``(data set, field)`` for the fields ``verdict``, ``seeds``, ``interval``
    and ``test images``."""
    if not reports:
        raise ValueError("beside needs at least one report")
    fields = ["verdict", "seeds", "interval", "test images"]
    return pd.concat({name: r.set_index("claim")[fields] for name, r in reports.items()}, axis=1)


def plain_verdict(verdict: str) -> str:
    """``verdict`` without the notes in parentheses after it (the smoke profile's, and how
    a thesis-network row's runs differ from the thesis's): one of :data:`VERDICTS`."""
    return re.sub(r"( \([^()]*\))+$", "", verdict)


def verdict_counts(report: pd.DataFrame) -> pd.Series:
    """How many rows of a :func:`claims` report have each of :data:`VERDICTS` (in that
    order, zeros included), whether or not they carry the smoke note."""
    plain = report["verdict"].map(plain_verdict)
    unknown = sorted(set(plain) - set(VERDICTS))
    if unknown:
        raise ValueError(f"report has verdicts that are not in VERDICTS: {unknown}")
    return plain.value_counts().reindex(VERDICTS, fill_value=0)


# --------------------------------------------------------------------------------------
# The full-profile batch recipe and its cost
# --------------------------------------------------------------------------------------

# The GPU runs behind the thesis's figures, as the notebooks make them in the full profile:
# (figure, notebook, model, GIMP-like runs per seed, trainings per run, T, seeds). Levels to
# 1000x compression at K = 0.7: 0.7**20 < 0.001, so 21 trainings (dense + 20 pruned
# levels). Notebook 06 runs one seed per rewind value, 05 and 09 the profile's three;
# notebook 07's one-shot, TOM and SNIP runs are about two trainings each.
FULL_RECIPE: list[dict] = [
    dict(figure="3.1-3.2", notebook="05", model="resnet20", runs=4, trainings=21, T=72_000,
         seeds=3),
    dict(figure="3.1-3.2", notebook="05", model="resnet56", runs=4, trainings=21, T=72_000,
         seeds=3),
    dict(figure="3.3, 3.6", notebook="06", model="wrn-16-8", runs=5, trainings=21, T=80_000,
         seeds=1),
    dict(figure="3.5, 3.8", notebook="06", model="vgg19", runs=5, trainings=21, T=80_000,
         seeds=1),
    dict(figure="3.9", notebook="06", model="wrn-28-10", runs=5, trainings=21, T=80_000,
         seeds=1),
    dict(figure="3.10", notebook="07", model="vgg19", runs=15, trainings=2, T=80_000, seeds=1),
    dict(figure="3.12", notebook="09", model="vgg19", runs=2, trainings=21, T=80_000, seeds=3),
    dict(figure="1.1", notebook="10", model="resnet56", runs=1, trainings=21, T=72_000, seeds=1),
]


# Seconds per 1,000 training iterations (batch 128, CIFAR-shaped data, our fast path with
# torch.compile) measured on H200 GPUs with torch 2.11 on 2026-11-26, in two runs of
# `pruninglab bench train --device cuda --compile --models ...`: resnet20,
# resnet56 and wrn-28-10 in one run (resnet20: 3.89 s, 2.73x the plain loop's 10.61 s);
# wrn-16-8 and vgg19 in another (where resnet20 took 4.62 s).
MEASURED_H200 = {"resnet20": 3.89, "resnet56": 6.75, "wrn-16-8": 3.70, "wrn-28-10": 11.69,
                 "vgg19": 3.86}


def _dense_macs(model: str) -> int:
    return int(efficiency.macs(models.create(model), (3, 32, 32))["dense_macs"].iloc[-1])


def gpu_recipe() -> list[dict]:
    """The gpu profile's runs (:data:`~pruninglab.experiments.profiles.GPU_RUNS`, notebook
    06's with ``MODEL`` vgg19) as rows like :data:`FULL_RECIPE`'s: per model, its sGIMP
    runs, the trainings of each run (levels), T and the seeds."""
    gpu = profiles.get("gpu")
    figures = {"vgg19": "3.5"}  # the sGIMP(X %) sweep; the width pair is Figure 3.6
    rows = []
    for model, fractions in profiles.GPU_RUNS.items():
        T = gpu.steps_for(model)
        config = gimp.sgimp(T, gpu.target_density, rewind_fraction=fractions[0],
                            K=gpu.density_multiplier)
        rows.append(dict(figure=figures.get(model, "3.6"), notebook="06", model=model,
                         runs=len(fractions), trainings=len(config.densities()), T=T,
                         seeds=len(gpu.seeds)))
    return rows


def gpu_hours(seconds_per_1k: dict[str, float],
              recipe: Sequence[dict] | None = None) -> pd.DataFrame:
    """GPU hours of ``recipe`` (default :data:`FULL_RECIPE`; :func:`gpu_recipe` for the gpu
    profile) from measured seconds per 1,000 training iterations, one training at a time
    (``pruninglab bench train --device cuda``). A model without a measurement is
    estimated from a measured model of its family (ResNet, WRN, VGG) scaled by their ratio
    of multiply-accumulates per image, and marked ``~``: a rough guide, since small networks
    are bound by kernel launches rather than arithmetic."""
    family = {m: m.split("-")[0].rstrip("0123456789") for m in seconds_per_1k}
    rows = []
    for item in FULL_RECIPE if recipe is None else recipe:
        model = item["model"]
        rate, note = seconds_per_1k.get(model), ""
        if rate is None:
            kin = [m for m, f in family.items() if f == model.split("-")[0].rstrip("0123456789")]
            if not kin:
                raise ValueError(f"seconds_per_1k has no model of {model}'s family; "
                                 f"measured: {sorted(seconds_per_1k)}")
            rate = seconds_per_1k[kin[0]] * _dense_macs(model) / _dense_macs(kin[0])
            note = "~"
        iterations = item["runs"] * item["trainings"] * item["T"] * item["seeds"]
        rows.append({**item, "s per 1k it": f"{note}{rate:.2f}",
                     "GPU hours": iterations / 1000 * rate / 3600})
    return pd.DataFrame(rows)
