"""Exercises: small functions a student writes in a notebook, checked against the library.

An exercise in a notebook is a stub and one call::

    def linear_parameters(n_in: int, n_out: int) -> int:
        ...  # your code

    pl.exercises.check("01.2", linear_parameters)

:func:`check` calls the answer and the library's reference on the same inputs (drawn with
fixed seeds, so a hint is the same every time it is shown) and prints one line:

* a pass;
* ``not done yet`` for a stub: ``None``, ``...``, a function that raises
  ``NotImplementedError`` or that returns ``None`` (the body ``...`` does);
* or a hint that names what is wrong: the first input on which the answer differs, what
  was expected and what came back (the count, the shape, the dtype, the value), and, when
  the answer behaves like a known mistake (the other momentum convention, rounding down,
  the wrong axis, ...), the mistake by name. A function is tried on at least 30 inputs,
  edge cases among them; one whose parameters are not the stub's (renamed, say) is told to
  keep the stub's names. For a value exercise the hint never shows the expected value (it
  *is* the answer): it says only whether the value is too large or too small, or of the
  wrong type.

It returns ``True`` or ``False`` and never raises, so a notebook's Run All goes on. Each
exercise stands alone: later cells never call a student's answer.

Headless runs (``make run``, ``make test``) set ``PRUNINGLAB_FILL_EXERCISES=1``: a stub is
then checked as if it were the reference, and the line says so, so every check runs green
there while the student's copy keeps its stubs. ``PRUNINGLAB_FILL_EXERCISES=0`` or unset
leaves stubs as stubs.

:func:`names` lists the ids (``"NN.k"``: notebook ``NN``, exercise ``k``), :func:`describe`
gives the task in a sentence, :func:`solution` the reference (a function or a value).

The exercises themselves, with their inputs, references and known mistakes, are in
:mod:`pruninglab.course.exercises_basics` (notebooks 01-04) and
:mod:`pruninglab.course.exercises_pruning` (05-10); how an answer is compared and a mistake
recognised is :mod:`pruninglab.course.exercise_checks`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from . import exercises_basics, exercises_pruning
from .exercise_checks import Exercise, Mistake, difference, judge, one_line

__all__ = ["FILL_VARIABLE", "Exercise", "Mistake", "check", "describe", "difference",
           "fill_requested", "names", "solution"]

FILL_VARIABLE = "PRUNINGLAB_FILL_EXERCISES"


def check(id: str, answer: object) -> bool:
    """Check a student's ``answer`` to exercise ``id`` and print one line about it.

    Args:
        id: the exercise, e.g. ``"01.1"`` (:func:`names` lists them).
        answer: the student's function, or value for a value exercise.

    Returns:
        ``True`` if the answer agrees with the reference on every input, else ``False``.
        Never raises: an unknown id, a stub or an answer that fails prints why instead.
    """
    try:
        exercise = _get(id)
        fill = fill_requested()
    except ValueError as err:
        print(f"✗ {err}")
        return False
    try:
        # references build layers, which draw from torch's global generator: fork it, so
        # that running a check never changes what the notebook's later cells draw
        with torch.random.fork_rng(devices=[]), _one_thread():
            verdict, message = judge(exercise, answer)
            if verdict is None and fill:
                verdict, message = judge(exercise, exercise.reference)
                message = (f"not done yet; this headless run ({FILL_VARIABLE}=1) checks the "
                           f"reference in its place: {message}")
    except Exception as err:  # e.g. a result that cannot even be compared: say so, go on
        print(f"✗ {exercise.id} could not check the answer: {one_line(err)}")
        return False
    if verdict is None and not fill:
        message = f"not done yet: {message}"
    mark = "✓" if verdict else ("○" if verdict is None else "✗")
    print(f"{mark} {exercise.id} {message}")
    return bool(verdict)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread while a check runs, as it was afterwards: the inputs are tiny,
    and waking sleeping OpenMP threads for each of a reference's small operations (09's
    references step a BatchNorm layer hundreds of times) makes a check several times
    slower on a machine with several cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fill_requested() -> bool:
    """Whether ``$PRUNINGLAB_FILL_EXERCISES`` is ``1`` (``0`` or unset: no); else
    ``ValueError``."""
    value = os.environ.get(FILL_VARIABLE, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{FILL_VARIABLE} must be 0 or 1, got {value!r}")
    return value == "1"


def _get(id: str) -> Exercise:
    if id not in _EXERCISES:
        raise ValueError(f"no exercise {id!r}; the exercises are {', '.join(_EXERCISES)}")
    return _EXERCISES[id]


def names(notebook: str | None = None) -> list[str]:
    """The exercise ids in course order; ``notebook="04"`` keeps that notebook's."""
    if notebook is not None and not (isinstance(notebook, str) and len(notebook) == 2
                                     and notebook.isdigit()):
        raise ValueError(f"notebook must be two digits such as '04', got {notebook!r}")
    return [i for i in _EXERCISES if notebook is None or i.startswith(f"{notebook}.")]


def describe(id: str) -> str:
    """The task of exercise ``id`` in a sentence, with the signature the check calls."""
    exercise = _get(id)
    return f"{exercise.id} · {exercise.signature}: {exercise.task}"


def solution(id: str) -> object:
    """The reference answer of exercise ``id``: a function to call, or the value."""
    return _get(id).reference


def _catalog() -> dict[str, Exercise]:
    exercises = [*exercises_basics.exercises(), *exercises_pruning.exercises()]
    return {e.id: e for e in sorted(exercises, key=lambda e: e.id)}


_EXERCISES: dict[str, Exercise] = _catalog()
