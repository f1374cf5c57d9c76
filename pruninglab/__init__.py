"""pruninglab: a small PyTorch library and a row of notebooks about pruning neural networks,
following Mikler (2021), *On Pruning Methods for Neural Networks*.

Modules (one idea each; their layers are in :mod:`pruninglab.layers`): ``models``, ``data``,
``schedules``, ``train``, ``masking``, ``optim``, ``saliency``, ``pruning``, ``interop``,
``runs`` and ``runner`` (the run store and the one experiment runner), ``catalog`` (what a
store holds), ``gimp``, ``tom``,
``shuffle``, ``bn``, ``at_init``, ``verdicts``, ``config``, ``profiles``, ``plots``,
``efficiency``, ``reproduction``, ``basics``, ``exercises`` (the course's exercises in
``exercises_basics`` and ``exercises_pruning``, checked by ``exercise_checks``), and the
helpers ``checks``,
``seeding``, ``threads`` and ``timing``;
``notebooks``, ``widgets`` and ``bench`` load on first use; ``book`` (the course site,
``make book``) is imported only by its builder, and ``cli`` (the ``pruninglab`` command) by
the command.

Importing the package first asks OpenMP to wait passively, if torch has not loaded yet
(:func:`pruninglab.threads.prefer_passive_waiting`): it must happen before torch loads.
"""

import importlib

from . import threads

threads.prefer_passive_waiting()

from . import (  # noqa: E402, F401  (after the line above, which must precede torch)
    at_init,
    basics,
    bn,
    catalog,
    checks,
    config,
    data,
    efficiency,
    exercises,
    gimp,
    interop,
    masking,
    models,
    optim,
    plots,
    profiles,
    pruning,
    reproduction,
    runner,
    runs,
    saliency,
    schedules,
    seeding,
    shuffle,
    timing,
    tom,
    train,
    verdicts,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``notebooks`` (and ``bench``) are also run as ``python -m pruninglab.<name>``; importing
    # them lazily keeps runpy from warning that they were imported before execution.
    if name in ("notebooks", "bench", "widgets"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
