"""Benchmarks, run from a shell: ``pruninglab bench <section> [options]``.

Sections (one function each; add a new one with :func:`section`):

* ``masking`` -- one training step of the thesis MLP (784-400-400-400-10, batch 128),
  SGD with momentum and weight decay: dense (``torch.optim.SGD``, the baseline, and ours)
  vs our masked path (:class:`pruninglab.core.optim.SGD` multiplies the masks into the momentum
  update it makes anyway: exactly what :class:`pruninglab.core.train.Trainer` does) vs the
  old path (``torch.optim.SGD``, then the weights multiplied by their masks: by float
  multipliers, :class:`pruninglab.core.masking.MaskApplier`, or by the bool masks) vs
  ``torch.nn.utils.prune``'s forward-pre-hook path (``weight = weight_orig * weight_mask``
  recomputed in every forward pass and differentiated through).
* ``data`` -- one augmented training batch: our batched tensor augmentation vs
  torchvision's PIL transforms in a DataLoader; images/s per core.
* ``train`` -- training steps of ResNet-20 (``--models`` for more): our fast path (the
  Trainer) vs a plain fp32 NCHW eager loop fed by a DataLoader; seconds per 1,000
  iterations. ``--device cuda --models resnet20,wrn-16-8,vgg19 --compile`` on a GPU,
  ``--device cpu --quick`` on a laptop.
* ``sparse`` -- dense vs CSR inference latency and bytes: the thesis MLP and a VGG layer
  at 90/95/99% sparsity.
* ``startup`` -- per notebook, seconds from starting its kernel to its first output and
  to its end (smoke profile), against a bare kernel; and whether ``torch._dynamo`` was
  imported.
* ``threads`` -- training steps of the quick profile's MLP and the small conv net at one
  thread and at more (up to the usable CPUs, at least two), interleaved, on the machine as
  it is and then beside one busy process that the section starts (and always ends): the
  measurement behind :mod:`pruninglab.core.threads`'s default.
* ``sweep`` -- what a sweep on Ray adds per item: trivial runs one after another in one
  process against the same runs as a sweep on a one-CPU Ray instance; Ray's start and
  shutdown apart.
* ``prune`` -- choosing what global magnitude pruning keeps of VGG19's 20 million weights:
  a stable sort against the selection (``torch.kthvalue``) that ``prune`` uses.
* ``concurrent`` -- the total throughput of N trainings (ResNet-20 by default) at once on
  one device, each a plain process, against one alone (N = 1, 2, 4, 8): how many of the
  gpu profile's trainings to pack onto one GPU.
* ``all`` -- every section with its defaults.

Each section prints the machine (CPU model, cores, threads) and the torch version, then a
table of medians over interleaved rounds and their ratio to the baseline. Timings on a
shared machine are noisy: compare ratios from one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import pathlib
import platform
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..core import checks, efficiency, interop, masking, models, optim, pruning, threads
from ..core import data as data_module
from ..core import train as training
from ..core.timing import Step, interleaved, ratio_table, synchronize
from ..experiments import profiles

__all__ = [
    "SECTIONS",
    "add_sections",
    "bench_concurrent",
    "bench_data",
    "bench_masking",
    "bench_prune",
    "bench_sparse",
    "bench_startup",
    "bench_sweep",
    "bench_threads",
    "bench_train",
    "machine",
    "main",
    "positive_int",
    "run_sections",
    "section",
]

SECTIONS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], pd.DataFrame]]] = {}


def section(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn(args) -> DataFrame`` as the section ``name``; ``add_arguments`` adds its
    options to its sub-command."""

    def register(fn: Callable[[argparse.Namespace], pd.DataFrame]):
        SECTIONS[name] = (add_arguments, fn)
        return fn

    return register


def _argument(what: str, convert: Callable[[str], float], check: Callable[[float], object]):
    """An argparse type: ``convert`` the text, then ``check`` it (a :mod:`pruninglab.core.checks`
    function); a bad value is a usage error that says what is allowed."""

    def parse(text: str):
        try:
            return check(convert(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None

    return parse


positive_int = _argument("an integer >= 1", int, lambda v: checks.integer(v, "", minimum=1))
non_negative_int = _argument("an integer >= 0", int, lambda v: checks.integer(v, "", minimum=0))
density = _argument("a number in (0, 1]", float,
                    lambda v: checks.real(v, "", 0.0, 1.0, low_open=True))


def device_name(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", text):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got "
                                         f"{checks.shown(text)}")
    return text


def _check_models(names: list[str]) -> None:
    """Raise ``ValueError`` for a name that is not a pruninglab model, listing the known."""
    for name in names:
        if not models.is_known(name):
            raise ValueError(f"unknown model {name!r}; known: {', '.join(models.names())}")


def _print_gpu(device: torch.device) -> None:
    """On CUDA, print the GPU, its memory and the CUDA and cuDNN versions."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
              f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")


def machine(plan: threads.Plan | None = None) -> str:
    """One line: CPU model, logical cores, torch threads (and why, given the ``plan`` that
    set them), torch and Python versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    used = str(plan) if plan is not None else f"{torch.get_num_threads()} torch threads"
    return (f"{cpu}, {os.cpu_count()} logical cores, {used}; "
            f"torch {torch.__version__}, Python {platform.python_version()}")


# --------------------------------------------------------------------------------------
# masking: dense vs masked vs torch.nn.utils.prune hooks
# --------------------------------------------------------------------------------------


def _sgd(model: nn.Module, ours: bool) -> optim.SGD | torch.optim.SGD:
    """SGD as the Trainer builds it (lr 0.01, momentum 0.9, weight decay ``2 * 1e-4`` on
    Conv/Linear kernels only, a torch-pruned ``weight_orig`` included; none on biases):
    ours with the model's masks in the step, or ``torch.optim.SGD(foreach=True)``."""
    kernels = {id(p) for m in model.modules() if isinstance(m, masking.PRUNABLE_TYPES)
               for n, p in m.named_parameters(recurse=False) if n in ("weight", "weight_orig")}
    params = list(model.parameters())
    groups = [{"params": [p for p in params if id(p) in kernels], "weight_decay": 2e-4},
              {"params": [p for p in params if id(p) not in kernels], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if ours:
        return optim.SGD(groups, lr=0.01, momentum=0.9, model=model)
    return torch.optim.SGD(groups, lr=0.01, momentum=0.9, foreach=True)


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ours: bool,
                after: str | None = None) -> Step:
    """One step as the Trainer takes it, with our SGD (``ours``: masks inside the step) or
    torch's. ``after``: what follows torch's step: ``"multiply"`` (the weights times their
    masks in their dtype, :class:`~pruninglab.core.masking.MaskApplier`), ``"bool multiply"``
    (times the bool masks themselves) or ``None``."""
    optimizer = _sgd(model, ours)
    apply_masks = masking.MaskApplier(model)
    layers = masking.masked_layers(model).values()
    weights, bools = [m.weight for m in layers], [getattr(m, masking.MASK) for m in layers]

    def step() -> None:
        loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after == "multiply":
            apply_masks()
        elif after == "bool multiply":
            with torch.no_grad():
                torch._foreach_mul_(weights, bools)

    return step


def _masking_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="mlp", help="a pruninglab model name (default: the "
                        "thesis MLP 784-400-400-400-10)")
    parser.add_argument("--input-size", type=positive_int, default=28, help="image side in pixels")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="thesis: 128")
    parser.add_argument("--density", type=density, default=0.1, help="mask density")
    parser.add_argument("--rounds", type=positive_int, default=30)
    parser.add_argument("--steps", type=positive_int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=non_negative_int, default=10)
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads (default: pruninglab.core.threads.plan(): "
                        "$PRUNINGLAB_THREADS, else the usable CPUs)")


@section("masking", _masking_arguments)
def bench_masking(args: argparse.Namespace) -> pd.DataFrame:
    """Seconds per training step (forward, backward, SGD with momentum and weight decay, and
    for the masked path the mask multiply), on the CPU with a fixed random batch."""
    torch.manual_seed(0)
    model = models.create(args.model, in_channels=1, num_classes=10, input_size=args.input_size)
    x = torch.randn(args.batch_size, 1, args.input_size, args.input_size)
    y = torch.randint(0, 10, (args.batch_size,))
    # layerwise: at initialization, global magnitude pruning to 10% would empty hidden.0
    masked = pruning.prune(copy.deepcopy(model), args.density, scope="layerwise")
    hooked = interop.to_torch_prune(masked)
    variants = {
        "dense, torch.optim.SGD": _train_step(copy.deepcopy(model), x, y, ours=False),
        "dense, pruninglab.core.optim.SGD": _train_step(copy.deepcopy(model), x, y, ours=True),
        "masked (ours): masks inside the SGD step": _train_step(masked, x, y, ours=True),
        "masked: torch.optim.SGD, then multiply": _train_step(
            copy.deepcopy(masked), x, y, ours=False, after="multiply"),
        "masked: torch.optim.SGD, then bool multiply": _train_step(
            copy.deepcopy(masked), x, y, ours=False, after="bool multiply"),
        "torch.nn.utils.prune hooks": _train_step(hooked, x, y, ours=False),
    }
    print(f"masking: one training step of {args.model} (input {args.input_size}x"
          f"{args.input_size}), batch {args.batch_size}, density {args.density:g}, CPU; "
          f"{args.rounds} rounds x {args.steps} steps, interleaved")
    times = interleaved(variants, args.rounds, args.steps, args.warmup)
    return ratio_table(times, baseline="dense, torch.optim.SGD")


# --------------------------------------------------------------------------------------
# data: our batched tensor augmentation vs torchvision's PIL transforms in a DataLoader
# --------------------------------------------------------------------------------------

# CIFAR-10's training-set channel statistics, as a torchvision pipeline normalizes with them.
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _cifar_shaped(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random uint8 images ``(n, size, size, 3)`` (HWC, as torchvision's CIFAR10 holds
    them) and labels ``(n,)`` in 0..9: speed does not depend on the pixel values."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), generator=generator, dtype=torch.uint8)
    return images, torch.randint(0, 10, (n,), generator=generator)


def _standardized(images: torch.Tensor) -> torch.Tensor:
    """uint8 HWC images -> float32 ``(N, 3, H, W)`` standardized, as ``data.load`` stores."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    mean, std = torch.tensor(_CIFAR_MEAN), torch.tensor(_CIFAR_STD)
    return ((x - mean[None, :, None, None]) / std[None, :, None, None]).contiguous()


class _PILImages(torch.utils.data.Dataset):
    """What ``torchvision.datasets.CIFAR10`` does per item: an HWC uint8 array becomes a PIL
    image and goes through ``transform`` (the torchvision baseline of the ``data`` section)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images, self.labels, self.transform = images.numpy(), labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def _endless(loader: torch.utils.data.DataLoader):
    """Batches from ``loader``, epoch after epoch."""
    while True:
        yield from loader


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=positive_int, default=128, help="thesis: 128")
    parser.add_argument("--images", type=positive_int, default=10_000,
                        help="size of the random CIFAR-shaped (32x32x3) training set")
    parser.add_argument("--input-size", type=positive_int, default=32, help="image side in pixels")
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--batches", type=positive_int, default=10, help="timed batches per round")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed batches first")
    parser.add_argument("--cores", type=positive_int, default=1,
                        help="cores per pipeline: torch threads for ours; for torchvision's "
                        "DataLoader the main process if 1, else that many worker processes")
    parser.add_argument("--device", type=device_name, default="cpu",
                        help="where our batches are made (cpu, or cuda: then per core is "
                        "not meaningful and the torchvision baseline still runs on the CPU)")


@section("data", _data_arguments)
def bench_data(args: argparse.Namespace) -> pd.DataFrame:
    """Images per second of a training-batch pipeline (flip, 4-px reflect pad, crop):
    our batched tensor augmentation vs torchvision's PIL transforms in a DataLoader.

    Ours is :class:`pruninglab.core.data.Batches`: index a random batch of the standardized
    float32 tensor, then :func:`pruninglab.core.data.augment` on the whole batch. The baseline is
    the usual CIFAR-10 recipe: ``RandomCrop(32, padding=4, padding_mode="reflect")``,
    ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize`` per image from uint8 PIL
    images, collated by a shuffling ``DataLoader``. Each gets ``--cores`` cores; the
    ``per_core`` columns divide by them.
    """
    if args.cores < 1:
        raise ValueError(f"--cores must be >= 1, got {args.cores}")
    device = training.resolve_device(args.device)
    images, labels = _cifar_shaped(args.images, args.input_size, seed=0)
    x = _standardized(images).to(device)
    ours = iter(data_module.Batches(x, labels.to(device), args.batch_size, seed=0, augment=True))

    def ours_step() -> None:
        next(ours)
        synchronize(device)

    variants: dict[str, Step] = {"ours: batched tensor augmentation": ours_step}
    cores = {"ours: batched tensor augmentation": args.cores if device.type == "cpu" else None}
    try:  # only this section needs torchvision, which takes a second to import
        from torchvision import transforms
    except ModuleNotFoundError:
        transforms = None
        print("torchvision is not installed: its PIL pipeline is not measured")
    if transforms is not None:
        pipeline = transforms.Compose([
            transforms.RandomCrop(args.input_size, padding=4, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(_CIFAR_MEAN, _CIFAR_STD),
        ])
        workers = 0 if args.cores == 1 else args.cores
        loader = torch.utils.data.DataLoader(
            _PILImages(images, labels, pipeline), batch_size=args.batch_size, shuffle=True,
            drop_last=True, num_workers=workers, persistent_workers=workers > 0)
        theirs = _endless(loader)
        variants["torchvision PIL transforms + DataLoader"] = lambda: next(theirs)
        cores["torchvision PIL transforms + DataLoader"] = args.cores

    print(f"data: one batch of {args.batch_size} images {args.input_size}x{args.input_size}x3 "
          f"(flip, 4-px reflect pad, crop), {args.cores} core(s) each, ours on {device}; "
          f"{args.rounds} rounds x {args.batches} batches, interleaved")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.cores)
    try:
        times = interleaved(variants, args.rounds, args.batches, args.warmup)
    finally:
        torch.set_num_threads(threads)
    rows = []
    for name, t in times.items():
        median = statistics.median(t)
        n_cores = cores[name]
        per_core = args.batch_size / median / n_cores if n_cores else float("nan")
        rows.append({"variant": name, "median_ms": 1e3 * median, "min_ms": 1e3 * min(t),
                     "images_per_s": args.batch_size / median, "cores": n_cores,
                     "images_per_s_per_core": per_core})
    table = pd.DataFrame(rows).set_index("variant")
    base = "torchvision PIL transforms + DataLoader"
    if base in table.index:
        table["speedup_per_core"] = (table["images_per_s_per_core"]
                                     / table.loc[base, "images_per_s_per_core"])
    return table


# --------------------------------------------------------------------------------------
# train: our fast path (pruninglab.core.train.Trainer) vs a plain loop fed by a DataLoader
# --------------------------------------------------------------------------------------


class _PlainImages(torch.utils.data.Dataset):
    """The plain loop's data set: uint8 HWC images; per item, in torch: to float in [0, 1],
    normalize, flip with probability 1/2, 4-pixel reflect pad and a random crop."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images.permute(0, 3, 1, 2).contiguous(), labels
        self.mean = torch.tensor(_CIFAR_MEAN)[:, None, None]
        self.std = torch.tensor(_CIFAR_STD)[:, None, None]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = (self.images[i].float() / 255 - self.mean) / self.std
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        h, w = x.shape[1:]
        x = F.pad(x[None], (4, 4, 4, 4), mode="reflect")[0]
        dy, dx = torch.randint(0, 9, (2,)).tolist()
        return x[:, dy : dy + h, dx : dx + w], self.labels[i]


def _plain_loop(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                l2: float, batch_size: int, workers: int, device: torch.device):
    """``run(n)``: n steps of the loop most tutorials write. A shuffling ``DataLoader`` with
    ``workers`` processes over :class:`_PlainImages` (pinned memory on CUDA); fp32, NCHW,
    eager; SGD with momentum 0.9 and weight decay ``2 * l2`` on every parameter; masks (if
    any) multiplied in layer by layer; ``loss.item()`` and the batch accuracy read every
    step (a host synchronisation per step)."""
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=2 * l2)
    loader = torch.utils.data.DataLoader(
        _PlainImages(images, labels), batch_size=batch_size, shuffle=True, drop_last=True,
        num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=workers > 0)
    batches = _endless(loader)
    masked = [(m.weight, getattr(m, masking.MASK)) for m in masking.masked_layers(model).values()]
    totals = {"loss": 0.0, "correct": 0}

    def run(steps: int) -> None:
        model.train()
        for _ in range(steps):
            x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for weight, mask in masked:
                    weight.mul_(mask)
            totals["loss"] += loss.item()
            totals["correct"] += int((logits.argmax(1) == y).sum().item())
        synchronize(device)

    return run


def _fast_path(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, name: str,
               batch_size: int, compile: bool, device: torch.device):
    """``run(n)``: n steps of :class:`pruninglab.core.train.Trainer` with the thesis's settings
    for ``name``: the data set standardized and resident on ``device``, batched
    augmentation there, and on CUDA channels-last, bf16 autocast, optionally
    ``torch.compile`` with CUDA graphs; no host synchronisation per step, masks by one
    foreach multiply."""
    x = _standardized(images)
    data = data_module.Dataset(
        name="cifar10-shaped random", x_train=x, y_train=labels, x_test=x[:2], y_test=labels[:2],
        classes=data_module.CIFAR10_CLASSES, mean=torch.tensor(_CIFAR_MEAN),
        std=torch.tensor(_CIFAR_STD), augment=True).to(device)
    config = profiles.thesis_train_config(name, batch_size=batch_size)
    config = dataclasses.replace(config, compile=compile)
    trainer = training.Trainer(model, data, config, seed=0, progress=False)

    def run(steps: int) -> None:
        trainer.run(steps)  # reads the accumulated loss once, at the end
        synchronize(device)

    return run


_TRAIN_SIZES = {  # option: (default, with --quick)
    "batch_size": (128, 128), "train_size": (50_000, 1_024), "steps": (50, 3),
    "rounds": (5, 3), "warmup": (20, 2), "workers": (4, 0),
}


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device_name, default="auto", help="auto, cpu or cuda")
    parser.add_argument("--models", default="resnet20",
                        help="comma-separated pruninglab model names, e.g. resnet20,wrn-16-8,vgg19")
    parser.add_argument("--plain", default="resnet20",
                        help="comma-separated models whose plain loop is timed too ('' for none)")
    parser.add_argument("--compile", action="store_true",
                        help="also time our fast path with TrainConfig(compile=True): "
                        "torch.compile replayed as CUDA graphs (CUDA only)")
    parser.add_argument("--density", type=density, default=1.0,
                        help="train masked models at this density (layerwise magnitude)")
    parser.add_argument("--input-size", type=positive_int, default=32, help="image side in pixels")
    parser.add_argument("--quick", action="store_true",
                        help="CPU-sized defaults: " + ", ".join(
                            f"{k.replace('_', '-')} {v[1]}" for k, v in _TRAIN_SIZES.items()))
    for key, (full, _) in _TRAIN_SIZES.items():
        helps = {"steps": "timed steps per round", "warmup": "untimed steps per variant first",
                 "train_size": "random CIFAR-shaped training images",
                 "workers": "the plain loop's DataLoader worker processes"}
        kind = non_negative_int if key in ("warmup", "workers") else positive_int
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=None,
                            help=f"{helps.get(key, '')} (default {full})".strip())
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads (default: pruninglab.core.threads.plan(): "
                        "$PRUNINGLAB_THREADS, else the usable CPUs)")


@section("train", _train_arguments)
def bench_train(args: argparse.Namespace) -> pd.DataFrame:
    """Training steps per second: our fast path (the Trainer) vs a plain fp32 NCHW eager loop
    fed by a DataLoader with per-image augmentation; seconds per 1,000 iterations.

    Both train the same freshly initialized model on the same random CIFAR-shaped images
    with the thesis's learning rate and L2 for its family. Each variant first takes
    ``--warmup`` untimed steps (on CUDA this includes ``torch.compile``'s compilation), then
    the variants of one model take turns, ``--rounds`` times ``--steps`` steps each; every
    timed block ends with ``torch.cuda.synchronize()`` on CUDA.
    """
    sizes = {key: getattr(args, key) if getattr(args, key) is not None
             else (quick if args.quick else full)
             for key, (full, quick) in _TRAIN_SIZES.items()}
    device = training.resolve_device(args.device)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    plain = {n.strip() for n in args.plain.split(",") if n.strip()}
    _check_models([*names, *plain])
    if plain - set(names):
        raise ValueError(f"--plain names models not in --models: {sorted(plain - set(names))}")
    if args.compile and device.type != "cuda":
        raise ValueError("--compile needs --device cuda: the Trainer compiles only on CUDA")
    if not 0.0 < args.density <= 1.0:
        raise ValueError(f"--density must lie in (0, 1], got {args.density}")
    _print_gpu(device)
    print(f"train: {', '.join(names)} on {sizes['train_size']:,} random "
          f"{args.input_size}x{args.input_size}x3 images, batch {sizes['batch_size']}, "
          f"density {args.density:g}, {device}, {torch.get_num_threads()} torch threads; "
          f"{sizes['rounds']} rounds x {sizes['steps']} "
          f"steps after {sizes['warmup']} warm-up steps, interleaved per model; plain loop with "
          f"{sizes['workers']} DataLoader workers")
    images, labels = _cifar_shaped(sizes["train_size"], args.input_size, seed=0)
    tables = []
    for name in names:
        torch.manual_seed(0)
        model = models.create(name, in_channels=3, num_classes=10, input_size=args.input_size)
        if args.density < 1.0:
            pruning.prune(model, args.density, scope="layerwise")
        config = profiles.thesis_train_config(name)
        runs = {"fast (ours)": _fast_path(copy.deepcopy(model), images, labels, name,
                                          sizes["batch_size"], False, device)}
        if args.compile:
            runs["fast + torch.compile (ours)"] = _fast_path(
                copy.deepcopy(model), images, labels, name, sizes["batch_size"], True, device)
        if name in plain:
            runs["plain loop"] = _plain_loop(copy.deepcopy(model), images, labels,
                                             config.schedule(0), config.l2, sizes["batch_size"],
                                             sizes["workers"], device)
        for run in runs.values():
            run(sizes["warmup"])
        blocks = {variant: (lambda run=run: run(sizes["steps"])) for variant, run in runs.items()}
        times = interleaved(blocks, sizes["rounds"], 1, 0)
        per_step = {variant: [t / sizes["steps"] for t in ts] for variant, ts in times.items()}
        table = ratio_table(per_step, baseline=next(iter(per_step)))
        table = table.drop(columns="ratio")
        table["s_per_1k_iters"] = table["median_ms"]  # ms per step = s per 1,000 steps
        table["images_per_s"] = sizes["batch_size"] * 1e3 / table["median_ms"]
        table["hours_per_thesis_T"] = table["s_per_1k_iters"] * config.steps / 1e3 / 3600
        if "plain loop" in table.index:
            table["ratio"] = table["median_ms"] / table.loc["plain loop", "median_ms"]
            table["speedup"] = 1.0 / table["ratio"]
        table.insert(0, "model", name)
        tables.append(table.reset_index().set_index(["model", "variant"]))
        del runs, blocks, model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return pd.concat(tables)


# --------------------------------------------------------------------------------------
# sparse: dense vs CSR inference, time and bytes
# --------------------------------------------------------------------------------------


def _floats(text: str, arg: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{arg} must be comma-separated numbers, got {text!r}") from None


def _sparse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--densities", default="0.1,0.05,0.01",
                        help="kept fractions (0.1 = 90%% sparsity)")
    parser.add_argument("--batch-sizes", default="1,128", help="images per forward pass")
    parser.add_argument("--vgg-channels", type=positive_int, default=512,
                        help="the VGG layer: a 3x3 conv with this many channels in and out")
    parser.add_argument("--vgg-size", type=positive_int, default=4,
                        help="its input side in pixels (VGG19's 512-channel stage 4 on CIFAR-10)")
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed forward passes per round")
    parser.add_argument("--warmup", type=non_negative_int, default=2)
    parser.add_argument("--index-dtype", choices=("int32", "int64"), default="int32")
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads (default: pruninglab.core.threads.plan(): "
                        "$PRUNINGLAB_THREADS, else the usable CPUs)")


@section("sparse", _sparse_arguments)
def bench_sparse(args: argparse.Namespace) -> pd.DataFrame:
    """Inference with the kept weights in CSR form vs dense weights holding zeros: latency
    per forward pass and bytes of the prunable weights, for the thesis MLP and a VGG layer.

    The MLP (784-400-400-400-10) runs whole, each Linear as CSR times the input; the VGG
    layer is one bias-free 3x3 convolution, as CSR times the unfolded input (im2col).
    Weights are random, pruned layerwise by magnitude (each layer at the density):
    the kernels' speed depends on the density and the shape, not on the values.
    """
    device = training.resolve_device(args.device)
    densities = _floats(args.densities, "--densities")
    batch_sizes = [int(b) for b in _floats(args.batch_sizes, "--batch-sizes")]
    index_dtype = {"int32": torch.int32, "int64": torch.int64}[args.index_dtype]
    c, s = args.vgg_channels, args.vgg_size
    torch.manual_seed(0)
    networks = {
        "mlp 784-400-400-400-10": (models.create("mlp", 1, 10, 28), (1, 28, 28)),
        f"vgg conv3x3 {c}->{c} @{s}x{s}": (nn.Conv2d(c, c, 3, padding=1, bias=False), (c, s, s)),
    }
    print(f"sparse: dense vs CSR ({args.index_dtype} indices) forward pass on {device}, "
          f"{torch.get_num_threads()} torch threads; {args.rounds} rounds x {args.repeats} "
          "passes, interleaved")
    tables = {label: efficiency.inference_table(net.to(device), shape, densities, batch_sizes,
                                                args.rounds, args.repeats, args.warmup,
                                                index_dtype)
              for label, (net, shape) in networks.items()}
    return pd.concat(tables, names=["network"]).drop(columns="density")


# --------------------------------------------------------------------------------------
# threads: one thread against more, on a quiet machine and beside a busy process
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _busy_neighbour(busy: bool):
    """If ``busy``, keep one CPU-bound Python process (``while True: pass``) running beside
    this one for the duration; it is ended however the block ends."""
    if not busy:
        yield
        return
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning before the first timed step
        yield
    finally:
        neighbour.kill()
        neighbour.wait()


def _at_threads(count: int, step: Step) -> Step:
    """``step`` run with ``count`` torch threads (set only when it changes: once a round)."""

    def run() -> None:
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
        step()

    return run


def _thread_counts(text: str) -> list[int]:
    """An argparse type: ``--counts 1,2,4`` as a sorted list of counts >= 1 (of threads, or
    of trainings at once)."""
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        counts = [0]
    if counts[0] < 1:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated counts >= 1, e.g. 1,2, got {text!r}")
    return counts


def _threads_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="mlp,convnet",
                        help="comma-separated pruninglab model names, on 28x28 one-channel "
                        "images (mnist5k's shape)")
    parser.add_argument("--counts", type=_thread_counts, default=None,
                        help="comma-separated thread counts (default: 1 up to the usable CPUs, "
                        "at least 1 and 2)")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--steps", type=positive_int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=non_negative_int, default=5)


@section("threads", _threads_arguments)
def bench_threads(args: argparse.Namespace) -> pd.DataFrame:
    """Seconds per training step (dense, our SGD with momentum and weight decay, CPU, a fixed
    random batch) at each thread count, the counts interleaved, first on the machine as it
    is ("quiet"), then beside one busy process ("busy"); ratios against one thread on the
    quiet machine, per model. Run it on an otherwise idle machine."""
    counts = args.counts or list(range(1, max(2, threads.usable_cpus()[0]) + 1))
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    print(f"threads: one training step, batch {args.batch_size}, {counts} threads, OpenMP "
          f"{'waits passively' if threads.waits_passively() else 'spins while it waits'}; "
          f"{args.rounds} rounds x {args.steps} steps, interleaved, quiet then busy")
    before = torch.get_num_threads()
    rows = []
    try:
        for name in names:
            torch.manual_seed(0)
            model = models.create(name, in_channels=1, num_classes=10, input_size=28)
            x = torch.randn(args.batch_size, 1, 28, 28)
            y = torch.randint(0, 10, (args.batch_size,))
            step = _train_step(model, x, y, ours=True)
            for condition in ("quiet", "busy"):
                with _busy_neighbour(condition == "busy"):
                    times = interleaved({n: _at_threads(n, step) for n in counts},
                                        args.rounds, args.steps, args.warmup)
                rows += [{"model": name, "machine": condition, "threads": n,
                          "median_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t)}
                         for n, t in times.items()]
    finally:
        torch.set_num_threads(before)
    table = pd.DataFrame(rows)
    one_quiet = table[(table["machine"] == "quiet") & (table["threads"] == 1)]
    base = table["model"].map(one_quiet.set_index("model")["median_ms"])
    table["ratio"] = table["median_ms"] / base
    return table.set_index(["model", "machine", "threads"])


# --------------------------------------------------------------------------------------
# startup: a notebook kernel's time to its first output, and to its end
# --------------------------------------------------------------------------------------

_OUTPUTS = ("stream", "display_data", "execute_result", "error")


def _run_kernel(cells: list[str], env: dict[str, str], timeout: float,
                log: pathlib.Path) -> dict:
    """Start a fresh ``python3`` kernel with ``env``, execute ``cells`` in order and return
    ``{"first_output_s", "total_s", "dynamo", "error"}``: seconds from asking for the kernel
    to its first output and to the end of the last cell, and whether ``torch._dynamo`` was
    imported by then. The kernel's own stderr (its start-up warnings) goes to ``log``; a
    kernel that falls silent for ``timeout`` seconds is reported with the end of it."""
    from jupyter_client.manager import start_new_kernel  # only this section needs it

    probe = "import sys; print('torch._dynamo' in sys.modules, end='')"
    tic = time.perf_counter()
    with open(log, "w") as stderr:
        manager, client = start_new_kernel(kernel_name="python3", env=env, stderr=stderr)
    first, error, probed, total = None, None, "", float("nan")
    try:
        for i, code in enumerate([*cells, probe]):
            msg_id = client.execute(code, store_history=False)
            while error is None:
                try:
                    msg = client.get_iopub_msg(timeout=timeout)
                except queue.Empty:
                    tail = " | ".join(log.read_text().strip().splitlines()[-3:])
                    error = f"cell {i + 1}: no output for {timeout:g} s; kernel stderr: {tail}"
                    break
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if i == len(cells):  # the probe: not part of the notebook
                    probed += content.get("text", "") if kind == "stream" else ""
                elif kind in _OUTPUTS and first is None:
                    first = time.perf_counter() - tic
                if kind == "error":
                    error = f"cell {i + 1}: {content['ename']}: {content['evalue']}"
                if kind == "status" and content["execution_state"] == "idle":
                    break
            if error:
                break
            if i == len(cells) - 1:
                total = time.perf_counter() - tic
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {"first_output_s": first, "total_s": total, "dynamo": probed.strip() == "True",
            "error": error}


def _startup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("select", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument("--profile", default="smoke", help="the notebooks' profile")
    parser.add_argument("--rounds", type=positive_int, default=1,
                        help="fresh kernels per notebook (the median is shown)")
    parser.add_argument("--dir", default=None, help="folder holding the notebooks")
    parser.add_argument("--python-path", default=None,
                        help="put this folder first on the kernels' PYTHONPATH, e.g. another "
                        "checkout of pruninglab, to time it before a change (the kernels "
                        "still inherit this process's OMP_* thread variables)")
    parser.add_argument("--timeout", type=positive_int, default=600,
                        help="seconds to wait for any one output")


@section("startup", _startup_arguments)
def bench_startup(args: argparse.Namespace) -> pd.DataFrame:
    """Seconds from starting a notebook's kernel to its first output (the imports and the
    harness line) and to the end of its last cell, against a bare kernel printing one
    number, in the same run; and whether the kernel imported ``torch._dynamo``.

    Each kernel is fresh, with ``$PRUNINGLAB_PROFILE`` set to ``--profile`` and an empty
    temporary run store (so every notebook trains), its threads set by the harness. The
    rounds take the notebooks in turn. A notebook that fails is reported in an ``error``
    column and timed to its first output only.
    """
    import nbformat

    from ..course import (
        notebooks as harness,  # same layer; imported here, as only this section needs it
    )

    paths = harness.find_notebooks(args.dir, args.select or None)
    if not paths:
        raise ValueError(f"no notebook matches {args.select}")
    if args.profile not in profiles.PROFILES:
        raise ValueError(f"--profile {args.profile!r} is unknown; known: "
                         f"{', '.join(profiles.PROFILES)}")
    sources = {"bare kernel (baseline)": ["print(1)"]}
    for path in paths:
        cells = nbformat.read(path, as_version=4).cells
        sources[path.stem] = [c.source for c in cells if c.cell_type == "code"]
    print(f"startup: {len(paths)} notebooks in the {args.profile} profile, fresh kernels, "
          f"{args.rounds} round(s)" + (f", kernels' PYTHONPATH {args.python_path}"
                                       if args.python_path else ""))
    results: dict[str, list[dict]] = {name: [] for name in sources}
    with tempfile.TemporaryDirectory() as store, tempfile.TemporaryDirectory() as logs:
        env = {**os.environ, "PRUNINGLAB_PROFILE": args.profile, "PRUNINGLAB_RUNS": store,
               "MPLBACKEND": "Agg"}
        if args.python_path:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (os.path.abspath(args.python_path), env.get("PYTHONPATH")) if p)
        for _ in range(args.rounds):
            for name, cells in sources.items():
                results[name].append(_run_kernel(cells, env, args.timeout,
                                                 pathlib.Path(logs) / "kernel.log"))
    rows = []
    for name, runs_of in results.items():
        errors = [r["error"] for r in runs_of if r["error"]]
        rows.append({"notebook": name,
                     "first_output_s": statistics.median(r["first_output_s"] or float("nan")
                                                         for r in runs_of),
                     "total_s": statistics.median(r["total_s"] for r in runs_of),
                     "torch._dynamo": any(r["dynamo"] for r in runs_of),
                     "error": errors[0] if errors else ""})
    table = pd.DataFrame(rows).set_index("notebook")
    table.insert(1, "ratio", table["first_output_s"]
                 / table.loc["bare kernel (baseline)", "first_output_s"])
    if not table["error"].any():
        table = table.drop(columns="error")
    return table


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=positive_int, default=8,
                        help="trivial runs, one per seed")
    parser.add_argument("--steps", type=positive_int, default=4,
                        help="training steps of each run's two levels")


@section("sweep", _sweep_arguments)
def bench_sweep(args: argparse.Namespace) -> pd.DataFrame:
    """What a sweep (:mod:`pruninglab.scale.sweep`) adds to each item: ``--items`` trivial runs
    (LR rewinding of the smoke profile's MLP on the digits, two levels of ``--steps``
    steps, one seed each) one after another in this process (the baseline), against the
    same runs as a sweep on a new Ray instance on this machine with one CPU, so that the
    items run one at a time there too and the difference is what Ray and the sweep add,
    not parallelism. Each side writes a store of its own; Ray's start and shutdown are
    timed apart.
    """
    from . import sweep  # same layer; imported here, as only this section needs it

    seeds = ", ".join(str(seed) for seed in range(args.items))
    text = (f'[sweep]\nretries = 0\n\n[[runs]]\npreset = "lr_rewinding"\nprofile = "smoke"\n'
            f"train_steps = {args.steps}\ntarget_density = 0.7\nseeds = [{seeds}]\n")
    with tempfile.TemporaryDirectory() as folder:
        file = pathlib.Path(folder) / "bench.toml"
        file.write_text(text)
        alone = sweep.load(file, store=pathlib.Path(folder) / "alone")
        swept = dataclasses.replace(alone, store=pathlib.Path(folder) / "swept")
        print(f"sweep: {args.items} runs of {alone.items[0].name.rsplit(' seed', 1)[0]}, "
              f"2 levels of {args.steps} step(s) each; Ray with 1 CPU")
        tic = time.perf_counter()
        for item in alone.items:
            sweep.run_item(item, alone.store, alone.out)
        baseline = time.perf_counter() - tic
        tic = time.perf_counter()
        sweep.connect(cpus=1)
        started = time.perf_counter() - tic
        import ray

        try:
            tic = time.perf_counter()
            result = sweep.run(swept, progress=False)
            on_ray = time.perf_counter() - tic
        finally:
            tic = time.perf_counter()
            ray.shutdown()
            stopped = time.perf_counter() - tic
    if not (result["status"] == "finished").all():
        raise RuntimeError(f"the sweep did not finish every item:\n{result.to_string()}")
    n = args.items
    rows = [("one after another in this process (baseline)", baseline, baseline / n, 1.0),
            ("as a sweep on Ray, 1 CPU", on_ray, on_ray / n, on_ray / baseline),
            ("the sweep's overhead per item", float("nan"), (on_ray - baseline) / n,
             float("nan")),
            ("Ray's start (once per sweep)", started, float("nan"), float("nan")),
            ("Ray's shutdown (once per sweep)", stopped, float("nan"), float("nan"))]
    return pd.DataFrame(rows, columns=["", "total_s", "per_item_s", "ratio"]).set_index("")


# --------------------------------------------------------------------------------------
# prune: global magnitude pruning of a large network, selection vs sort
# --------------------------------------------------------------------------------------


def _prune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="vgg19",
                        help="a pruninglab model name (default vgg19: 20 million weights)")
    parser.add_argument("--density", type=density, default=0.7,
                        help="the density pruned to, from dense (default 0.7: GIMP's first step)")
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--warmup", type=non_negative_int, default=1)
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads (default: pruninglab.core.threads.plan(): "
                        "$PRUNINGLAB_THREADS, else the usable CPUs)")


@section("prune", _prune_arguments)
def bench_prune(args: argparse.Namespace) -> pd.DataFrame:
    """Choosing the weights that global magnitude pruning keeps, on the CPU: a stable
    descending sort of every weight's magnitude (the baseline) against what
    :func:`pruninglab.core.pruning.prune` does, a selection of the k-th largest
    (``torch.kthvalue``) and the ties in index order. Both keep the same weights (checked)."""
    _check_models([args.model])
    model = models.create(args.model)
    scores = torch.cat([layer.weight.detach().abs().flatten()
                        for layer in masking.prunable_layers(model).values()])
    alive = torch.ones_like(scores, dtype=torch.bool)
    k = round(args.density * scores.numel())
    if not torch.equal(pruning._top(scores, alive, k), pruning._top_sorted(scores, alive, k)):
        raise RuntimeError("the selection and the sort keep different weights")
    print(f"prune: {args.model}, {scores.numel():,} weights, keep {k:,} "
          f"(density {args.density:g}); {args.rounds} rounds after {args.warmup} warm-up")
    times = interleaved({"stable sort (baseline)": lambda: pruning._top_sorted(scores, alive, k),
                         "kthvalue selection (ours)": lambda: pruning._top(scores, alive, k)},
                        args.rounds, 1, args.warmup)
    return ratio_table(times, baseline="stable sort (baseline)")


# --------------------------------------------------------------------------------------
# concurrent: several trainings on one GPU, each its own process
# --------------------------------------------------------------------------------------

# What each worker process runs: build the model and its data on the device, warm up, say
# "ready", wait for "go" on stdin, train, then print its start and end times as JSON. The
# parent starts every worker of one round before any is timed, so process start, imports
# and CUDA context creation stay outside the timing.
_WORKER = """
import json, sys, time
import pruninglab
from pruninglab import bench, threads
spec = json.loads(sys.argv[1])
threads.configure(spec["threads"])
run, device = bench._training(spec)
run(spec["warmup"])
print("ready", flush=True)
sys.stdin.readline()
start = time.time()
run(spec["steps"])
end = time.time()
print(json.dumps({"start": start, "end": end, "memory": bench._peak_memory(device)}),
      flush=True)
"""


def _training(spec: dict) -> tuple[Callable[[int], None], torch.device]:
    """``run(n)`` training ``spec["model"]`` with the Trainer (:func:`_fast_path`) on random
    CIFAR-shaped images resident on ``spec["device"]``, and that device."""
    device = training.resolve_device(spec["device"])
    torch.manual_seed(spec["seed"])
    model = models.create(spec["model"], in_channels=3, num_classes=10, input_size=32)
    images, labels = _cifar_shaped(spec["train_size"], 32, seed=spec["seed"])
    return _fast_path(model, images, labels, spec["model"], spec["batch_size"], False,
                      device), device


def _peak_memory(device: torch.device) -> float:
    """GiB of CUDA memory this process allocated at most (NaN on the CPU)."""
    if device.type != "cuda":
        return float("nan")
    return torch.cuda.max_memory_allocated(device) / 2**30


def _one_round(n: int, spec: dict) -> dict:
    """Run ``n`` worker processes at once; their total steps per second and peak memory."""
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps({**spec, "seed": i})],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for i in range(n)]

    def said(worker: subprocess.Popen, what: str) -> str:
        line = worker.stdout.readline().strip()
        if not line:  # the process ended: its error went to stderr
            worker.kill()
            raise RuntimeError(f"a training process failed {what} (exit {worker.wait()}); its "
                               "error is printed above")
        return line

    try:
        for worker in workers:
            while said(worker, "before it was ready") != "ready":
                pass  # a library's stray line
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            line = said(worker, "while it trained")
            while not line.startswith("{"):  # a library's stray line
                line = said(worker, "while it trained")
            results.append(json.loads(line))
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
            worker.stdin.close()
            worker.stdout.close()
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"steps_per_s": n * spec["steps"] / wall,
            "memory_gib": max(r["memory"] for r in results)}


def _concurrent_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device_name, default="auto", help="auto, cpu or cuda")
    parser.add_argument("--model", default="resnet20", help="a pruninglab model name")
    parser.add_argument("--counts", type=_thread_counts, default=[1, 2, 4, 8],
                        help="comma-separated numbers of trainings at once (default 1,2,4,8)")
    parser.add_argument("--steps", type=positive_int, default=300,
                        help="timed steps of each training per round")
    parser.add_argument("--warmup", type=non_negative_int, default=20,
                        help="untimed steps of each training first")
    parser.add_argument("--rounds", type=positive_int, default=2)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--train-size", type=positive_int, default=5_000,
                        help="random CIFAR-shaped training images per training")


@section("concurrent", _concurrent_arguments)
def bench_concurrent(args: argparse.Namespace) -> pd.DataFrame:
    """Total training throughput of N trainings at once on one device, each a plain process
    of its own, against one alone: how many of the gpu profile's trainings to pack onto one
    GPU (a sweep's ``gpus = 1/N``).

    Each training is :class:`pruninglab.core.train.Trainer` on ``--model`` with the thesis's
    settings and its data resident on the device. A round starts N processes, lets each
    take ``--warmup`` steps, then releases them together; the round's throughput is N x
    ``--steps`` over the time from the first start to the last end. The counts take turns
    round after round. On the CPU each process gets the usable CPUs / N torch threads.
    """
    device = training.resolve_device(args.device)
    _check_models([args.model])
    if args.counts[0] != 1:
        raise ValueError(f"--counts must include 1 (one training alone, the baseline), got "
                         f"{','.join(map(str, args.counts))}")
    usable = threads.usable_cpus()[0]
    _print_gpu(device)
    print(f"concurrent: {args.model}, batch {args.batch_size}, {args.train_size:,} random "
          f"32x32x3 images per training, {device}; {args.rounds} rounds x {args.steps} steps "
          f"after {args.warmup} warm-up steps, for {', '.join(map(str, args.counts))} "
          "trainings at once")
    spec = {"model": args.model, "device": str(device), "steps": args.steps,
            "warmup": args.warmup, "batch_size": args.batch_size, "train_size": args.train_size}
    rates: dict[int, list[float]] = {n: [] for n in args.counts}
    memory: dict[int, float] = {}
    for _ in range(args.rounds):
        for n in args.counts:
            threads_each = 1 if device.type == "cuda" else max(1, usable // n)
            result = _one_round(n, {**spec, "threads": threads_each})
            rates[n].append(result["steps_per_s"])
            memory[n] = result["memory_gib"]
    alone = statistics.median(rates[1])
    rows = []
    for n in args.counts:
        total = statistics.median(rates[n])
        rows.append({"trainings": n, "total_steps_per_s": total,
                     "s_per_1k_iters_each": 1e3 * n / total,
                     "speedup": total / alone, "peak_gib_each": memory[n]})
    table = pd.DataFrame(rows).set_index("trainings")
    best = int(table["total_steps_per_s"].idxmax())
    print(f"most steps per second with {best} trainings at once "
          f"({table.loc[best, 'speedup']:.2f}x one alone)")
    return table


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------


def add_sections(sub: argparse._SubParsersAction) -> None:
    """A sub-command per section, and ``all``, in ``sub`` (of ``pruninglab bench`` and of
    :func:`main`); :func:`run_sections` runs what was parsed."""
    for name, (add_arguments, fn) in SECTIONS.items():
        parser = sub.add_parser(name, help=(fn.__doc__ or "").split("\n")[0])
        add_arguments(parser)
        parser.set_defaults(bench_parser=parser)
    sub.add_parser("all", help="every section with its defaults")


def run_sections(args: argparse.Namespace) -> int:
    """Run the section ``args.section`` (every one for ``all``) and print its table."""
    names = list(SECTIONS) if args.section == "all" else [args.section]
    for name in names:
        add_arguments, fn = SECTIONS[name]
        if args.section == "all":
            section_parser = argparse.ArgumentParser()
            add_arguments(section_parser)
            section_args = section_parser.parse_args([])
        else:
            section_args = args
        plan = threads.configure(getattr(section_args, "threads", None))
        print(machine(plan))
        try:
            table = fn(section_args)
        except ValueError as err:  # an option's value the section's checks refuse (a model
            # name, a density), found once the section reads it: a usage error
            if args.section == "all":
                raise
            args.bench_parser.error(str(err))
        except FileNotFoundError as err:  # a data set or a folder that is not here
            print(f"pruninglab bench {name}: {err}", file=sys.stderr)
            return 1
        with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
            print(table.to_string())
        print()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pruninglab bench",
                                     description=__doc__.split("\n")[0])
    add_sections(parser.add_subparsers(dest="section", required=True))
    return run_sections(parser.parse_args(argv))
