"""The notebooks' parameters and what each may be.

Every notebook's cell tagged ``parameters`` (papermill's convention) declares ``PROFILE``,
``DEVICE``, ``SEED``, ... and the notebook's own. :func:`declared` reads them; :func:`check`
holds a value given from outside (``pruninglab notebooks run -p``, a sweep file) to the
library's own rules before any kernel starts, so that a typo or a bad value is one usage
error instead of a kernel that quietly runs the default, or fails an hour later.

:data:`RULES` holds the rule of every parameter the course declares (a test keeps it so);
a parameter of a notebook of your own without a rule must keep its default's type. The
parameters in :data:`LIST_VALUED` take a list as one value (``SEEDS = [0, 1]``).
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
from collections.abc import Callable
from pathlib import Path

from ..core import checks, data, models, seeding
from ..experiments import profiles

__all__ = ["RULES", "LIST_VALUED", "declared", "check"]

Rule = Callable[[object, str], object]  # (value, name) -> the value, or ValueError


def _one_of(options: Callable[[], list]) -> Rule:
    return lambda value, name: checks.one_of(value, name, options())


def _device(value: object, name: str) -> object:
    if not (isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", value)):
        raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got "
                         f"{checks.shown(value)}")
    return value


def _model(value: object, name: str) -> object:
    if not (isinstance(value, str) and len(value) < 100 and models.is_known(value)):
        raise ValueError(f"{name} must be a model name ({', '.join(models.names())}, or "
                         f"resnet<6n+2>, wrn-<6n+4>-<k>), got {checks.shown(value)}")
    return value.lower()  # "MLP" is "mlp": one name, one run-store folder


def _count(value: object, name: str) -> object:
    return checks.integer(value, name, minimum=1)


def _density(value: object, name: str) -> object:
    return checks.real(value, name, 0.0, 1.0, low_open=True, high_open=True)


def _fraction(value: object, name: str) -> object:
    return checks.real(value, name, 0.0, 1.0)


def _optional(rule: Rule) -> Rule:
    """``rule``, or ``None`` (the notebook's default: the profile's)."""
    def check_optional(value: object, name: str) -> object:
        return None if value is None else rule(value, name)
    check_optional.takes_list = getattr(rule, "takes_list", False)
    return check_optional


def _list_of(rule: Rule) -> Rule:
    """A non-empty list, each item held to ``rule``."""
    def check_list(value: object, name: str) -> object:
        if not isinstance(value, list) or not value:
            raise ValueError(f"{name} must be a list of at least one value, got "
                             f"{checks.shown(value)}")
        return [rule(item, f"{name}[{i}]") for i, item in enumerate(value)]
    check_list.takes_list = True
    return check_list


_DATASET = _optional(_one_of(data.names))
_MODEL = _optional(_model)

RULES: dict[str, Rule] = {
    "PROFILE": _one_of(lambda: list(profiles.PROFILES)),
    "DEVICE": _device,
    "SEED": seeding.check_seed,
    "DATASET": _DATASET, "SECOND_DATASET": _DATASET,
    "MODEL": _MODEL, "WIDE_MODEL": _MODEL, "NARROW_MODEL": _MODEL,
    "MODELS": _optional(_list_of(_model)),
    "INIT": _one_of(lambda: list(models.INITS)),
    "SEEDS": _optional(_list_of(seeding.check_seed)),
    **dict.fromkeys(["INTERACTIVE", "DOWNLOAD", "FASHION", "MIXED", "PACKAGED"],
                    checks.boolean),
    **dict.fromkeys(["HIDDEN", "XOR_STEPS", "BN_STEPS", "BATCH_SIZE", "SNIP_BATCHES",
                     "TRAIN_STEPS", "EVAL_SIZE", "FASHION_TRAIN_SIZE"], _optional(_count)),
    "IMAGE_INDEX": lambda value, name: checks.integer(value, name, minimum=0),
    **dict.fromkeys(["DENSITY", "TARGET_DENSITY", "COLLAPSE_DENSITY"], _optional(_density)),
    **dict.fromkeys(["DENSITIES", "SPARSE_DENSITIES"], _optional(_list_of(_density))),
    "STABLE_REWIND": _fraction, "REWIND": _fraction,
    "ONE_SHOT_REWINDS": _list_of(_fraction),
    "REWIND_PERCENTS": _list_of(lambda value, name: checks.real(value, name, 0.0, 100.0)),
    "TOLERANCE": lambda value, name: checks.real(value, name, 0.0, finite=True),
}

LIST_VALUED = frozenset(name for name, rule in RULES.items()
                        if getattr(rule, "takes_list", False))


def declared(notebook: str | os.PathLike) -> dict[str, object]:
    """The parameters ``notebook`` declares, ``{NAME: default}``: the assignments of its cell
    tagged ``parameters`` (the cell papermill injects values after). A default that is not
    a literal is given as its source text.

    Raises:
        ValueError: the file cannot be read or is not a notebook, or it has no cell tagged
            ``parameters``.
    """
    try:
        text = Path(notebook).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{notebook} cannot be read as a notebook ({err})") from None
    try:
        cells = json.loads(text)["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    except (ValueError, KeyError, TypeError, AttributeError):  # not JSON, or not a notebook
        raise ValueError(f"{notebook} is not a Jupyter notebook (no list of cells)") from None
    if not tagged:
        raise ValueError(f"{notebook} has no cell tagged 'parameters'")
    source = "".join(tagged[0]["source"])  # nbformat: a string or a list of lines
    try:
        body = ast.parse(source).body
    except SyntaxError as err:
        raise ValueError(f"{notebook}: its parameters cell is not Python ({err})") from None
    found = {}
    for node in body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                found[node.targets[0].id] = ast.get_source_segment(source, node.value)
    return found


def check(notebook: str, name: object, value: object, defaults: dict[str, object]) -> object:
    """``value`` for the parameter ``name`` of ``notebook`` (a name for messages), whose
    declared parameters are ``defaults`` (:func:`declared`), if the notebook has it and the
    value keeps its rule (:data:`RULES`; else its default's type); ``None`` only where the
    default is ``None``.

    Raises:
        ValueError: naming the notebook, the parameter, the value and what is allowed.
    """
    if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
            and name in defaults):
        raise ValueError(f"{notebook} has no parameter {checks.shown(name)}; its parameters: "
                         f"{', '.join(defaults)}")
    default = defaults[name]
    if value is None and default is not None:
        raise ValueError(f"{notebook}: {name} cannot be None (its default is {default!r})")
    try:
        if name in RULES:
            return RULES[name](value, name)
        if default is None or value is None or isinstance(value, type(default)) or (
                isinstance(default, float) and type(value) is int):
            return value
        raise ValueError(f"{name} must be a {type(default).__name__} like its default "
                         f"{default!r}, got {checks.shown(value)}")
    except ValueError as err:
        raise ValueError(f"{notebook}: {err}") from None
