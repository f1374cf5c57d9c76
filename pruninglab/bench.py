"""Benchmarks, run from a shell: ``python -m pruninglab.bench <section> [options]``.

Sections (one function each; add a new one with :func:`section`):

* ``masking`` -- one training step of the thesis MLP (784-400-400-400-10, batch 128):
  dense vs our masked path (the plain step followed by ``torch._foreach_mul_(weights,
  masks)``, exactly what :class:`pruninglab.train.Trainer` does) vs
  ``torch.nn.utils.prune``'s forward-pre-hook path (``weight = weight_orig * weight_mask``
  recomputed in every forward pass and differentiated through).
* ``all`` -- every section with its defaults.

Each section prints the machine (CPU model, cores, threads) and the torch version, then a
table of medians over interleaved rounds and their ratio to the baseline. Timings on a
shared machine are noisy: compare ratios from one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import interop, masking, models, pruning

__all__ = ["SECTIONS", "bench_masking", "interleaved", "machine", "main", "section", "summarize"]

Step = Callable[[], None]
SECTIONS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], pd.DataFrame]]] = {}  # fmt: skip


def section(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn(args) -> DataFrame`` as the section ``name``; ``add_arguments`` adds its
    options to its sub-command."""

    def register(fn: Callable[[argparse.Namespace], pd.DataFrame]):
        SECTIONS[name] = (add_arguments, fn)
        return fn

    return register


def machine() -> str:
    """One line: CPU model, logical cores, torch threads, torch and Python versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)  # fmt: skip
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads; "
            f"torch {torch.__version__}, Python {platform.python_version()}")  # fmt: skip


def interleaved(variants: dict[str, Step], rounds: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each variant, one value per round.

    Every variant first runs ``warmup`` untimed steps. Then each round times ``steps`` steps
    of every variant in turn, the order rotating from round to round, so that slow drifts
    of a shared machine (other processes, clock changes) hit all variants alike.
    """
    for arg, value in (("rounds", rounds), ("steps", steps), ("warmup", warmup)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if arg == "warmup" else 1):
            raise ValueError(f"{arg} must be a {'non-negative' if arg == 'warmup' else 'positive'} "
                             f"integer, got {value!r}")  # fmt: skip
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = variants[name]
            tic = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - tic) / steps)
    return times


def summarize(times: dict[str, list[float]], baseline: str) -> pd.DataFrame:
    """Median and minimum milliseconds per step, and the ratio of medians to ``baseline``."""
    base = statistics.median(times[baseline])
    rows = [{"variant": name, "median_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t),
             "ratio": statistics.median(t) / base} for name, t in times.items()]  # fmt: skip
    return pd.DataFrame(rows).set_index("variant")


# --------------------------------------------------------------------------------------
# masking: dense vs masked vs torch.nn.utils.prune hooks
# --------------------------------------------------------------------------------------


def _sgd(model: nn.Module, lr: float, momentum: float, l2: float) -> torch.optim.SGD:
    """SGD as the Trainer builds it: weight decay ``2 * l2`` on Conv/Linear kernels only
    (including a torch-pruned ``weight_orig``), none on biases."""
    kernels = {id(p) for m in model.modules() if isinstance(m, masking.PRUNABLE_TYPES)
               for n, p in m.named_parameters(recurse=False) if n in ("weight", "weight_orig")}
    params = list(model.parameters())
    groups = [{"params": [p for p in params if id(p) in kernels], "weight_decay": 2 * l2},
              {"params": [p for p in params if id(p) not in kernels], "weight_decay": 0.0}]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=lr, momentum=momentum,
                           foreach=True)  # fmt: skip


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, masked: bool) -> Step:
    optimizer = _sgd(model, lr=0.01, momentum=0.9, l2=1e-4)
    layers = masking.masked_layers(model).values() if masked else []
    weights = [m.weight for m in layers]
    masks = [getattr(m, masking.MASK) for m in layers]

    def step() -> None:
        loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if weights:
            with torch.no_grad():
                torch._foreach_mul_(weights, masks)

    return step


def _masking_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="mlp", help="a pruninglab model name (default: the "
                        "thesis MLP 784-400-400-400-10)")  # fmt: skip
    parser.add_argument("--input-size", type=int, default=28, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=128, help="thesis: 128")
    parser.add_argument("--density", type=float, default=0.1, help="mask density")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")


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
        "dense": _train_step(copy.deepcopy(model), x, y, masked=False),
        "masked (ours)": _train_step(masked, x, y, masked=True),
        "torch.nn.utils.prune hooks": _train_step(hooked, x, y, masked=False),
    }
    print(f"masking: one training step of {args.model} (input {args.input_size}x"
          f"{args.input_size}), batch {args.batch_size}, density {args.density:g}, CPU; "
          f"{args.rounds} rounds x {args.steps} steps, interleaved")  # fmt: skip
    times = interleaved(variants, args.rounds, args.steps, args.warmup)
    return summarize(times, baseline="dense")


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pruninglab.bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="section", required=True)
    for name, (add_arguments, fn) in SECTIONS.items():
        add_arguments(sub.add_parser(name, help=(fn.__doc__ or "").split("\n")[0]))
    sub.add_parser("all", help="every section with its defaults")
    args = parser.parse_args(argv)

    print(machine())
    names = list(SECTIONS) if args.section == "all" else [args.section]
    for name in names:
        add_arguments, fn = SECTIONS[name]
        if args.section == "all":
            section_parser = argparse.ArgumentParser()
            add_arguments(section_parser)
            section_args = section_parser.parse_args([])
        else:
            section_args = args
        if getattr(section_args, "threads", None):
            torch.set_num_threads(section_args.threads)
        table = fn(section_args)
        with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
            print(table.to_string())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
