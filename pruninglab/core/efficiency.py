"""What unstructured sparsity buys at inference: counted work, measured time and bytes.

* :func:`macs` -- multiply-accumulates (MACs) of every Conv/Linear layer for **one example**
  of a given input shape, counted with forward hooks: ``dense_macs`` (every weight) and
  ``kept_macs`` (only the weights the mask keeps). A convolution uses each weight once per
  output position (``H_out * W_out`` times), a linear layer once, so where a pruning method
  removes weights decides how much work goes away, not only how many. One MAC is two
  floating-point operations (FLOPs = 2 x MACs).
* :func:`to_csr`, :func:`csr_nbytes`, :func:`size_report` -- each masked weight as a
  sparse CSR matrix (the weight flattened to 2-D: ``(C_out, C_in * k * k)`` for a Conv) and
  what that costs in bytes against the dense tensor.
* :func:`to_sparse` -- a copy of a model whose masked Linear/Conv2d layers compute with
  their weights in sparse CSR form (:class:`SparseLinear`, :class:`SparseConv2d`), so that
  the kept weights are the only ones stored and multiplied.
* :func:`macs_at_levels` -- the same count for every level of a pruning run, from the
  per-layer densities its records keep.
* :func:`compare_inference` -- dense vs CSR forward latency (milliseconds, interleaved
  timing) and the bytes of the prunable weights in each form; :func:`inference_table`
  repeats it over densities and batch sizes.

What the counts do *not* say, and the measurements show (thesis Section 2.4.1: hardware
favours structure): a CSR kernel does irregular memory access and stores an index per
kept weight, so it is slower than the dense kernel down to a fairly low density, and it is
smaller only below a break-even density (see :func:`size_report`).
Only Conv/Linear kernels are counted; biases, batch normalization, activations and pooling
are left out (a few percent of the work in these networks).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import masking, pruning, timing

__all__ = ["SparseConv2d", "SparseLinear", "compare_inference", "csr_nbytes", "inference_table",
           "macs", "macs_at_levels", "size_report", "to_csr", "to_sparse"]


@torch.no_grad()
def macs(model: nn.Module, input_shape: Sequence[int],
         densities: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Multiply-accumulates of each Conv/Linear layer for one example.

    Args:
        model: any model; run once in eval mode on zeros of shape ``(1, *input_shape)`` on
            its own device (its train/eval mode is restored afterwards).
        input_shape: one example's shape without the batch axis, e.g. ``(3, 32, 32)``.
        densities: optional ``{layer name: density}`` (a GIMP record's ``"layers"``) that
            replaces the masks when counting kept weights: ``kept = round(density * weights)``.
            Layers not named count by their mask, or as dense when they have none.

    Returns:
        A DataFrame indexed by layer name (last row ``"total"``) with columns ``type``,
        ``weights`` (kernel entries), ``kept``, ``density``, ``uses`` (times each weight is
        used per example: output positions for a Conv, 1 for a Linear on flat input),
        ``dense_macs`` and ``kept_macs`` (MACs per example; ``uses`` is NaN in the total
        row) and ``macs_fraction`` (kept_macs / dense_macs: the share of the work left).
    """
    if len(input_shape) < 1 or any(not isinstance(s, int) or s < 1 for s in input_shape):
        raise ValueError(f"input_shape must be positive integers without the batch axis, "
                         f"got {tuple(input_shape)!r}")
    layers = masking.prunable_layers(model)
    if not layers:
        raise ValueError("macs: the model has no Conv/Linear layer")
    unknown = sorted(set(densities or {}) - set(layers))
    if unknown:
        raise ValueError(f"densities names layers the model does not have: {unknown}")
    outputs: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def record(module: nn.Module, args, output: torch.Tensor) -> None:
            outputs[name] = tuple(output.shape)

        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters())
        model(torch.zeros(1, *input_shape, device=parameter.device, dtype=parameter.dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()

    counts = masking.kept_counts(model, layers)
    rows = []
    for name, layer in layers.items():
        if name not in outputs:
            raise ValueError(f"layer {name!r} was not called in the forward pass")
        shape = outputs[name]
        # Conv: (1, C_out, *spatial); Linear: (1, ..., out_features)
        positions = 1
        for s in (shape[2:] if isinstance(layer, nn.modules.conv._ConvNd) else shape[1:-1]):
            positions *= s
        kept, weights = counts[name]
        if densities is not None and name in densities:
            kept = int(round(float(densities[name]) * weights))
        rows.append({"layer": name, "type": type(layer).__name__, "weights": weights,
                     "kept": kept, "uses": positions, "dense_macs": positions * weights,
                     "kept_macs": positions * kept})
    df = pd.DataFrame(rows).set_index("layer")
    total = df[["weights", "kept", "dense_macs", "kept_macs"]].sum()
    df.loc["total"] = {"type": "", "uses": float("nan"), **total.to_dict()}
    df.insert(3, "density", df["kept"] / df["weights"])
    df["macs_fraction"] = df["kept_macs"] / df["dense_macs"]
    return df


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
                size=tuple(weight.shape), check_invariants=True)
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
                     "csr_bytes": csr_nbytes(csr)})
    if not rows:
        raise ValueError("size_report: the model has no Conv/Linear layer")
    total = {k: sum(r[k] for r in rows) for k in ("kept", "weights", "dense_bytes", "csr_bytes")}
    rows.append({"layer": "total", "shape": (), **total})
    df = pd.DataFrame(rows).set_index("layer")
    df.insert(2, "density", df["kept"] / df["weights"])
    df = df.drop(columns="weights")
    df["ratio"] = df["dense_bytes"] / df["csr_bytes"]
    return df


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` a sparse CSR tensor ``(out_features, in_features)``.

    Input ``(N, in_features)``, output ``(N, out_features)``; only the stored entries of
    ``W`` are read and multiplied. Built by :func:`to_sparse`; inference only (no gradient
    to the CSR weight).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        if weight.layout != torch.sparse_csr or weight.dim() != 2:
            raise ValueError(f"weight must be a 2-D sparse CSR tensor, got {weight.layout}, "
                             f"{weight.dim()}-D")
        self.weight = weight
        self.bias = None if bias is None else bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = (self.weight @ x.reshape(-1, x.shape[-1]).t()).t()  # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, y.shape[-1])

    def _apply(self, fn, recurse: bool = True):  # .to(device) moves the CSR weight too
        self.weight = fn(self.weight)
        return super()._apply(fn, recurse)


class SparseConv2d(nn.Module):
    """A 2-D convolution as a sparse CSR matrix times the unfolded input (im2col).

    The weight is ``(C_out, C_in * kh * kw)`` in CSR form; the input ``(N, C_in, H, W)`` is
    unfolded to columns ``(C_in * kh * kw, N * H_out * W_out)``, multiplied, and folded back
    to ``(N, C_out, H_out, W_out)``. Zero padding and ``groups=1`` only. Built by
    :func:`to_sparse`; inference only.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, conv: nn.Conv2d) -> None:
        super().__init__()
        if weight.layout != torch.sparse_csr or weight.dim() != 2:
            raise ValueError(f"weight must be a 2-D sparse CSR tensor, got {weight.layout}, "
                             f"{weight.dim()}-D")
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"SparseConv2d supports groups=1, zero padding given as numbers; "
                             f"got groups={conv.groups}, padding={conv.padding!r}, "
                             f"padding_mode={conv.padding_mode!r}")
        self.weight = weight
        self.bias = None if bias is None else bias.detach().clone()
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        self.out_channels = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        h_out = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        w_out = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        cols = cols.transpose(0, 1).reshape(cols.shape[1], -1)  # (C_in*kh*kw, N*L)
        y = self.weight @ cols  # (C_out, N*L)
        y = y.reshape(self.out_channels, n, h_out * w_out).transpose(0, 1)
        y = y.reshape(n, self.out_channels, h_out, w_out)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return y

    def _apply(self, fn, recurse: bool = True):
        self.weight = fn(self.weight)
        return super()._apply(fn, recurse)


@torch.no_grad()
def to_sparse(model: nn.Module, index_dtype: torch.dtype = torch.int32) -> nn.Module:
    """A copy of ``model`` in eval mode whose masked Linear and Conv2d layers (every one if
    the model has no masks) hold their kept weights as CSR (see
    :func:`to_csr`) and compute with them; on ``model``'s device.

    Its outputs equal ``model``'s in eval mode up to float rounding. ``model`` is untouched.
    """
    csr = to_csr(model, index_dtype)
    device = next(model.parameters()).device
    out = copy.deepcopy(model).eval()
    for name, weight in csr.items():
        parent_name, _, child = name.rpartition(".")
        parent, layer = out.get_submodule(parent_name), out.get_submodule(name)
        weight = weight.to(device)
        if isinstance(layer, nn.Linear):
            sparse: nn.Module = SparseLinear(weight, layer.bias)
        elif isinstance(layer, nn.Conv2d):
            sparse = SparseConv2d(weight, layer.bias, layer)
        else:
            raise ValueError(f"to_sparse handles Linear and Conv2d layers; {name!r} is a "
                             f"{type(layer).__name__}")
        if not name:  # the model is a single layer
            return sparse.eval()
        setattr(parent, child, sparse)
    return out


@torch.no_grad()
def compare_inference(model: nn.Module, x: torch.Tensor, rounds: int = 10, repeats: int = 10,
                      warmup: int = 3, index_dtype: torch.dtype = torch.int32) -> dict:
    """Dense vs CSR inference of ``model`` on the batch ``x``: time and bytes.

    The dense forward pass is ``model`` itself in eval mode (pruned weights are stored and
    multiplied as zeros); the CSR one is :func:`to_sparse` of it. Both run ``warmup`` untimed
    passes, then ``rounds`` interleaved rounds of ``repeats`` passes each
    (:func:`pruninglab.core.timing.interleaved`; on CUDA the device is synchronized after each
    pass, so each time includes the kernels).

    Returns:
        ``{"dense_ms", "csr_ms"}`` (median milliseconds per forward pass), ``"speedup"``
        (dense_ms / csr_ms: above 1 the CSR pass is faster), ``"dense_bytes"`` and
        ``"csr_bytes"`` (the prunable weights: float values, plus int indices for CSR),
        ``"bytes_ratio"`` (dense / CSR: above 1 the CSR copy is smaller) and ``"density"``.
    """
    was_training = model.training
    model.eval()
    sparse = to_sparse(model, index_dtype)
    device = x.device

    def forward(m: nn.Module):
        def step() -> None:
            m(x)
            timing.synchronize(device)

        return step

    try:
        times = timing.interleaved({"dense": forward(model), "csr": forward(sparse)}, rounds,
                                   repeats, warmup)
    finally:
        model.train(was_training)
    table = timing.ratio_table(times, baseline="dense")
    sizes = size_report(model, index_dtype).loc["total"]
    return {"density": float(sizes["density"]),
            "dense_ms": float(table.loc["dense", "median_ms"]),
            "csr_ms": float(table.loc["csr", "median_ms"]),
            "speedup": float(table.loc["dense", "median_ms"] / table.loc["csr", "median_ms"]),
            "dense_bytes": int(sizes["dense_bytes"]), "csr_bytes": int(sizes["csr_bytes"]),
            "bytes_ratio": float(sizes["ratio"])}


def inference_table(model: nn.Module, input_shape: Sequence[int], densities: Sequence[float],
                    batch_sizes: Sequence[int] = (1,), rounds: int = 5, repeats: int = 5,
                    warmup: int = 2, index_dtype: torch.dtype = torch.int32,
                    scope: str = "layerwise") -> pd.DataFrame:
    """:func:`compare_inference` of ``model`` pruned to each density, at each batch size.

    Args:
        model: the network (left untouched); each density prunes a copy by magnitude with
            ``scope`` (``"layerwise"``: every layer at the density).
        input_shape: one example's shape, e.g. ``(1, 28, 28)``; inputs are random normal
            on the model's device (speed does not depend on the values).
        densities: kept fractions in (0, 1] (0.05 = 95% sparsity).
        batch_sizes: examples per forward pass.

    Returns:
        One row per (``sparsity_%``, ``batch``) with the columns of
        :func:`compare_inference` (milliseconds and bytes).
    """
    if any(not 0.0 < d <= 1.0 for d in densities):
        raise ValueError(f"densities must lie in (0, 1], got {list(densities)!r}")
    if any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise ValueError(f"batch_sizes must be positive integers, got {list(batch_sizes)!r}")
    device = next(model.parameters()).device
    rows = []
    for density in densities:
        pruned = pruning.prune(copy.deepcopy(model), density, scope=scope)
        for batch in batch_sizes:
            x = torch.randn(batch, *input_shape, device=device)
            result = compare_inference(pruned, x, rounds, repeats, warmup, index_dtype)
            rows.append({"sparsity_%": round(100 * (1 - density), 3), "batch": batch,
                         **result})
    return pd.DataFrame(rows).set_index(["sparsity_%", "batch"])


def macs_at_levels(model: nn.Module, input_shape: Sequence[int],
                   results: pd.DataFrame) -> pd.DataFrame:
    """:func:`macs` totals for every row of a pruning run's results.

    Args:
        model: the architecture the run trained (any weights; its masks are not used).
        input_shape: one example's shape, e.g. ``(3, 32, 32)``.
        results: rows with the per-layer mask densities, either as a ``layers`` column of
            dicts (:func:`pruninglab.experiments.gimp_runs.run`) or as ``layers.<name>`` columns
            (:func:`pruninglab.experiments.runs.load`).

    Returns:
        ``results``' index with columns ``density`` (kept / weights), ``kept``,
        ``dense_macs``, ``kept_macs`` and ``macs_fraction`` (per example).
    """
    flat = [c for c in results.columns if c.startswith("layers.")]
    if "layers" not in results.columns and not flat:
        raise ValueError("results need a 'layers' column or 'layers.<name>' columns "
                         "(per-layer densities, as gimp.run and runs.load give them)")
    rows = []
    for index, row in results.iterrows():
        if "layers" in results.columns and isinstance(row["layers"], dict):
            densities = row["layers"]
        else:
            densities = {c[len("layers."):]: row[c] for c in flat if pd.notna(row[c])}
        total = macs(model, input_shape, densities).loc["total"]
        rows.append({"index": index, "density": total["density"], "kept": int(total["kept"]),
                     "dense_macs": int(total["dense_macs"]), "kept_macs": int(total["kept_macs"]),
                     "macs_fraction": total["macs_fraction"]})
    return pd.DataFrame(rows).set_index("index").rename_axis(results.index.name)
