"""pruninglab: a small PyTorch library and a row of notebooks about pruning neural networks,
following Mikler (2021), *On Pruning Methods for Neural Networks*.

The package's folders are its architecture (docs/design.md, "Layout"); imports point down:

* ``core``: the thesis's methods on plain ``nn.Module``s (models, data, masking, saliency,
  pruning, training, optimizers, schedules, and the helpers they share);
* ``experiments``: the run store and its runner, ``Setup`` and the profiles, the stored
  experiments (GIMP, Training Optimal Masks, mask shuffles, pruning at initialization, BN),
  the verdicts and the reproduction report;
* ``course``: the notebook harness, the exercises, widgets, plots and the course site;
* ``scale``: the ``pruninglab`` command, sweeps and benchmarks.

Every module is also reachable by its own name, ``pl.gimp``, ``pl.runs``, ``pl.notebooks``
..., and ``from pruninglab import gimp`` works too. ``import pruninglab`` loads torch and
``core`` only; the rest loads when first used, so that a plain import stays quick and pulls
in no Jupyter, papermill or Ray.

Importing the package first asks OpenMP to wait passively, if torch has not loaded yet
(:func:`pruninglab.core.threads.prefer_passive_waiting`): it must happen before torch loads.
"""

import functools
import importlib
import pkgutil
from pathlib import Path

from .core import threads

threads.prefer_passive_waiting()

from .core import (  # noqa: E402, F401  (after the line above, which must precede torch)
    checks,
    data,
    efficiency,
    interop,
    masking,
    models,
    optim,
    pruning,
    saliency,
    schedules,
    seeding,
    timing,
    train,
)
from .core.train import TrainConfig  # noqa: E402, F401

__version__ = "0.1.0"

# The classes and functions a notebook names at the top level: name -> the module that
# defines it.
_LAZY_NAMES: dict[str, str] = {"Setup": "config", "GIMPConfig": "gimp", "TOMConfig": "tom",
                               "show": "source"}


@functools.cache
def _homes() -> dict[str, str]:
    """Each module by name, with its folder: the folders are the only list of them."""
    here = Path(__file__).parent
    return {info.name: folder for folder in ("core", "experiments", "course", "scale")
            for info in pkgutil.iter_modules([str(here / folder)])}


def __getattr__(name: str) -> object:
    """``pl.gimp``, ``pl.notebooks``, ``pl.Setup``, ``pl.show``, ...: imported on first use."""
    if name in _homes():
        value = importlib.import_module(f"{__name__}.{_homes()[name]}.{name}")
    elif name in _LAZY_NAMES:
        value = getattr(__getattr__(_LAZY_NAMES[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_homes(), *_LAZY_NAMES})
