"""Pruning at initialization: SNIP, random and magnitude masks before any training, then T
steps, through the run store."""

from __future__ import annotations

from pruninglab import at_init, runs, schedules
from pruninglab import data as data_module
from pruninglab.core.train import TrainConfig
from pruninglab.experiments.config import Setup

import pytest


def test_snip_at_initialization_prunes_to_the_density_and_trains(tmp_path):
    digits = data_module.load("digits")
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(100), batch_size=32))
    df = at_init.run(setup, 0.1, "snip", data=digits, store=tmp_path, progress=False)
    assert df["density"].iloc[0] == pytest.approx(0.1, abs=1e-4)
    assert df["test_accuracy"].iloc[0] > 0.5  # well above chance (0.1)
    with pytest.raises(ValueError, match="criterion"):
        at_init.run(setup, 0.1, "oracle", data=digits, store=tmp_path)


def test_bad_arguments_raise_value_errors_naming_them_before_any_work(tmp_path):
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    with pytest.raises(ValueError, match="n_batches"):
        at_init.run(setup, 0.1, "snip", n_batches=0, store=tmp_path)
    with pytest.raises(ValueError, match="density"):
        at_init.run(setup, 1.5, "snip", store=tmp_path)
    assert not any(tmp_path.iterdir())


# magnitude at init
@pytest.mark.filterwarnings("ignore::pruninglab.core.pruning.EmptyLayerWarning")
@pytest.mark.parametrize("criterion", at_init.CRITERIA)
def test_every_criterion_prunes_to_the_density_and_comes_back_from_the_store(criterion, tmp_path):
    digits = data_module.load("digits")
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    first = at_init.run(setup, 0.2, criterion, data=digits, store=tmp_path, progress=False)
    assert first["density"].iloc[0] == pytest.approx(0.2, abs=1e-4)
    assert first["method"].iloc[0] == f"{criterion} at init"
    again = at_init.run(setup, 0.2, criterion, data=digits, store=tmp_path, progress=False)
    assert again.equals(first)
    run = next(runs.iter_runs(tmp_path, "at_init"))
    assert len(run.records()) == 1
