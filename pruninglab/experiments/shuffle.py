"""Sparse mask modifications (thesis Section 3.3.2, Table 3.1, Figure 3.11): how tightly is
a lottery ticket's mask bound to its weights? Each modification keeps every layer's number
of kept weights and works in place on a masked model:

* (A) ``shuffle_within_masks``: the kept values move among the kept positions;
* ``reinitialize``: fresh values from the model's initializer, same mask;
* (B) ``shuffle_masks_and_weights``: mask entries move, each value with its entry;
* ``shuffle_masks_and_reinitialize``: mask entries move, fresh values.

``shuffle.run`` (in :mod:`~pruninglab.experiments.shuffle_runs`) retrains each and tabulates
Table 3.1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..core import masking, models, seeding
from . import forwarding

__all__ = ["permute_kept", "shuffle_within_masks", "reinitialize", "shuffle_masks_and_weights",
           "shuffle_masks_and_reinitialize", "MODIFICATIONS"]


def _permutation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    # drawn on the CPU, so that every device gets the same permutation
    return torch.randperm(n, generator=generator).to(device)


def _generator(seed: int, stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(seeding.derive(seed, "shuffle", stream))


def permute_kept(weight: torch.Tensor, mask: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """(A) in one layer: a copy of ``weight`` whose ``i``-th kept position (row-major; ``mask``
    bool, shaped like ``weight``) holds the ``order[i]``-th kept value, ``order`` being a
    permutation of ``range(kept)``; pruned positions hold what they held."""
    kept = mask.flatten().nonzero().squeeze(1)
    if order.shape != kept.shape:
        raise ValueError(f"order must have one entry per kept weight ({len(kept)}), "
                         f"got shape {tuple(order.shape)}")
    out = weight.clone()
    out.view(-1)[kept] = weight.reshape(-1)[kept][order]
    return out


@torch.no_grad()
def shuffle_within_masks(model: nn.Module, seed: int = 0) -> nn.Module:
    """(A) :func:`permute_kept` with a random order in every masked layer."""
    generator = _generator(seed, "shuffle within masks")
    for layer in masking.masked_layers(model).values():
        mask = getattr(layer, masking.MASK)
        order = _permutation(int(mask.sum()), generator, mask.device)
        layer.weight.copy_(permute_kept(layer.weight, mask, order))
    return model


@torch.no_grad()
def reinitialize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fresh weights and biases for every masked layer from the model's own initializer
    (``model.pruninglab_init``) and the stream ``derive(seed, "shuffle", "reinitialize")``,
    never the initialization's; the masks stay, torch's global generator is left as it was."""
    init = getattr(model, "pruninglab_init", "torch")
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seeding.derive(seed, "shuffle", "reinitialize"))
        for layer in masking.masked_layers(model).values():
            models.init_layer(layer, init)
    masking.apply_masks(model)
    return model


@torch.no_grad()
def shuffle_masks_and_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """(B) One random permutation of every masked layer's (mask, weight) pairs."""
    _permute_masks(model, seed, with_weights=True)
    return model


@torch.no_grad()
def shuffle_masks_and_reinitialize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every layer's mask permuted at random, then :func:`reinitialize`."""
    _permute_masks(model, seed, with_weights=False)
    return reinitialize(model, seed)


def _permute_masks(model: nn.Module, seed: int, with_weights: bool) -> None:
    generator = _generator(seed, "permute masks")
    for layer in masking.masked_layers(model).values():
        mask = getattr(layer, masking.MASK)
        perm = _permutation(mask.numel(), generator, mask.device)
        mask.copy_(mask.flatten()[perm].view_as(mask))
        if with_weights:
            layer.weight.copy_(layer.weight.flatten()[perm].view_as(layer.weight))


def _none(model: nn.Module, seed: int = 0) -> nn.Module:
    return model


MODIFICATIONS: dict[str, Callable[[nn.Module, int], nn.Module]] = {
    "none": _none,
    "shuffle within masks (A)": shuffle_within_masks,
    "reinitialize": reinitialize,
    "shuffle masks and weights (B)": shuffle_masks_and_weights,
    "shuffle masks and reinitialize": shuffle_masks_and_reinitialize,
}


# The experiment, its table and the thesis's numbers live beside the modifications.
__getattr__, __dir__ = forwarding(__name__, {name: "shuffle_runs" for name in (
    "run", "ticket", "table_3_1", "claims", "THESIS_TABLE_3_1")})
