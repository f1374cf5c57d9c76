"""Experiments that are stored: the run store and its runner, ``Setup`` and the profiles,
GIMP, Training Optimal Masks, mask shuffles, pruning at initialization and BN settings, the
catalog of a store, the verdicts and the reproduction report. Imports ``core`` only
(docs/design.md)."""

import importlib
import sys
from collections.abc import Callable


def forwarding(module: str, homes: dict[str, str],
               ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` that find each name of ``homes`` (name ->
    module of this package) in its home, imported on first use: an algorithm module keeps
    ``gimp.run`` working (and tab-completing) while the store glue lives in ``gimp_runs``,
    which imports the algorithm."""

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{__name__}.{homes[name]}"), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[module]), *homes})

    return __getattr__, __dir__
