"""Kill and resume: every experiment killed at several points (mid-write of a checkpoint or a
record, mid-training) and run again ends with records equal to an uninterrupted run's, and
leaves no temporary files.

One helper process (``crash_helper.py``) runs all scenarios in forked children with one
torch thread each, so that killed, resumed and reference runs compute the same bits.
"""

from __future__ import annotations

from pruninglab import runs

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("crash_helper.py")

# Where to kill each experiment (counted over the run-store writes and Trainer.run calls of
# an uninterrupted run: gimp writes config, environment, then a checkpoint and a record per
# level; tom the same per phase; shuffle first computes the ticket, then a run per
# modification; at_init trains once).
KILLS = {
    "gimp": [{"writes": 3}, {"writes": 8}, {"trainings": 6}],
    "tom": [{"writes": 5}, {"trainings": 2}],
    "shuffle": [{"writes": 5}, {"trainings": 6}],
    "at_init": [{"trainings": 1}, {"writes": 3}],
}
CASES = [(kind, kill) for kind, kills in KILLS.items() for kill in kills]
KINDS = list(KILLS)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    scenarios = [{"kind": kind, "store": str(root / f"reference-{kind}"), "kill": None}
                 for kind in KILLS]
    for i, (kind, kill) in enumerate(CASES):
        store = str(root / f"killed-{i}")
        scenarios += [{"kind": kind, "store": store, "kill": kill},
                      {"kind": kind, "store": store, "kill": None}]
    spec = root / "spec.json"
    spec.write_text(json.dumps({"scenarios": scenarios}))
    env = {**os.environ, "PYTHONPATH": str(HELPER.parents[1])}
    done = subprocess.run([sys.executable, str(HELPER), str(spec)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    statuses = json.loads(done.stdout.strip().splitlines()[-1])
    return root, dict(zip(range(len(scenarios)), statuses))


def _records(store: Path) -> dict[str, list[dict]]:
    return {run.path.name: [{k: v for k, v in r.items() if k != "seconds"}
                            for r in run.records()]
            for run in runs.iter_runs(store)}


@pytest.mark.parametrize("case", range(len(CASES)),
                         ids=[f"{kind}-{next(iter(k))}={next(iter(k.values()))}"
                              for kind, k in CASES])
def test_a_killed_run_resumes_to_the_records_of_an_uninterrupted_run(outcome, case):
    root, statuses = outcome
    kind, kill = CASES[case]
    first = len(KILLS) + 2 * case
    assert statuses[first]["status"] == -signal.SIGKILL, f"the kill at {kill} never happened"
    assert statuses[first + 1]["status"] == 0
    killed, reference = root / f"killed-{case}", root / f"reference-{kind}"
    assert _records(killed) == _records(reference)
    resumed, full = statuses[first + 1], statuses[KINDS.index(kind)]
    if statuses[first]["records"]:  # work finished before the kill is not done again
        assert resumed["trainings"] < full["trainings"]
    assert resumed["trainings"] <= full["trainings"]
    assert all(r for r in _records(killed).values())
    assert not list(killed.glob("*/.*.tmp")), "temporary files were left behind"


def test_the_references_ran_to_the_end(outcome):
    _, statuses = outcome
    assert [statuses[i]["status"] for i in range(len(KILLS))] == [0] * len(KILLS)
