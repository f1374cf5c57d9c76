"""Argument checks shared by every config: one place for "name the argument, its value and
what is allowed".

Each check returns the value as a plain Python number, so a config holds the same thing
whether it was given ``7``, ``np.int64(7)``, ``0.7`` or ``np.float32(0.7)``, and hashes the
same in the run store. A numpy float is converted to the number it prints as
(``np.float32(0.7)`` becomes ``0.7``, not ``0.699999988079071``): that is what was typed.
Booleans are refused where a number is asked for (``True`` is an ``int`` in Python).
"""

from __future__ import annotations

import contextlib
import errno
import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["integer", "real", "one_of", "boolean", "label", "path", "a_link", "not_a_link",
           "shown"]


def integer(value: object, name: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer in ``[minimum, maximum]``; else
    ``ValueError`` naming ``name``, the value and the allowed range."""
    allowed = _interval(minimum, maximum, closed=(True, True))
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer{allowed}, got {shown(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer{allowed}, got {shown(value)}")
    return value


def real(value: object, name: str, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False, finite: bool = False) -> float:
    """``value`` as a ``float`` if it is a real number (not NaN; not infinite if ``finite``)
    within the interval from ``low`` to ``high`` (each end closed unless ``*_open``); else
    ``ValueError`` naming ``name``, the value and the interval."""
    allowed = _interval(low, high, closed=(not low_open, not high_open))
    a_number = "a finite number" if finite else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {a_number}{allowed}, got {shown(value)}")
    number = float(value)
    if not isinstance(value, int | float):  # a numpy float32: the number it prints as
        with contextlib.suppress(ValueError):  # (a Fraction prints as 1/3: keep its float)
            number = float(str(value))
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ValueError(f"{name} must be {a_number}{allowed}, got {shown(value)}")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be {a_number}{allowed}, got {shown(value)}")
    return number


def one_of(value: object, name: str, options: Iterable[object]) -> object:
    """``value`` if it is one of ``options``; else ``ValueError`` listing them."""
    options = tuple(options)
    if isinstance(value, str | int | float | bool | type(None)) and value in options:
        return value
    raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {shown(value)}")


def boolean(value: object, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (not ``"no"``, which is true); else
    ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {shown(value)}")
    return value


def label(value: object, name: str) -> str:
    """``value`` if it is a non-empty string of at most 200 characters (a method's label,
    shown in tables and plots); else ``ValueError``."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ValueError(f"{name} must be a non-empty string of at most 200 characters, got "
                         f"{shown(value)}")
    return value


def path(value: object, name: str) -> Path:
    """``value`` as a :class:`~pathlib.Path` with ``~`` expanded, if it can name a file or
    folder; else ``ValueError`` naming ``name``. An empty path is refused: it would quietly
    mean the current folder (write ``.`` for that)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a path (a string), got {shown(value)}")
    if not value.strip():
        raise ValueError(f"{name} is empty ({value!r}); an empty path would mean the current "
                         "folder: name the folder ('.' for the current one)")
    if "\0" in value:
        raise ValueError(f"{name} {shown(value)} holds a NUL byte, which no path can hold")
    try:
        return Path(value).expanduser()
    except RuntimeError:  # "~nouser/...", or "~" where HOME is unknown
        raise ValueError(f"{name} {shown(value)} starts with ~, but no such user's home "
                         "folder is known here; write the folder in full") from None


def a_link(path: Path) -> str:
    """``"a symbolic link to TARGET"``: how messages name the link ``path``."""
    try:
        target = os.readlink(path)
    except OSError:  # removed meanwhile
        target = "?"
    return f"a symbolic link to {target}"


def not_a_link(path: Path, what: str) -> Path:
    """``path`` unless it is a symbolic link; else ``OSError`` (``ELOOP``) naming it and its
    target. The run store and ``notebooks copy`` read and write only through paths they made
    themselves: a link left in their folders (by hand, or by someone else) could send a write
    anywhere."""
    if path.is_symlink():
        raise OSError(errno.ELOOP, f"{what} {path} is {a_link(path)}; pruninglab "
                      "does not follow links it did not make, so nothing was read or written "
                      "through it. Replace it by a copy of what it points to, or remove it")
    return path


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, so that an error message which
    echoes a value stays one readable line (a 100 MB name is not printed back whole)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def _interval(low: float | None, high: float | None, closed: tuple[bool, bool]) -> str:
    def show(x: float) -> str:
        return str(x) if isinstance(x, int) else f"{x:g}"

    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>=' if closed[0] else '>'} {show(low)}"
    if low is None:
        return f" {'<=' if closed[1] else '<'} {show(high)}"
    return (f" in {'[' if closed[0] else '('}{show(low)}, {show(high)}"
            f"{']' if closed[1] else ')'}")
