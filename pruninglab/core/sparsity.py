"""What a pruned model holds, as a table: per-layer and total counts of its prunable weights."""

from __future__ import annotations

import math

import pandas as pd
from torch import nn

from . import masking

__all__ = ["sparsity_report"]


def sparsity_report(model: nn.Module) -> pd.DataFrame:
    """Per-layer and total counts of the prunable weights, from the masks.

    A model without masks is reported as dense over all its Conv/Linear layers.

    Returns:
        A DataFrame indexed by layer name (last row ``"total"``) with columns ``shape``,
        ``weights``, ``kept``, ``pruned``, ``density`` (kept / weights) and ``compression``
        (weights / kept, the thesis's compression ratio; ``inf`` for an empty layer).

    Raises:
        ValueError: the model has no Conv/Linear layer.
    """
    layers = masking.masked_layers(model) or masking.prunable_layers(model)
    if not layers:
        raise ValueError("sparsity_report: the model has no Conv/Linear layer")
    rows = [{"layer": name, "shape": tuple(layers[name].weight.shape), "weights": weights,
             "kept": kept}
            for name, (kept, weights) in masking.kept_counts(model, layers).items()]
    total_w = sum(r["weights"] for r in rows)
    total_k = sum(r["kept"] for r in rows)
    rows.append({"layer": "total", "shape": (), "weights": total_w, "kept": total_k})
    df = pd.DataFrame(rows).set_index("layer")
    df["pruned"] = df["weights"] - df["kept"]
    df["density"] = df["kept"] / df["weights"]
    df["compression"] = [w / k if k else math.inf for w, k in zip(df["weights"], df["kept"])]
    return df
