"""Kill experiments at chosen points and resume them, for ``test_resume.py``.

Run as ``python tests/crash_helper.py SPEC.json``. The spec lists scenarios
``{"kind": ..., "store": ..., "kill": {"writes": k} | {"trainings": j} | null}``. Each
scenario runs in a forked child with one torch thread (so that every child computes the same
bits), one after another:

* ``{"writes": k}``: the k-th atomic write of the run store writes half its bytes to its
  temporary file, then the process kills itself with SIGKILL (as a kill mid-write would);
* ``{"trainings": j}``: the j-th call of ``Trainer.run`` trains half its steps, then SIGKILL;
* ``null``: runs to the end (a reference, or the resume after a kill).

Prints a JSON list: for each scenario, ``{"status": ..., "records": r, "writes": n,
"trainings": m}`` (status: the signal that ended the child as a negative number, or its exit
code; records: the record files in the store when the child ended; writes and trainings: the
calls the child made).
"""

from __future__ import annotations

from pruninglab import at_init, gimp, runs, schedules, shuffle, tom, train
from pruninglab import data as data_module
from pruninglab.core.train import TrainConfig
from pruninglab.experiments.config import Setup

import json
import os
import signal
import sys
from pathlib import Path

import torch

T = 12
SETUP = Setup("lenet300", "digits", TrainConfig(schedules.resnet(T), batch_size=32))


def experiment(kind: str, store: str, data: data_module.Dataset) -> None:
    if kind == "gimp":
        gimp.run(SETUP, gimp.sgimp(T, 0.3, rewind_fraction=0.5), data=data, store=store,
                 progress=False)
    elif kind == "tom":
        tom.run(SETUP, tom.TOMConfig(T, 0.2, mask_steps=4), data=data, store=store,
                progress=False)
    elif kind == "shuffle":
        shuffle.run(SETUP, density=0.5, data=data, store=store, progress=False)
    elif kind == "at_init":
        at_init.run(SETUP, 0.3, "snip", data=data, store=store, progress=False)
    else:
        raise ValueError(f"unknown kind {kind!r}")


def child(scenario: dict, report: Path, data: data_module.Dataset) -> None:
    counts = {"writes": 0, "trainings": 0}
    kill = scenario.get("kill") or {}
    real_write, real_run = runs.atomic_write, train.Trainer.run

    def save_counts() -> None:
        report.write_text(json.dumps(counts))

    def write(path, payload):
        counts["writes"] += 1
        save_counts()
        if counts["writes"] == kill.get("writes"):
            runs._temporary(Path(path)).write_bytes(payload[: len(payload) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return real_write(path, payload)

    def run(self, steps, callbacks=()):
        counts["trainings"] += 1
        save_counts()
        if counts["trainings"] == kill.get("trainings"):
            real_run(self, steps // 2, callbacks)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_run(self, steps, callbacks)

    runs.atomic_write = write
    train.Trainer.run = run
    experiment(scenario["kind"], scenario["store"], data)
    save_counts()


def main() -> None:
    torch.set_num_threads(1)  # before any torch work: the forked children start clean
    data = data_module.load("digits")
    spec = json.loads(Path(sys.argv[1]).read_text())
    results = []
    for i, scenario in enumerate(spec["scenarios"]):
        report = Path(sys.argv[1]).with_suffix(f".{i}.counts")
        pid = os.fork()
        if pid == 0:
            try:
                child(scenario, report, data)
            except BaseException:
                import traceback

                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        counts = json.loads(report.read_text()) if report.is_file() else {}
        records = len(list(Path(scenario["store"]).glob("*/record_*.json")))
        results.append({"status": code, "records": records, **counts})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
