"""An algorithm as a stored, resumable experiment: the one glue between an algorithm's
stages (GIMP's levels, TOM's phases, one training) and the run store's runner.

Each stage rebuilds the masked model from its checkpoint's ``"model"`` state, hands it to
the algorithm's ``step``, which works on it in place, and checkpoints it again with whatever
else ``step`` says the next stage needs (a schedule position, an optimizer's state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from ..core.data import Dataset
from . import runner, runs
from .config import Setup

__all__ = ["run_config", "experiment"]

# (model, stage index, the stage's start state) -> (record, what the next stage needs, or None)
Step = Callable[[nn.Module, int, dict], tuple[dict, dict | None]]


def run_config(kind: str, setup: Setup, **fields: object) -> dict:
    """The dict the run store keys a run by; its hash names the run's folder."""
    return {"kind": kind, "setup": setup.to_dict(), **fields}


def experiment(setup: Setup, data: Dataset, config: dict, stages: Sequence[str], step: Step, *,
               label: str, exclude: Sequence[str] = (),
               carry: Callable[[nn.Module], dict] | None = None,
               start: Callable[[], dict] | None = None,
               columns: dict | None = None) -> runner.Experiment:
    """``step`` as a :class:`~pruninglab.experiments.runner.Experiment` of ``stages``.

    Stage 0 starts from ``setup``'s masked initialization (``exclude`` spared) and
    ``carry(model)`` (e.g. a fresh optimizer's state), or from ``start()`` when given.
    The rows get ``columns`` first (default: ``method`` = ``label`` and ``seed``).
    """
    setup.check_data(data)

    def initial() -> dict:
        model = setup.masked_model(data, exclude)
        return runs.cpu_state({"model": model.state_dict(), **(carry(model) if carry else {})})

    def stage(index: int, state: dict) -> tuple[dict, dict | None]:
        model = setup.masked_model(data, exclude, state=state["model"])
        record, after = step(model, index, state)
        if after is None:
            return record, None
        return record, runs.cpu_state({"model": model.state_dict(), **after})

    return runner.Experiment(
        kind=config["kind"], config=config, stages=list(stages), start=start or initial,
        stage=stage, columns={"method": label, "seed": setup.seed} if columns is None else columns,
        label=label)
