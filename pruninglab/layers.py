"""The library's layers, written down once: a module imports only from its own layer or the
layers below it (DESIGN.md, "Layers"). ``tests/test_layers.py`` checks every import.

1. foundations: data, models, masks and the optimizers that keep them, schedules, the run
   store and its runner, and small helpers (argument checks, seeds, threads, timing);
2. operations on models: pruning, training, conversions, the teaching functions;
3. what an experiment is made of: the setup and the profiles;
4. the experiments, all on :mod:`pruninglab.runner`, the verdicts read from them, and the
   catalog of what a run store holds;
5. figures, benchmarks and inference efficiency, the course's exercises (whose references
   are the library's own functions, inference efficiency's included), the notebook harness,
   the course site built from its runs, and the sweeps that spread runs and notebooks over
   Ray;
6. what puts it all together: the widgets and the reproduction report;
7. the ``pruninglab`` command, which reaches all of it.
"""

from __future__ import annotations

__all__ = ["LAYERS", "layer_of"]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("checks", "seeding", "threads", "timing", "schedules", "models", "data", "masking",
     "optim", "saliency", "runs", "runner", "layers"),
    ("pruning", "train", "interop", "basics"),
    ("config", "profiles"),
    ("gimp", "tom", "shuffle", "at_init", "bn", "verdicts", "catalog"),
    ("plots", "bench", "efficiency", "exercise_checks", "exercises_basics", "exercises_pruning",
     "exercises", "notebooks", "book", "sweep_file", "sweep"),
    ("widgets", "reproduction"),
    ("cli",),
)


def layer_of(module: str) -> int:
    """The layer (1 to 7) of ``module`` (``"gimp"`` or ``"pruninglab.gimp"``)."""
    name = module.removeprefix("pruninglab.")
    for number, names in enumerate(LAYERS, start=1):
        if name in names:
            return number
    raise ValueError(f"module {module!r} has no layer; add it to pruninglab.layers.LAYERS")
