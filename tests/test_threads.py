"""pruninglab.core.threads: the usable CPUs from affinity and cgroup quotas (v1 and v2, written
here as files), the plan (one CPU left, $PRUNINGLAB_THREADS), and what configure sets."""

from __future__ import annotations

from pruninglab import threads

import os
import subprocess
import sys

import pytest
import torch


def cgroup_v2(tmp_path, path: str, quotas: dict[str, str]):
    """A cgroup v2 tree under ``tmp_path``: the process in ``path``, ``cpu.max`` files at
    the folders named in ``quotas``. Returns ``(root, self_cgroup)`` for the functions."""
    root = tmp_path / "cgroup"
    for folder, text in quotas.items():
        (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (root / folder.lstrip("/") / "cpu.max").write_text(text + "\n")
    self_cgroup = tmp_path / "self_cgroup"
    self_cgroup.write_text(f"0::{path}\n")
    return root, self_cgroup


def test_a_cgroup_v2_quota_is_read_from_cpu_max():
    assert threads._quota_file("150000 100000") == 1.5
    assert threads._quota_file("max 100000") is None


@pytest.mark.parametrize("text", ["", "100000", "100000 0", "abc 100000", "-1 100000"])
def test_a_cpu_max_that_is_not_a_quota_counts_as_none(text):
    assert threads._quota_file(text) is None


def test_lines_of_proc_self_cgroup_that_are_not_id_controllers_path_are_skipped(tmp_path):
    root, me = cgroup_v2(tmp_path, "/box", {"/box": "200000 100000"})
    me.write_text("garbage\n7:pids\n0::/box\n")
    assert threads.cgroup_quota(root, me) == 2.0


def test_a_cgroup_path_leading_out_of_the_namespace_stays_inside_the_mount(tmp_path):
    root, me = cgroup_v2(tmp_path, "/../../outside", {"/": "100000 100000"})
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "cpu.max").write_text("50000 100000\n")  # must not be read
    assert threads.cgroup_quota(root, me) == 1.0


def test_the_smallest_quota_of_the_cgroup_and_its_ancestors_wins(tmp_path):
    root, me = cgroup_v2(tmp_path, "/kubepods/pod1/box",
                         {"/kubepods/pod1/box": "400000 100000", "/kubepods/pod1": "150000 100000",
                          "/kubepods": "max 100000"})
    assert threads.cgroup_quota(root, me) == 1.5


def test_no_quota_anywhere_is_none(tmp_path):
    root, me = cgroup_v2(tmp_path, "/user.slice", {"/user.slice": "max 100000"})
    assert threads.cgroup_quota(root, me) is None
    assert threads.cgroup_quota(root, tmp_path / "missing") is None


def test_inside_a_container_the_top_files_of_the_mount_are_read(tmp_path):
    """With a cgroup namespace the path is ``/``; a path that is not there falls back up."""
    root, me = cgroup_v2(tmp_path, "/not/mounted/here", {"/": "100000 100000"})
    assert threads.cgroup_quota(root, me) == 1.0


def v1_quota(folder, quota: int, period: int = 100000) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct", "cpuacct,cpu", "cpu,cpuacct,cpuset"])
def test_a_cgroup_v1_cfs_quota_is_read_from_any_hierarchy_holding_cpu(tmp_path, mount):
    folder = tmp_path / "cgroup" / mount / "docker" / "abc"
    v1_quota(folder, 200000)
    me = tmp_path / "self_cgroup"
    me.write_text(f"4:memory:/docker/abc\n3:{mount}:/docker/abc\n0::/\n")
    assert threads.cgroup_quota(tmp_path / "cgroup", me) == 2.0
    v1_quota(folder, -1)  # v1's "no quota"
    assert threads.cgroup_quota(tmp_path / "cgroup", me) is None


def test_a_cgroup_v1_quota_of_an_ancestor_applies_too(tmp_path):
    mount = tmp_path / "cgroup" / "cpu"
    v1_quota(mount / "course", 150000)
    v1_quota(mount / "course" / "student7", -1)
    me = tmp_path / "self_cgroup"
    me.write_text("1:cpu:/course/student7\n")
    assert threads.cgroup_quota(tmp_path / "cgroup", me) == 1.5


@pytest.mark.parametrize(("affinity", "quota", "usable", "planned"), [
    (2, None, 2, 1),              # a 2-core laptop
    (1, None, 1, 1),              # taskset -c 0
    (8, None, 8, 7),
    (16, "150000 100000", 1, 1),  # a Binder-like quota of 1.5 CPUs on a big machine
    (16, "400000 100000", 4, 3),
    (2, "800000 100000", 2, 1),   # a quota above the affinity: the affinity wins
])
@pytest.mark.parametrize("policy", ["PASSIVE", "passive", "", "ACTIVE"])
def test_the_plan_leaves_one_usable_cpu_to_the_rest_of_the_machine_and_names_the_wait_policy(
        tmp_path, monkeypatch, affinity, quota, usable, planned, policy):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
    root, me = cgroup_v2(tmp_path, "/box", {"/box": quota or "max 100000"})
    environ = {"OMP_WAIT_POLICY": policy} if policy else {}
    plan = threads.plan(environ, root=root, self_cgroup=me)
    passive = policy.lower() == "passive"
    assert (plan.threads, plan.usable) == (planned, usable)
    assert f"affinity {affinity} CPU" in plan.reason
    assert ("no cgroup quota" in plan.reason) == (quota is None)
    assert ("OpenMP waits passively" in plan.reason) == passive
    assert str(plan).startswith(f"{planned} torch thread")
    assert ("one CPU left to the rest of the machine" in str(plan)) == (planned < usable)


def test_importing_pruninglab_before_torch_makes_openmp_wait_passively():
    code = ("import os; import pruninglab\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), pruninglab.core.threads.plan().reason)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "PRUNINGLAB_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert out.startswith("PASSIVE") and "OpenMP waits passively" in out


def test_the_wait_policy_is_left_alone_once_torch_is_loaded_or_the_user_set_it(monkeypatch):
    """OpenMP reads the variable when torch loads: setting it later would change nothing
    and make the plan believe the threads sleep."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert "torch" in sys.modules
    assert threads.prefer_passive_waiting() is False
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delitem(sys.modules, "torch")  # as if torch were not loaded yet
    assert threads.prefer_passive_waiting() is True
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert threads.prefer_passive_waiting() is False
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's choice is kept


def test_without_an_affinity_call_the_cores_are_usable(tmp_path, monkeypatch):
    """macOS and Windows have no os.sched_getaffinity."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    root, me = cgroup_v2(tmp_path, "/", {})
    assert threads.usable_cpus(root, me) == (6, "6 cores, no cgroup quota")


def test_PRUNINGLAB_THREADS_overrides_the_plan(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    plan = threads.plan({"PRUNINGLAB_THREADS": "3"})
    assert (plan.threads, plan.usable) == (3, None)
    assert "PRUNINGLAB_THREADS=3" in str(plan)


def test_PRUNINGLAB_THREADS_above_the_cpus_of_the_affinity_mask_is_clamped_and_says_so(
        monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    plan = threads.plan({"PRUNINGLAB_THREADS": "64"})
    assert plan.threads == 2
    assert "PRUNINGLAB_THREADS=64 clamped to the affinity 2 CPUs" in str(plan)
    assert threads.plan({"PRUNINGLAB_THREADS": "2"}).threads == 2  # at the limit: as asked


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "\u00b2"])
def test_a_bad_PRUNINGLAB_THREADS_is_an_error_naming_it_and_its_value(value):
    with pytest.raises(ValueError, match=rf"PRUNINGLAB_THREADS='{value}' is not a positive"):
        threads.plan({"PRUNINGLAB_THREADS": value})


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_configure_refuses_a_thread_count_that_is_not_a_positive_integer(value):
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        threads.configure(value)


def test_configure_sets_torch_blas_and_the_variables_of_child_processes(restore_threads):
    plan = threads.configure(1)
    assert plan.threads == torch.get_num_threads() == 1
    assert all(os.environ[name] == "1" for name in threads.CHILD_ENV)
    from threadpoolctl import threadpool_info

    assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    child = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "1"  # a process started afterwards starts with it


def test_the_notebook_harness_applies_the_plan_and_shows_it(monkeypatch, restore_threads,
                                                           tmp_path, capsys):
    from pruninglab import notebooks

    monkeypatch.setenv("PRUNINGLAB_THREADS", "1")
    monkeypatch.setenv("PRUNINGLAB_RUNS", str(tmp_path))
    monkeypatch.delenv("PRUNINGLAB_PROFILE", raising=False)
    torch.set_num_threads(2)
    ctx = notebooks.start("smoke")
    assert torch.get_num_threads() == 1 and ctx.threads.threads == 1
    assert "1 torch thread (PRUNINGLAB_THREADS=1)" in capsys.readouterr().out
