"""The large profiles end to end, on the CPU in seconds: notebook 06 in the full profile on
CIFAR-10 files in torchvision's format, and the gpu profile (the thesis's networks on
Fashion-MNIST at 32x32) through notebooks 06 and 11, each through papermill with the
notebook's size parameters turned down. The files are random images: these tests run the
code paths, they find nothing about pruning."""

from __future__ import annotations

import pruninglab as pl
from pruninglab import notebooks

import json
from pathlib import Path

import pytest
from fake_data import write_cifar10, write_idx_set

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# Seconds, not hours: 5 steps (the shortest T whose VGG/WRN schedules keep three distinct
# milestones), batch 4, one pruning level, 16 images per evaluated split, one seed.
SHRUNK = {"DEVICE": "cpu", "INTERACTIVE": False, "TRAIN_STEPS": 5, "BATCH_SIZE": 4,
          "TARGET_DENSITY": 0.7, "EVAL_SIZE": 16, "SEEDS": [0]}


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """An empty run store and data folder for the kernels papermill starts (they inherit
    this process's environment)."""
    monkeypatch.delenv("PRUNINGLAB_PROFILE", raising=False)
    monkeypatch.setenv("PRUNINGLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PRUNINGLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PRUNINGLAB_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path / "runs"


def run_notebook(name: str, out: Path, **parameters) -> dict:
    """Execute one notebook with papermill; fail with its error, else return it as JSON."""
    [(_, _, error)] = notebooks.execute([NOTEBOOKS / name], out, parameters, progress=False)
    assert error is None, f"{name} failed: {error}"
    return json.loads((out / name).read_text())


def printed(notebook: dict) -> str:
    """Everything the notebook's cells printed."""
    return "".join("".join(o.get("text", "")) for c in notebook["cells"]
                   for o in c.get("outputs", []))


@pytest.mark.slow
def test_notebook_06_runs_the_full_profile_on_cifar10_and_compares_two_widths(store, tmp_path):
    write_cifar10(tmp_path / "data", per_batch=16, n_test=32)
    nb = run_notebook("06_gimp_and_sgimp.ipynb", tmp_path / "out", PROFILE="full", **SHRUNK)

    df = pl.runs.load(store, kind="gimp")
    assert set(df["setup.dataset"]) == {"cifar10"}
    assert set(df["setup.train.schedule.steps"]) == {5} and set(df["setup.eval_size"]) == {16}
    assert set(df["setup.train.batch_size"]) == {4} and set(df["level"]) == {0, 1}
    methods = df.groupby("setup.model")["method.method"].agg(set)
    # the sGIMP sweep on the full profile's ResNet-20, then the width pair: WRN-16-8 beside it
    assert methods["resnet20"] == {"lr_rewinding", "sgimp(25%)", "sgimp(50%)", "sgimp(75%)",
                                   "weight_rewinding"}
    assert methods["wrn-16-8"] == {"lr_rewinding", "sgimp(75%)"}
    text = printed(nb)
    assert "wrn-16-8: 10,961,370 parameters; resnet20: 272,282" in text
    assert "No GIMP runs of ResNets" not in text  # the thesis-scale panels were drawn


@pytest.mark.slow
def test_the_gpu_profile_runs_on_the_cpu_and_notebook_11_marks_its_verdicts(store, tmp_path):
    write_idx_set(tmp_path / "data" / "FashionMNIST" / "raw", n_train=64, n_test=32)
    # Notebook 06 with VGG19 makes the runs the gpu profile is for: Figure 3.5's sGIMP(X %)
    # on VGG19 (three of its five X here), and Figure 3.6's width pair, WRN-16-8 against
    # ResNet-20. Two seeds, so that the rows get intervals.
    run_notebook("06_gimp_and_sgimp.ipynb", tmp_path / "out", PROFILE="gpu", MODEL="vgg19",
                 REWIND_PERCENTS=[0, 50, 100], **{**SHRUNK, "SEEDS": [0, 1]})
    df = pl.runs.load(store, kind="gimp")
    assert set(df["setup.dataset"]) == {"fashion-mnist-32"}
    assert set(df["setup.model"]) == {"vgg19", "wrn-16-8", "resnet20"}
    assert set(df["setup.seed"]) == {0, 1}

    nb = run_notebook("11_reproduction.ipynb", tmp_path / "out", PROFILE="gpu",
                      DEVICE="cpu", INTERACTIVE=False, PACKAGED=False, SECOND_DATASET=None,
                      TRAIN_STEPS=5, TARGET_DENSITY=0.7)
    assert "runs found: 14 GIMP" in printed(nb)  # 3 x 2 on VGG19, 2 x 2 on each of the pair
    profile = pl.profiles.get("gpu").shrunk(train_steps=5, target_density=0.7)
    report = pl.reproduction.claims(pl.reproduction.evidence(profile, [store]))
    rows = report.set_index("claim")
    for claim in ("LR rewinding degrades on wide networks; sGIMP(50-98%) does not",
                  "Rewinding 100% (weight rewinding) is the worst sGIMP variant for VGG"):
        verdict = rows.loc[claim, "verdict"]
        assert verdict.endswith(f" ({pl.reproduction.DATA_NOTES['fashion-mnist-32']}; 5 steps "
                                "per training, not the thesis's 72,000–80,000)"), verdict
        assert pl.reproduction.plain_verdict(verdict) in ("reproduced", "inconclusive",
                                                          "contradicted")
        assert rows.loc[claim, "seeds"] == 2
