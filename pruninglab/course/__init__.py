"""The course: the notebook harness, the exercises and their checks, widgets, plots, the
teaching helpers and the course site. Imports ``core`` and ``experiments`` (docs/design.md)."""
