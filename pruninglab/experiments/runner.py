"""One runner for every experiment: the run store, resuming, checkpoints and the DataFrame.

An experiment is a row of *stages* -- GIMP's levels, TOM's phases, the single training of
pruning at initialization. Stage ``i`` starts from a *state* (a dict of CPU tensors and
numbers: what a checkpoint holds), and gives a record and the state stage ``i + 1`` starts
from::

    state_0 = start()
    record_0, state_1 = stage(0, state_0)       store: record_000.json, checkpoint_001.pt
    record_1, state_2 = stage(1, state_1)       store: record_001.json, checkpoint_002.pt
    ...

:func:`run` does the rest for every experiment alike: a finished run comes back from the
store at once; an interrupted one continues from the latest checkpoint it can trust (its
checksum holds and it has the structure of ``start()``'s state), recomputing the stage
before a damaged one; the store is checked writable before any training; while stages are
computed the run's lock is held (:meth:`~pruninglab.experiments.runs.RunDir.lock`), so that a second
process wanting the same run waits and then reads it instead of training it twice;
``fetch_only`` answers without training; ``on_record`` sees every record in order. The
experiments (:mod:`~pruninglab.experiments.gimp`, :mod:`~pruninglab.experiments.tom`,
:mod:`~pruninglab.experiments.shuffle`, :mod:`~pruninglab.experiments.at_init`) supply only
``start`` and ``stage``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from .runs import CorruptRecordWarning, RunDir

__all__ = ["Experiment", "run", "state_at"]

State = dict
Stage = Callable[[int, State], tuple[dict, State | None]]


@dataclass
class Experiment:
    """One run of an experiment, as :func:`run` needs it.

    Attributes:
        kind: the run store's kind (``"gimp"``, ``"tom"``, ...); the folder's prefix.
        config: everything that determines the results; its hash names the folder.
        stages: a label per stage (for progress bars); one record each.
        start: builds the state stage 0 starts from. It is also the structure every
            checkpoint of this run must have, so it is called before any training (and is
            where an experiment checks its inputs against the model).
        stage: ``(index, state) -> (record, next state)``; the next state is ``None`` (or
            ignored) after the last stage.
        columns: constant columns put first in the DataFrame (``method``, ``seed``, ...).
        label: the progress bar's label.
    """

    kind: str
    config: dict
    stages: list[str]
    start: Callable[[], State]
    stage: Stage
    columns: dict = field(default_factory=dict)
    label: str = ""


def run(experiment: Experiment, store: str | os.PathLike | None = None, progress: bool = True,
        on_record: Callable[[dict], None] | None = None,
        fetch_only: bool = False) -> pd.DataFrame | None:
    """Every stage of ``experiment``, from the run store or computed.

    Args:
        experiment: what to run.
        store: run-store root (``None``: ``$PRUNINGLAB_RUNS`` or ``./runs``).
        progress: a tqdm bar over the stages.
        on_record: called with each record in order, the stored ones first.
        fetch_only: return ``None`` instead of computing when the store does not hold the
            finished run (for widgets that must answer at once); no folder is created.

    Returns:
        One row per stage: ``experiment.columns``, then the records' fields.
    """
    new = not RunDir.path_for(experiment.kind, experiment.config, store).is_dir()
    if fetch_only and new:
        return None  # not even started: do not create an empty folder
    # A new run checks its inputs (start() builds the model) before it makes its folder.
    template = experiment.start() if new else None
    run_dir = RunDir.open(experiment.kind, experiment.config, store)
    total = len(experiment.stages)
    records = run_dir.records()[:total]
    if len(records) < total and fetch_only:
        return None
    with contextlib.ExitStack() as held:
        if len(records) < total:
            _prepare_to_write(run_dir)
            held.enter_context(run_dir.lock(on_wait=_say))
            records = run_dir.records(warn=False)[:total]  # what another process stored
        missing = len(records) < total
        if missing:
            template = template if template is not None else experiment.start()
            first, state = _trusted_start(run_dir, len(records), template)
            del records[first:]
            run_dir.discard_from(first)
        if on_record is not None:
            for record in records:  # the stored ones; _compute reports the new ones
                on_record(record)
        if missing:
            _compute(experiment, run_dir, first, total, state, progress, on_record, records)
    return frame(experiment, records)


def state_at(experiment: Experiment, index: int, store: str | os.PathLike | None = None,
             progress: bool = True) -> State:
    """The state stage ``index`` starts from: its checkpoint if it can be trusted, else
    recomputed from the latest trusted one before it (rewriting those stages' records,
    which come out the same)."""
    if not 0 <= index < len(experiment.stages):
        raise ValueError(f"index must lie in [0, {len(experiment.stages)}), got {index!r}")
    run_dir = RunDir.open(experiment.kind, experiment.config, store)
    template = experiment.start()
    if index == 0:
        return template
    state = run_dir.load_checkpoint(index, expected=template)
    if state is None:
        _prepare_to_write(run_dir)
        with run_dir.lock(on_wait=_say):
            with warnings.catch_warnings():  # stored meanwhile? (a damaged one warned above)
                warnings.simplefilter("ignore", CorruptRecordWarning)
                state = run_dir.load_checkpoint(index, expected=template)
            if state is None:
                first, state = _trusted_start(run_dir, index - 1, template)
                state = _compute(experiment, run_dir, first, index, state, progress, None, [])
    return state


def frame(experiment: Experiment, records: list[dict]) -> pd.DataFrame:
    """The records as a DataFrame, ``experiment.columns`` first."""
    df = pd.DataFrame(records)
    for position, (name, value) in enumerate(experiment.columns.items()):
        df.insert(position, name, [value] * len(df))
    return df


def _say(message: str) -> None:
    """A line now, beside any progress bar (flushed: a log file shows it while we wait)."""
    tqdm.write(message)
    sys.stdout.flush()


def _prepare_to_write(run_dir: RunDir) -> None:
    """Before any stage runs: the folder must be writable; the environment is recorded."""
    run_dir.check_writable()
    run_dir.write_environment()


def _trusted_start(run_dir: RunDir, index: int, template: State) -> tuple[int, State]:
    """The latest stage ``<= index`` whose start state can be trusted, and that state (stage
    0 starts from ``template``, the experiment's ``start()``)."""
    while index > 0:
        state = run_dir.load_checkpoint(index, expected=template)
        if state is not None:
            return index, state
        index -= 1
    return 0, template


def _compute(experiment: Experiment, run_dir: RunDir, first: int, stop: int, state: State,
             progress: bool, on_record: Callable[[dict], None] | None,
             records: list[dict]) -> State | None:
    """Stages ``first .. stop - 1``: each writes its next state's checkpoint, then its record
    (so a stored record always has the checkpoint after it). Returns the state stage
    ``stop`` starts from."""
    total = len(experiment.stages)
    bar = tqdm(range(first, stop), desc=experiment.label or experiment.kind, initial=first,
               total=total, disable=not progress, leave=False)
    for index in bar:
        bar.set_postfix_str(experiment.stages[index])
        record, state = experiment.stage(index, state)
        if index + 1 < total:
            if state is None:
                raise RuntimeError(f"stage {index} of {experiment.kind} gave no state for the "
                                   "next stage")
            run_dir.save_checkpoint(index + 1, state)
        run_dir.write_record(index, record)
        records.append(record)
        if on_record is not None:
            on_record(record)
    bar.close()
    return state
