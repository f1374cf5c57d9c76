"""Experiments that are stored: the run store and its runner, ``Setup`` and the profiles,
GIMP, Training Optimal Masks, mask shuffles, pruning at initialization and BN settings, the
catalog of a store, the verdicts and the reproduction report. Imports ``core`` only
(docs/design.md)."""
