"""Sweeps on Ray (pruninglab.scale.sweep, ``pruninglab sweep``): the sweep file's checks, a sweep
on a local cluster of two nodes against the same runs one after another, a sweep stopped
half way and started again, and a failing item.

Ray runs here as small as it goes: 100 MB object stores, no dashboard, no usage
statistics, bound to 127.0.0.1, and always shut down when the tests that use it end. The
workers read data from an empty ``$PRUNINGLAB_DATA``, so that a data set that needs a
download fails the same way on every machine."""

from __future__ import annotations

from pruninglab import cli, gimp, profiles, runs, sweep, sweep_file, threads

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# Read when Ray is imported: no usage statistics; on a machine with one network address
# (like this one, whose own address refuses local connections) every Ray process talks over
# 127.0.0.1.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

try:  # make test installs Ray (the extra dev has sweep): these tests never skip there
    import ray
except ModuleNotFoundError:
    pytest.fail("the sweep tests need Ray: pip install -e '.[dev]' (make test does)",
                pytrace=False)

OBJECT_STORE = 100 * 2**20

SMOKE_RUNS = """
[sweep]
retries = 0

[[runs]]
preset = ["lr_rewinding", "weight_rewinding"]
profile = "smoke"
seeds = [0, 1]
target_density = 0.5
"""


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def keep_threads():
    """run_item sets this process's threads to its item's CPUs: put them back."""
    before, environ = torch.get_num_threads(), dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(environ)
    threads.configure(before)


@pytest.fixture(scope="module")
def empty_data(tmp_path_factory) -> Path:
    """``$PRUNINGLAB_DATA``, for this process and the Ray processes it starts: empty."""
    folder = tmp_path_factory.mktemp("data")
    before = os.environ.get("PRUNINGLAB_DATA")
    os.environ["PRUNINGLAB_DATA"] = str(folder)
    yield folder
    if before is None:
        del os.environ["PRUNINGLAB_DATA"]
    else:
        os.environ["PRUNINGLAB_DATA"] = before


@pytest.fixture
def two_nodes(empty_data):
    """A local Ray cluster of two nodes with one CPU each, and this process connected."""
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    node = {"num_cpus": 1, "object_store_memory": OBJECT_STORE, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def one_node(empty_data):
    """Ray on this machine with two CPUs, and this process connected: one instance for the
    tests that need one node (a Ray start takes 8-15 s here)."""
    assert not ray.is_initialized()
    ray.init(address="local", num_cpus=2, object_store_memory=OBJECT_STORE,
             include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def stored_records(store: Path) -> dict[str, list[dict]]:
    """Every run's records under ``store``, without their seconds (which differ)."""
    return {run.path.name: [{k: v for k, v in r.items() if k != "seconds"}
                            for r in run.records()] for run in runs.iter_runs(store)}


# --------------------------------------------------------------------------------------
# Without Ray: the file, the plan, one item (first: the Ray tests leave a module's Ray up)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("[[runs]]\npreset = 'sgimp'\nseed = [0]\n", "[[runs]] #1: unknown key 'seed'"),
    ("[[runs]]\npreset = 'sgimp'\noptions = { rewind = 0.5 }\n",
     "options: unknown key 'rewind' for preset 'sgimp'"),
    ("[[runs]]\npreset = 'sgimp'\nmodel = []\n", "model = [] is an empty grid"),
    ("[[runs]]\npreset = 'nosuch'\n", "preset 'nosuch' is not one of finetune"),
    ("[[runs]]\nexperiment = 'gimp'\n", "preset is missing"),
    ("[[runs]]\npreset = 'sgimp'\nprofile = 'huge'\n", "profile 'huge' is unknown"),
    ("[[runs]]\npreset = 'sgimp'\ngpus = 2\n", "gpus (the share of one GPU) must"),
    ("[[runs]]\npreset = 'sgimp'\ndevice = 'cuda'\n", "device 'cuda' needs gpus > 0"),
    ("[[runs]]\npreset = 'sgimp'\nmodel = 'resnet2'\n", "[[runs]] #1: unknown model"),
    ("[[runs]]\npreset = 'sgimp'\nmodel = 3\n", "model must be a name (a string), got 3"),
    ("[[runs]]\nexperiment = ['gimp', 'tom']\n", "preset is missing"),
    ("[[notebooks]]\nids = ['00']\nparameters = { DEVICE = 5 }\n",
     "00_index.ipynb: DEVICE must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 5"),
    ("[sweep]\nstore = 5\n[[runs]]\npreset = 'sgimp'\n", "store must be a path"),
    ("[[notebooks]]\nids = ['42']\n", "ids: '42' matches 0 notebooks"),
    ("[[notebooks]]\nids = ['05']\nparameters = { MODLE = 'vgg19' }\n",
     "05_iterative_pruning.ipynb has no parameter 'MODLE'"),
    ("[[notebooks]]\nids = ['05']\nparameters = { PROFILE = 'full' }\n",
     "PROFILE is set by the sweep (give profile = ... instead)"),
    ("[sweep]\nretries = -1\n[[runs]]\npreset = 'sgimp'\n", "[sweep]: retries must"),
    ("[sweeps]\n", "top level: unknown key 'sweeps'"),
    ("[sweep]\ncpus = 1\n", "no items"),
    ("[[runs]\n", "TOML"),
])
def test_a_bad_sweep_file_names_the_key_before_anything_starts(tmp_path, text, message):
    file = write(tmp_path, text)
    with pytest.raises(sweep.SweepFileError) as caught:
        sweep.load(file)
    assert str(caught.value).startswith(f"{file}: ")
    assert message in str(caught.value)


def test_grids_and_seeds_make_one_item_per_combination_and_one_per_run(tmp_path):
    plan = sweep.load(write(tmp_path, """
[sweep]
cpus = 2

[[runs]]
preset = "sgimp"
profile = "smoke"
seeds = [0, 1, 2]
options = { rewind_fraction = [0.0, 0.5] }     # sGIMP(0%) is LR rewinding: the same run

[[runs]]
preset = "lr_rewinding"
profile = "smoke"
seeds = [0]
gpus = 0.25

[[notebooks]]
ids = ["00", "01"]
profile = "smoke"
parameters = { SEED = [0, 1] }
after = true
"""), store=tmp_path / "runs")
    names = [item.name for item in plan.items]
    assert names == [f"{method} mlp digits seed {seed}" for method in ("lr_rewinding",
                     "sgimp(50%)") for seed in (0, 1, 2)] + [
        "00 smoke SEED=0", "00 smoke SEED=1", "01 smoke SEED=0", "01 smoke SEED=1"]
    assert {item.cpus for item in plan.items} == {2.0}
    assert [item.group for item in plan.items] == [0] * 6 + [1] * 4
    assert plan.items[-1].task["parameters"] == {"DEVICE": "cpu", "SEED": 1,
                                                "PROFILE": "smoke", "INTERACTIVE": False}


def test_the_thesis_batch_recipe_is_a_packaged_sweep_that_dry_run_lists(capsys):
    assert "thesis" in sweep.packaged()
    assert cli.main(["sweep", "thesis", "--dry-run", "--store", "/nonexistent/runs"]) == 0
    shown = capsys.readouterr().out
    assert "thesis.toml: 10 items, 10 to run; store /nonexistent/runs" in shown
    for item in ("05 full MODEL=resnet20", "05 full MODEL=resnet56", "06 full MODEL=vgg19",
                 "06 full MODEL=wrn-28-10", "07 full", "08 full", "10 full",
                 "11 full DATASET=cifar10"):
        assert item in shown
    plan = sweep.load("thesis")
    assert {(i.cpus, i.gpus) for i in plan.items} == {(4.0, 1.0)}
    assert all(i.task["parameters"]["DEVICE"] == "cuda" for i in plan.items)
    assert [i.group for i in plan.items] == [0] * 9 + [1]  # the report waits for the rest


def test_the_gpu_sweep_makes_exactly_the_runs_of_notebook_06_in_the_gpu_profile(tmp_path):
    plan = sweep.load("gpu", store=tmp_path)
    folders = {sweep_file.run_folder(i.task, tmp_path) for i in plan.items if i.sort == "run"}
    # what notebook 06 runs with PROFILE gpu, MODEL vgg19: its sGIMP(X %) sweep on VGG19,
    # then LR rewinding and sGIMP(75 %) on the profile's wide and narrow networks
    gpu = profiles.get("gpu")
    wanted = set()
    for model, percents in [("vgg19", [0, 25, 50, 75, 100]), (gpu.wide_model, [0, 75]),
                            (gpu.narrow_model, [0, 75])]:
        setup = gpu.setup(model=model)
        configs = gimp.sgimp_sweep(setup.train.steps, percents, gpu.target_density,
                                   K=gpu.density_multiplier)
        for config in configs.values():
            for seed in gpu.seeds:
                run = gimp.run_config(setup.replace(seed=seed), config)
                wanted.add(str(runs.RunDir.path_for("gimp", run, tmp_path)))
    assert folders == wanted and len(wanted) == 27
    runs_only = [i for i in plan.items if i.sort == "run"]
    assert {(i.cpus, i.gpus, i.task["device"]) for i in runs_only} == {(1.0, 0.25, "cuda")}
    notebooks_after = [i for i in plan.items if i.sort == "notebook"]
    assert [(i.name, i.group) for i in notebooks_after] == [("06 gpu MODEL=vgg19", 1),
                                                           ("11 gpu", 2)]


def test_the_sweep_command_answers_a_bad_file_with_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["sweep", str(write(tmp_path, "[[runs]]\npreset = 'sgimp'\nsed = 1\n"))])
    assert caught.value.code == 2
    assert "unknown key 'sed'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        cli.main(["sweep", "nosuch"])
    assert caught.value.code == 2
    assert "'nosuch' not found (no such file, and not one of pruninglab's sweeps: gpu, thesis)" \
        in capsys.readouterr().err


def test_without_ray_the_command_names_the_extra_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    file = write(tmp_path, SMOKE_RUNS)
    assert cli.main(["sweep", str(file), "--store", str(tmp_path / "runs")]) == 1
    assert "pip install 'pruninglab[sweep]'" in capsys.readouterr().err


def test_an_address_where_no_cluster_answers_is_an_error_not_minutes_of_retries(
        tmp_path, capsys):
    file = write(tmp_path, SMOKE_RUNS)
    assert not ray.is_initialized()
    assert cli.main(["sweep", str(file), "--store", str(tmp_path / "runs"),
                     "--address", "127.0.0.1:1"]) == 1
    said = capsys.readouterr().err
    assert "no Ray cluster answers at address '127.0.0.1:1'" in said
    assert "ray start --head" in said and not ray.is_initialized()


def test_an_item_run_again_trains_nothing_and_its_status_follows_the_store(
        tmp_path, keep_threads):
    plan = sweep.load(write(tmp_path, SMOKE_RUNS), store=tmp_path / "runs")
    item = plan.items[0]
    assert sweep.status(item, plan) == (False, "to run")
    assert sweep.run_item(item, plan.store, plan.out) == {"trained": 3, "stages": 3}
    assert sweep.status(item, plan) == (True, "done")
    assert sweep.run_item(item, plan.store, plan.out) == {"trained": 0, "stages": 3}
    folder = Path(sweep_file.run_folder(item.task, plan.store))
    (folder / "record_002.json").unlink()
    assert sweep.status(item, plan) == (False, "2/3 stages stored")
    assert sweep.run_item(item, plan.store, plan.out) == {"trained": 1, "stages": 3}


def test_a_notebook_item_is_done_when_it_ran_to_the_end_with_its_parameters_and_store(
        tmp_path, keep_threads):
    plan = sweep.load(write(tmp_path, "[[notebooks]]\nids = ['00']\nprofile = 'smoke'\n"),
                      store=tmp_path / "runs", out=tmp_path / "out")
    [item] = plan.items
    assert sweep.status(item, plan) == (False, "to run")
    output = Path(sweep.run_item(item, plan.store, plan.out)["output"])
    assert output == tmp_path / "out" / "00-smoke" / "00_index.ipynb"
    assert sweep.status(item, plan) == (True, "done")
    # done into this store: the same notebooks with another store must run again
    elsewhere = dataclasses.replace(plan, store=tmp_path / "other-runs")
    assert sweep.status(item, elsewhere) == (False, "to run (an unfinished copy)")
    (output.parent / sweep.FINISHED).unlink()  # as a killed kernel leaves the folder
    assert sweep.status(item, plan) == (False, "to run (an unfinished copy)")


def test_a_notebook_item_runs_its_own_profile_whatever_the_worker_environment_says(
        tmp_path, keep_threads, monkeypatch):
    plan = sweep.load(write(tmp_path, "[[notebooks]]\nids = ['00']\nprofile = 'smoke'\n"),
                      store=tmp_path / "runs", out=tmp_path / "out")
    [item] = plan.items
    monkeypatch.setenv("PRUNINGLAB_PROFILE", "quick")  # set after the file was checked
    output = Path(sweep.run_item(item, plan.store, plan.out)["output"])
    assert "pruninglab smoke profile:" in output.read_text()
    assert "pruninglab quick profile:" not in output.read_text()
    marker = json.loads((output.parent / sweep.FINISHED).read_text())
    assert marker["ran_profile"] == "smoke"
    assert os.environ["PRUNINGLAB_PROFILE"] == "quick"  # this process's: put back


def test_plain_processes_run_a_sweep_without_ray_as_one_after_another_would(
        tmp_path, monkeypatch, keep_threads):
    monkeypatch.setitem(sys.modules, "ray", None)  # importing Ray here would fail
    plan = sweep.load(write(tmp_path, SMOKE_RUNS), store=tmp_path / "swept")
    result = sweep.run(plan, progress=False, processes=2)
    assert list(result["status"]) == ["finished"] * 4
    assert list(result["trained"]) == [3] * 4
    assert all(node.startswith("pid ") for node in result["node"])
    assert result["node"].nunique() == 4  # a fresh process for every item
    for item in plan.items:
        sweep.run_item(item, tmp_path / "sequential", plan.out)
    assert stored_records(tmp_path / "swept") == stored_records(tmp_path / "sequential")
    assert list(sweep.run(plan, progress=False, processes=2)["status"]) == ["done before"] * 4


def test_plain_processes_try_a_failing_item_again_and_report_it(tmp_path, monkeypatch,
                                                                capsys, keep_threads):
    monkeypatch.setenv("PRUNINGLAB_DATA", str(tmp_path / "no-data"))  # the workers inherit it
    plan = sweep.load(write(tmp_path, """
[sweep]
retries = 1

[[runs]]
preset = "lr_rewinding"
profile = "smoke"
dataset = "mnist"
seeds = [0]
"""), store=tmp_path / "runs")
    [row] = sweep.run(plan, processes=1).to_dict("records")
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert row["error"].startswith("FileNotFoundError") and "mnist" in row["error"]
    shown = capsys.readouterr()
    said = shown.out + shown.err
    assert "lr_rewinding mlp mnist seed 0: attempt 1 failed (FileNotFoundError" in said
    assert "failed after 2 attempt(s)" in said


def test_a_killed_process_fails_its_own_item_only_and_cancel_ends_every_process(tmp_path):
    plan = sweep.load(write(tmp_path, SMOKE_RUNS), store=tmp_path / "runs")
    pool = sweep._InProcesses(2)
    try:
        victim, survivor, queued = (pool.submit(item, str(plan.store), str(plan.out))
                                    for item in plan.items[:3])
        assert set(pool.started) == {victim, survivor} and pool.queued == [queued]
        pool.started[victim][0].kill()  # as the kernel's OOM killer would
        ended = {}
        deadline = time.monotonic() + 120
        while not {victim, survivor} <= set(ended) and time.monotonic() < deadline:
            ended.update((job, (outcome, error)) for job, outcome, error in pool.wait([]))
        assert ended[victim] == (None, "the process running it ended without a result (exit "
                                       f"code -{signal.SIGKILL})")
        result, seconds, node = ended[survivor][0]
        assert result == {"trained": 3, "stages": 3} and node.startswith("pid ")
        assert not pool.queued and queued in set(pool.started) | set(ended)  # a freed slot
        running = [process for process, _ in pool.started.values()]
        pool.cancel([])
        assert not pool.started and not any(p.is_alive() for p in running)
    finally:
        pool.close()


@pytest.mark.parametrize("args, message", [
    (["--processes", "0"], "--processes must be an integer >= 1, got 0"),
    (["--processes", "2", "--address", "auto"], "without Ray: give it without --address"),
    (["--processes", "2", "--cpus", "1"], "without --address and --cpus"),
])
def test_processes_with_ray_options_or_below_one_is_a_usage_error(tmp_path, capsys, args,
                                                                   message):
    with pytest.raises(SystemExit) as caught:
        cli.main(["sweep", str(write(tmp_path, SMOKE_RUNS)), *args])
    assert caught.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="without address and cpus"):
        sweep.run(sweep.load(write(tmp_path, SMOKE_RUNS)), processes=2, cpus=1)


# --------------------------------------------------------------------------------------
# On Ray
# --------------------------------------------------------------------------------------


def test_a_sweep_on_two_nodes_stores_the_records_of_the_same_runs_done_one_after_another(
        two_nodes, tmp_path, keep_threads):
    plan = sweep.load(write(tmp_path, SMOKE_RUNS), store=tmp_path / "swept",
                      out=tmp_path / "out")
    assert len(plan.items) == 4
    result = sweep.run(plan, progress=False)
    assert list(result["status"]) == ["finished"] * 4
    assert list(result["trained"]) == [3] * 4  # levels at 1, 0.7 and 0.5
    assert result["node"].nunique() == 2, result  # both nodes took items
    for item in plan.items:
        sweep.run_item(item, tmp_path / "sequential", tmp_path / "out")
    swept = stored_records(tmp_path / "swept")
    assert len(swept) == 4
    assert swept == stored_records(tmp_path / "sequential")


def test_a_sweep_stopped_half_way_resumes_without_training_a_finished_stage_again(
        tmp_path, one_node, keep_threads):
    # One item at a time (--cpus 1), each stage long enough to stop the sweep in the
    # middle of the second item.
    file = write(tmp_path, SMOKE_RUNS.replace("seeds = [0, 1]", "seeds = [0]")
                 .replace('"weight_rewinding"]', '"weight_rewinding", "finetune"]')
                 .replace("target_density", "train_steps = 800\ntarget_density"))
    store, out = tmp_path / "runs", tmp_path / "out"
    plan = sweep.load(file, store=store, out=out)
    folders = [Path(sweep_file.run_folder(item.task, store)) for item in plan.items]
    command = [sys.executable, "-m", "pruninglab", "sweep", str(file), "--store",
               str(store), "--out", str(out), "--cpus", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            done = [len(list(f.glob("record_*.json"))) for f in folders]
            if sorted(done, reverse=True)[:2] >= [3, 1]:  # one item done, one begun
                break
            if process.poll() is not None:
                pytest.fail("the sweep ended before it could be stopped half way:\n"
                            + process.communicate()[0][-3000:])
            if time.monotonic() > deadline:
                pytest.fail(f"after 120 s no item had finished with another begun: {done}")
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert "interrupted" in output and "Run the same command again" in output
    stored = [len(list(f.glob("record_*.json"))) for f in folders]
    assert 3 in stored and any(0 < n < 3 for n in stored), stored  # one done, one cut short
    assert list(sweep.plan(plan)["status"]) == [
        "done" if n == 3 else f"{n}/3 stages stored" if n else "to run" for n in stored]

    result = sweep.run(plan, progress=False)  # the next start, on Ray with one node
    assert list(result["status"]) == ["done before" if n == 3 else "finished" for n in stored]
    trained = [0 if pd_na(t) else t for t in result["trained"]]
    assert trained == [3 - n for n in stored]  # only the stages the store lacked
    assert [len(list(f.glob("record_*.json"))) for f in folders] == [3, 3, 3]


def pd_na(value) -> bool:
    return value is None or str(value) == "<NA>"


def test_a_failing_item_is_tried_again_and_reported_while_the_others_finish(
        one_node, tmp_path, capsys, keep_threads):
    file = write(tmp_path, """
[sweep]
retries = 1

[[runs]]
preset = "lr_rewinding"
profile = "smoke"
dataset = ["mnist", "digits"]   # mnist is not in the (empty) PRUNINGLAB_DATA
seeds = [0]
target_density = 0.5
""")
    plan = sweep.load(file, store=tmp_path / "runs", out=tmp_path / "out")
    if not ray.cluster_resources().get("GPU"):  # an item no node can hold: refused at once
        greedy = dataclasses.replace(plan, items=tuple(
            dataclasses.replace(item, gpus=0.5) for item in plan.items))
        with pytest.raises(ValueError, match=r"gpus=0.5, but no node .* 0 GPUs"):
            sweep.run(greedy, progress=False)
        assert not (tmp_path / "runs").exists()
    result = sweep.run(plan)
    failed, finished = result.iloc[0], result.iloc[1]
    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert failed["error"].startswith("FileNotFoundError") and "mnist" in failed["error"]
    assert finished["status"] == "finished" and finished["trained"] == 3
    shown = capsys.readouterr()
    said = shown.out + shown.err
    assert "lr_rewinding mlp mnist seed 0: attempt 1 failed (FileNotFoundError" in said
    assert "trying again" in said and "failed after 2 attempt(s)" in said


def test_items_after_a_barrier_run_again_when_an_item_before_it_ran_now(one_node, tmp_path,
                                                                       keep_threads):
    file = write(tmp_path, SMOKE_RUNS.replace("seeds = [0, 1]", "seeds = [0]") + """
[[runs]]                # after the barrier: as a report is after the runs it reads
after = true
preset = "lr_rewinding"
profile = "smoke"
seeds = [1]
target_density = 0.5
""")
    plan = sweep.load(file, store=tmp_path / "runs")
    assert [(i.name, i.group) for i in plan.items] == [
        ("lr_rewinding mlp digits seed 0", 0), ("weight_rewinding mlp digits seed 0", 0),
        ("lr_rewinding mlp digits seed 1", 1)]
    assert list(sweep.run(plan, progress=False)["trained"]) == [3, 3, 3]
    assert list(sweep.run(plan, progress=False)["status"]) == ["done before"] * 3
    (Path(sweep_file.run_folder(plan.items[0].task, plan.store)) / "record_002.json").unlink()
    again = sweep.run(plan, progress=False)
    assert list(again["status"]) == ["finished", "done before", "finished"]
    assert [0 if pd_na(t) else t for t in again["trained"]] == [1, 0, 0]
