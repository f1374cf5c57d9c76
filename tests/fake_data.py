"""Data sets written in their real file formats from random numbers, for the tests: no
machine here reaches the internet, and no package ships CIFAR-10."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x0000 08 <ndim>, big-endian dims, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Random 28x28 images; pixel (0, 0) of training image i holds i, so splits can be traced."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays["x_train"][:, 0, 0] = np.arange(n_train)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(IDX_STEMS, arrays.values()):
        raw = idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0):
    """torchvision's layout: root/cifar-10-batches-py/{data_batch_1..5, test_batch}, each a
    pickled dict with "data" uint8 (N, 3072) (channel-major) and "labels" (a list)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, n).tolist(), "batch_label": name}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        written[name] = batch
    x_train = np.concatenate([written[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    y_train = [label for i in range(1, 6) for label in written[f"data_batch_{i}"]["labels"]]
    test = written["test_batch"]
    return {"x_train": x_train, "y_train": np.array(y_train),
            "x_test": test["data"], "y_test": np.array(test["labels"])}
