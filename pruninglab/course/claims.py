"""Claims: a sentence about this run's results, checked on this run's numbers.

A notebook's prose may state what its own figure shows only where every profile's figure
shows it. Where the result depends on the profile (a quick MLP on 4,000 digits is not the
thesis's ResNet on CIFAR-10), the notebook states it in a cell that computes it::

    pl.claims.check("magnitude keeps at least SNIP's accuracy at every density",
                    holds=bool((curves["magnitude"] >= curves["SNIP"]).all()),
                    evidence="at density 0.03: 61.2% against 25.9%",
                    why_not="this network trained only 40 steps: it is still near its "
                            "initialization, where SNIP was made to work")

which prints one line::

    holds here: <claim> (<evidence>)
    does NOT hold here: <claim> (<evidence>). Why: <why_not>
    cannot tell here: <claim> (<evidence>)

``holds=None`` is "cannot tell" (no data, or an interval that reaches both ways).

A contradiction must be explained where it can occur: with ``$PRUNINGLAB_CLAIMS=strict``
(the notebook tests set it, in the smoke profile) a claim that does not hold and has no
``why_not`` raises :class:`UnexplainedContradiction`, so the test fails and the sentence
or its explanation gets fixed. Otherwise (a student's run, ``make run``) it prints the line,
``Why:`` left out, and goes on.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["STRICT_VARIABLE", "UnexplainedContradiction", "check", "line", "strict"]

STRICT_VARIABLE = "PRUNINGLAB_CLAIMS"


class UnexplainedContradiction(AssertionError):
    """A notebook's claim does not hold on its own run, and the notebook does not say why."""


def strict() -> bool:
    """Whether ``$PRUNINGLAB_CLAIMS`` is ``strict`` (unset or empty: no); anything else is a
    ``ValueError``."""
    value = os.environ.get(STRICT_VARIABLE, "").strip()
    if value not in ("", "strict"):
        raise ValueError(f"{STRICT_VARIABLE} must be 'strict' or unset, got {value!r}")
    return value == "strict"


def line(claim: str, holds: bool | None, *, evidence: str = "",
         why_not: str | None = None) -> str:
    """The line :func:`check` prints (arguments as there)."""
    if isinstance(holds, np.bool_):  # a pandas or numpy comparison: the same thing
        holds = bool(holds)
    if holds is not None and not isinstance(holds, bool):
        raise TypeError(f"holds must be True, False or None, got {holds!r} "
                        f"({type(holds).__name__}); wrap a torch result in bool()")
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError(f"claim must be a sentence, got {claim!r}")
    status = "cannot tell" if holds is None else "holds" if holds else "does NOT hold"
    text = f"{status} here: {claim}"
    if evidence:
        text += f" ({evidence})"
    if holds is False and why_not:
        text += f". Why: {why_not}"
    return text


def check(claim: str, holds: bool | None, *, evidence: str = "",
          why_not: str | None = None) -> bool | None:
    """Print whether ``claim`` holds on this run, and return ``holds``.

    Args:
        claim: the sentence, as the notebook's prose would state it.
        holds: ``True``, ``False``, or ``None`` for "cannot tell"; computed from the run.
        evidence: the numbers that decided it, e.g. ``"61.2% against 25.9%"``.
        why_not: why the claim can fail on this run (its profile, its seeds), printed when
            it does not hold. A claim that does not hold without one raises
            :class:`UnexplainedContradiction` when ``$PRUNINGLAB_CLAIMS=strict``.
    """
    strictly = strict()  # read first: a misspelt value is an error at once, not on a failure
    text = line(claim, holds, evidence=evidence, why_not=why_not)
    holds = None if holds is None else bool(holds)
    print(text)
    if holds is False and not why_not and strictly:
        raise UnexplainedContradiction(
            f"{text}\nThe notebook's own run contradicts this claim and the notebook does not"
            " explain it: fix the sentence, or pass why_not=... saying when it fails.")
    return holds
