"""Masks in and out: ``torch.nn.utils.prune`` and plain models.

* :func:`to_torch_prune` / :func:`from_torch_prune` -- convert between our masks (a bool
  ``pruning_mask`` buffer next to a weight holding zeros) and PyTorch's pruning form (a
  parameter ``weight_orig``, a buffer ``weight_mask`` and a forward pre-hook that computes
  ``weight = weight_orig * weight_mask`` before every forward pass).
* :func:`fold` -- a plain model: no mask buffers, an ordinary ``state_dict`` whose pruned
  weights are stored as zeros; it loads into a fresh model of the same architecture.

Sparse (CSR) weights and their sizes are in :mod:`pruninglab.core.efficiency`.

Every function leaves its argument untouched and returns new objects.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import prune as torch_prune

from . import masking

__all__ = ["fold", "from_torch_prune", "to_torch_prune"]


def to_torch_prune(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in ``torch.nn.utils.prune``'s form: every masked layer gets
    ``weight_orig``, ``weight_mask`` (float 0/1) and the pre-hook, and loses ``pruning_mask``.

    ``torch.nn.utils.prune.remove(layer, "weight")`` on the copy makes it plain again.
    """
    out = copy.deepcopy(model)
    for layer in masking.masked_layers(out).values():
        mask = getattr(layer, masking.MASK)
        delattr(layer, masking.MASK)
        torch_prune.custom_from_mask(layer, "weight", mask)
    return out


def _torch_pruned(module: nn.Module) -> list[str]:
    """Names of ``module``'s own tensors that ``torch.nn.utils.prune`` reparametrized."""
    return [hook._tensor_name for hook in module._forward_pre_hooks.values()
            if isinstance(hook, torch_prune.BasePruningMethod)]


def from_torch_prune(model: nn.Module) -> nn.Module:
    """A deep copy of a model pruned with ``torch.nn.utils.prune``, in our form: for every
    layer with a pruned ``weight``, the hook and ``weight_orig`` are folded into a plain
    ``weight`` (``weight_orig * weight_mask``) and the mask becomes ``pruning_mask``
    (nonzero = kept). Layers that were not pruned stay unmasked.

    Raises:
        ValueError: something other than the ``weight`` of a Conv/Linear layer is pruned
            (a bias, a BN scale): our masks cannot hold it.
    """
    # After a forward pass the hook's ``weight`` is a non-leaf tensor that deepcopy refuses;
    # hand deepcopy a detached copy of it (``prune.remove`` recomputes it anyway).
    memo = {id(getattr(m, t)): getattr(m, t).detach().clone()
            for m in model.modules() for t in _torch_pruned(m)}
    out = copy.deepcopy(model, memo)
    for name, module in out.named_modules():
        tensors = _torch_pruned(module)
        prunable = isinstance(module, masking.PRUNABLE_TYPES)
        wrong = [t for t in tensors if t != "weight" or not prunable]
        if wrong:
            raise ValueError(
                f"{name or 'the model'!r} has {', '.join(wrong)} pruned by torch.nn.utils.prune;"
                " only the weight of Conv/Linear layers can become a pruninglab mask")
        if tensors:
            mask = module.weight_mask.detach() != 0
            torch_prune.remove(module, "weight")
            module.register_buffer(masking.MASK, mask)
    masking.apply_masks(out)
    return out


def fold(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with the masks multiplied into the weights and the mask
    buffers dropped: an ordinary model whose ``state_dict`` holds the zeros."""
    return masking.remove_masks(copy.deepcopy(model))
