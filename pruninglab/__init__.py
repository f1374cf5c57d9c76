"""pruninglab: a small PyTorch library and a row of notebooks about pruning neural networks,
following Mikler (2021), *On Pruning Methods for Neural Networks*.

Modules (one idea each; their layers are in :mod:`pruninglab.layers`): ``models``, ``data``,
``schedules``, ``train``, ``masking``, ``saliency``, ``pruning``, ``interop``, ``runs`` and
``runner`` (the run store and the one experiment runner), ``gimp``, ``tom``, ``shuffle``,
``bn``, ``at_init``, ``verdicts``, ``config``, ``profiles``, ``plots``, ``efficiency``,
``reproduction``, ``basics``, and the helpers ``checks``, ``seeding`` and ``timing``;
``notebooks``, ``widgets`` and ``bench`` load on first use.
"""

import importlib

from . import (  # noqa: F401
    at_init,
    basics,
    bn,
    checks,
    config,
    data,
    efficiency,
    gimp,
    interop,
    masking,
    models,
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
