"""`pruninglab bench` runs at a tiny size and prints its table (no timing checks)."""

from __future__ import annotations

from pruninglab import bench, pruning

import argparse
import importlib.util
import math
import subprocess
import sys

import pytest
import torch
from conftest import usage_error

TINY = ["--input-size", "4", "--batch-size", "8", "--rounds", "2", "--steps", "1", "--warmup", "1"]


def test_masking_section_runs_at_a_tiny_size_and_prints_machine_and_ratios(capsys):
    assert bench.main(["masking", *TINY]) == 0
    out = capsys.readouterr().out
    assert "torch " in out and "logical cores" in out and "torch thread" in out
    for variant in ("dense, torch.optim.SGD", "dense, pruninglab.core.optim.SGD",
                    "masked (ours): masks inside the SGD step",
                    "masked: torch.optim.SGD, then multiply", "then bool multiply",
                    "torch.nn.utils.prune hooks"):
        assert variant in out
    baseline = next(line for line in out.splitlines() if line.startswith("dense, torch.optim"))
    assert baseline.split()[-1] == "1.000"  # the ratios are against torch's dense step
    assert "median_ms" in out and "ratio" in out


@pytest.mark.parametrize("args, bad", [(["--batch-size", "0"], "--batch-size"),
                                       (["--rounds", "-1"], "--rounds"),
                                       (["--density", "1.5"], "--density"),
                                       (["--warmup", "x"], "--warmup")])
def test_bad_sizes_are_usage_errors_not_a_normal_looking_table(args, bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["masking", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and bad in err and "median_ms" not in err


def test_unknown_section_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["nonsense"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


# ---- data, train and sparse sections (issue: speed; tiny sizes, no timing checks) ----


def test_data_section_prints_images_per_second_per_core_for_both_pipelines(capsys):
    args = ["data", "--images", "16", "--batch-size", "4", "--input-size", "8",
            "--rounds", "1", "--batches", "1", "--warmup", "0"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "ours: batched tensor augmentation" in out and "images_per_s_per_core" in out
    if importlib.util.find_spec("torchvision") is not None:
        assert "torchvision PIL transforms + DataLoader" in out and "speedup_per_core" in out


def test_train_section_times_the_fast_path_and_the_plain_loop_on_cpu(capsys):
    args = ["train", "--device", "cpu", "--models", "resnet8", "--plain", "resnet8",
            "--input-size", "8", "--batch-size", "4", "--train-size", "16", "--steps", "1",
            "--rounds", "1", "--warmup", "1", "--workers", "0", "--density", "0.5"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    for column in ("fast (ours)", "plain loop", "s_per_1k_iters", "speedup"):
        assert column in out


def test_train_section_refuses_compile_on_cpu(capsys):
    assert "--compile needs --device cuda" in usage_error(
        ["train", "--device", "cpu", "--compile", "--quick"], capsys, bench.main)


def test_train_section_refuses_a_plain_model_that_is_not_timed(capsys):
    assert "--plain" in usage_error(
        ["train", "--device", "cpu", "--models", "resnet8", "--plain", "resnet20"], capsys,
        bench.main)


def test_sparse_section_prints_dense_and_csr_latency_and_bytes(capsys):
    args = ["sparse", "--densities", "0.5,0.1", "--batch-sizes", "2", "--vgg-channels", "4",
            "--vgg-size", "3", "--rounds", "1", "--repeats", "1", "--warmup", "0"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    for text in ("mlp 784-400-400-400-10", "vgg conv3x3 4->4 @3x3", "csr_ms", "bytes_ratio"):
        assert text in out


def test_threads_section_times_each_count_quiet_and_beside_a_busy_process_it_ends(
        monkeypatch, capsys):
    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(bench.subprocess, "Popen", Recorded)
    args = argparse.Namespace(models="mlp", counts=[1, 2], batch_size=8, rounds=1, steps=1,
                              warmup=0)
    table = bench.bench_threads(args)
    assert list(table.index) == [("mlp", machine, n) for machine in ("quiet", "busy")
                                 for n in (1, 2)]
    assert table.loc[("mlp", "quiet", 1), "ratio"] == 1.0  # the baseline: 1 thread, quiet
    assert (table["median_ms"] > 0).all()
    assert len(started) == 1 and started[0].poll() is not None  # the neighbour was ended
    assert "OpenMP waits passively" in capsys.readouterr().out


@pytest.mark.parametrize("counts", ["0,1", "two", "1,,2"])
def test_threads_section_refuses_counts_that_are_not_thread_counts(counts, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["threads", "--counts", counts])
    assert exit_info.value.code == 2 and "--counts" in capsys.readouterr().err


def test_startup_section_times_each_kernel_against_a_bare_one_and_names_errors(tmp_path,
                                                                            capsys):
    import nbformat

    ok = nbformat.v4.new_notebook()
    ok.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("print(x + 1)"),
                nbformat.v4.new_code_cell("import torch\nm = torch.nn.Linear(2, 1)\n"
                                          "from pruninglab import optim\n"
                                          "optim.SGD(m.parameters(), lr=0.1).step()")]
    nbformat.write(ok, tmp_path / "00_tiny.ipynb")
    failing = nbformat.v4.new_notebook()
    failing.cells = [nbformat.v4.new_code_cell("raise KeyError('boom')")]
    nbformat.write(failing, tmp_path / "01_fails.ipynb")
    assert bench.main(["startup", "--dir", str(tmp_path), "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    for column in ("first_output_s", "ratio", "total_s", "torch._dynamo", "bare kernel"):
        assert column in out
    tiny = next(line for line in out.splitlines() if line.startswith("00_tiny"))
    assert tiny.split()[4] == "False"  # our optimizer does not import the compiler
    assert "cell 1: KeyError: 'boom'" in out


def test_sweep_section_times_the_same_runs_alone_and_on_ray_and_gives_the_overhead(capsys):
    pytest.importorskip("ray")
    assert bench.main(["sweep", "--items", "2"]) == 0
    out = capsys.readouterr().out
    assert "sweep: 2 runs of lr_rewinding mlp digits, 2 levels of 4 step(s) each" in out
    for row in ("one after another in this process (baseline)", "as a sweep on Ray, 1 CPU",
                "the sweep's overhead per item", "Ray's start", "Ray's shutdown"):
        assert row in out
    overhead = next(line for line in out.splitlines() if "overhead per item" in line)
    assert math.isfinite(float(overhead.split()[-2]))  # (sweep - baseline) / items


def test_prune_section_times_the_selection_against_a_sort_that_keeps_the_same(capsys):
    assert bench.main(["prune", "--model", "resnet8", "--rounds", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "prune: resnet8," in out and "(density 0.7)" in out
    assert "stable sort (baseline)" in out and "kthvalue selection (ours)" in out
    generator = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 5, (500,), generator=generator).float()  # ties everywhere
    alive = torch.rand(500, generator=generator) < 0.8
    assert torch.equal(pruning._top_sorted(scores, alive, 123),
                       pruning._top(scores, alive, 123))


def test_concurrent_section_runs_one_and_two_trainings_as_processes_and_compares(capsys):
    args = ["concurrent", "--device", "cpu", "--model", "resnet8", "--counts", "1,2",
            "--steps", "2", "--warmup", "1", "--rounds", "1", "--batch-size", "8",
            "--train-size", "32"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "most steps per second with" in out and "trainings at once" in out
    table = out.split("peak_gib_each")[1]
    rows = [line.split() for line in table.strip().splitlines()[1:]]
    assert [row[0] for row in rows] == ["1", "2"]
    (_, alone, _, one, _), (_, both, each, speedup, _) = [map(float, row) for row in rows]
    assert one == 1.0 and alone > 0 and both > 0
    assert speedup == pytest.approx(both / alone, rel=0.01)  # against one training alone
    assert each == pytest.approx(1e3 * 2 / both, rel=0.01)   # seconds per 1k steps of each


def test_concurrent_section_says_when_a_training_process_fails(capsys):
    assert "unknown model 'resnet7'" in usage_error(
        ["concurrent", "--device", "cpu", "--model", "resnet7"], capsys, bench.main)
    assert "--counts must include 1" in usage_error(
        ["concurrent", "--device", "cpu", "--counts", "2,4"], capsys, bench.main)
    spec = {"model": "resnet8", "device": "cpu", "steps": 1, "warmup": 0, "batch_size": 64,
            "train_size": 8, "threads": 1}  # a batch larger than the training set fails
    with pytest.raises(RuntimeError, match="failed before it was ready"):
        bench._one_round(1, spec)


def test_importing_bench_loads_no_optional_dependency():
    code = ("import sys, pruninglab.scale.bench; "
            "print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'torchvision', 'ipywidgets', 'papermill', 'mlxtend', 'ray'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
