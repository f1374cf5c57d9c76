"""Masks in and out: ``torch.nn.utils.prune``, plain models and sparse (CSR) weights.

* :func:`to_torch_prune` / :func:`from_torch_prune` -- convert between our masks (a bool
  ``pruning_mask`` buffer next to a weight holding zeros) and PyTorch's pruning form (a
  parameter ``weight_orig``, a buffer ``weight_mask`` and a forward pre-hook that computes
  ``weight = weight_orig * weight_mask`` before every forward pass).
* :func:`fold` -- a plain model: no mask buffers, an ordinary ``state_dict`` whose pruned
  weights are stored as zeros; it loads into a fresh model of the same architecture.
* :func:`to_csr`, :func:`csr_nbytes`, :func:`size_report` -- each masked weight as a
  sparse CSR matrix (the weight flattened to 2-D: ``(C_out, C_in * k * k)`` for a Conv) and
  what that costs in bytes against the dense tensor. Unstructured sparsity saves memory
  only below a break-even density (thesis Section 2.4.1: hardware favours structure).

Every function leaves its argument untouched and returns new objects.
"""

from __future__ import annotations

import copy
import warnings

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from . import masking

__all__ = ["csr_nbytes", "fold", "from_torch_prune", "size_report", "to_csr", "to_torch_prune"]


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
            if isinstance(hook, torch_prune.BasePruningMethod)]  # fmt: skip


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
            for m in model.modules() for t in _torch_pruned(m)}  # fmt: skip
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


def _structure(layer: nn.Module) -> torch.Tensor:
    """Which weights are stored: the mask if the layer has one, else the nonzero weights."""
    mask = getattr(layer, masking.MASK, None)
    return mask if mask is not None else layer.weight != 0


@torch.no_grad()
def to_csr(model: nn.Module, index_dtype: torch.dtype = torch.int32) -> dict[str, torch.Tensor]:
    """Each masked layer's weight (every Conv/Linear weight if the model has no masks) as a
    sparse CSR tensor of its 2-D flattening ``(C_out, fan_in)``, on the CPU.

    The stored entries are the kept weights (the mask's ``True`` positions), so a kept
    weight that happens to be exactly 0 is stored too; ``.to_dense()`` gives back
    ``weight.flatten(1)``.

    Args:
        index_dtype: ``torch.int32`` (default; enough below 2**31 entries) or ``torch.int64``
            for the row pointers and column indices.
    """
    if index_dtype not in (torch.int32, torch.int64):
        raise ValueError(f"index_dtype must be torch.int32 or torch.int64, got {index_dtype!r}")
    layers = masking.masked_layers(model) or masking.prunable_layers(model)
    out = {}
    for name, layer in layers.items():
        weight = layer.weight.detach().flatten(1).cpu()
        keep = _structure(layer).flatten(1).cpu()
        counts = keep.sum(1)
        crow = torch.zeros(len(keep) + 1, dtype=torch.int64)
        crow[1:] = counts.cumsum(0)
        col = keep.nonzero()[:, 1]  # row-major order, as CSR wants
        with warnings.catch_warnings():  # PyTorch's one-time notices; invariants ARE checked
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly")
            out[name] = torch.sparse_csr_tensor(
                crow.to(index_dtype), col.to(index_dtype), weight[keep],
                size=tuple(weight.shape), check_invariants=True)  # fmt: skip
    return out


def csr_nbytes(tensor: torch.Tensor) -> int:
    """Bytes a sparse CSR tensor holds: values + column indices + row pointers."""
    if tensor.layout != torch.sparse_csr:
        raise ValueError(f"tensor must have layout torch.sparse_csr, got {tensor.layout}")
    parts = (tensor.values(), tensor.col_indices(), tensor.crow_indices())
    return sum(t.numel() * t.element_size() for t in parts)


def size_report(model: nn.Module, index_dtype: torch.dtype = torch.int32) -> pd.DataFrame:
    """Dense vs CSR storage of each masked weight, in bytes.

    Returns:
        A DataFrame indexed by layer (last row ``"total"``) with columns ``shape`` (2-D),
        ``kept``, ``density``, ``dense_bytes``, ``csr_bytes`` and ``ratio``
        (dense_bytes / csr_bytes: above 1 the CSR copy is smaller).
    """
    rows = []
    for name, csr in to_csr(model, index_dtype).items():
        n = csr.shape[0] * csr.shape[1]
        rows.append({"layer": name, "shape": tuple(csr.shape), "kept": int(csr.values().numel()),
                     "weights": n, "dense_bytes": n * csr.values().element_size(),
                     "csr_bytes": csr_nbytes(csr)})  # fmt: skip
    if not rows:
        raise ValueError("size_report: the model has no Conv/Linear layer")
    total = {k: sum(r[k] for r in rows) for k in ("kept", "weights", "dense_bytes", "csr_bytes")}
    rows.append({"layer": "total", "shape": (), **total})
    df = pd.DataFrame(rows).set_index("layer")
    df.insert(2, "density", df["kept"] / df["weights"])
    df = df.drop(columns="weights")
    df["ratio"] = df["dense_bytes"] / df["csr_bytes"]
    return df
