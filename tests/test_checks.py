"""Argument checks: numpy scalars become plain numbers, bad values name the argument."""

from __future__ import annotations

from pruninglab import checks

import math

import numpy as np
import pytest


def test_numpy_scalars_become_the_plain_numbers_they_print_as():
    k, steps = checks.real(np.float32(0.7), "K"), checks.integer(np.int64(7), "steps")
    assert (k, steps) == (0.7, 7) and type(k) is float and type(steps) is int
    assert checks.real(3, "x") == 3.0


@pytest.mark.parametrize("value", [True, "1", None, 1 + 2j, math.nan, np.nan])
def test_booleans_strings_and_nan_are_not_numbers(value):
    with pytest.raises(ValueError, match="density must be a number in \\(0, 1\\]"):
        checks.real(value, "density", 0.0, 1.0, low_open=True)


def test_the_message_names_the_argument_its_value_and_the_interval():
    with pytest.raises(ValueError, match=r"K must be a number in \[0.5, 1\), got 1.0"):
        checks.real(1.0, "K", 0.5, 1.0, high_open=True)
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got 0"):
        checks.integer(0, "steps", minimum=1)
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got 2.0"):
        checks.integer(2.0, "steps", minimum=1)
    with pytest.raises(ValueError, match="scope must be one of 'global', 'layerwise'; got 'x'"):
        checks.one_of("x", "scope", ("global", "layerwise"))
