"""Where every random stream gets its seed: one function, :func:`derive`.

An experiment has one seed (``Setup.seed``); each random stream in it -- the weight
initialization, the validation split, the batch order of GIMP's level 3, TOM's Bernoulli
masks, a shuffle of Table 3.1 -- gets its own seed derived from the run's seed and the
stream's names::

    derive(seed, "init")                 the model's initial weights
    derive(seed, "gimp", 3)              the batches of GIMP's level 3 (every preset alike)
    derive(seed, "tom", "masks")         the batches of TOM's mask training

The derivation is a SHA-256 of the names, so two different streams never share a seed by
arithmetic accident (as ``seed * 1_000_003 + level`` and ``seed + 1`` could), a stream's
seed does not depend on which other streams exist, and a resumed run sees exactly the
random numbers an uninterrupted one does.
"""

from __future__ import annotations

import hashlib

from . import checks

__all__ = ["MAX_SEED", "derive", "check_seed"]

# torch.Generator.manual_seed takes up to 2**64 - 1; seeds stay below 2**63 so that they
# are also valid for numpy and fit a signed 64-bit integer.
MAX_SEED = 2**63 - 1


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an ``int`` in ``[0, MAX_SEED]``, or ``ValueError`` naming ``name``."""
    return checks.integer(seed, name, minimum=0, maximum=MAX_SEED)


def derive(seed: int, *names: str | int) -> int:
    """The seed of the random stream ``names`` of the run with seed ``seed``: an integer in
    ``[0, MAX_SEED]``, the same on every machine and Python version."""
    seed = check_seed(seed)
    if not names:
        raise ValueError("derive needs at least one name for the stream, got none")
    for part in names:
        if isinstance(part, bool) or not isinstance(part, str | int):
            raise ValueError(f"stream names must be strings or integers, got {part!r}")
    text = "/".join([str(seed), *(str(part) for part in names)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") & MAX_SEED
