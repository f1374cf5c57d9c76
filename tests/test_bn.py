"""BN settings and iterative pruning: the thesis's TensorFlow momenta reach every BN layer,
and every setting runs through GIMP."""

from __future__ import annotations

from pruninglab import bn, gimp, models, schedules
from pruninglab import data as data_module
from pruninglab.core.train import TrainConfig
from pruninglab.experiments.config import Setup

import pytest
import torch


def test_bn_settings_convert_from_tensorflow_and_reach_every_bn_layer(tmp_path):
    digits = data_module.load("digits")
    setup = Setup("mlp-bn", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    seen = []

    def spy(record):
        seen.append(record["level"])

    df = bn.compare(setup, gimp.lr_rewinding(10, 0.5), data=digits, store=tmp_path,
                    progress=False, on_level=spy)
    assert set(df["bn"]) == set(bn.THESIS_SETTINGS)
    assert len(df) == 2 * len(gimp.lr_rewinding(10, 0.5).densities())
    variant = setup.replace(bn_momentum=models.tf_to_torch_momentum(0.997), bn_eps=1e-5)
    norms = [m for m in variant.build_model(digits).modules()
             if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms and all(m.momentum == pytest.approx(0.003) and m.eps == 1e-5 for m in norms)


def test_thesis_settings_are_figure_3_12s_in_tensorflows_convention():
    assert bn.THESIS_SETTINGS == {"mu=0.99, eps=1e-3": (0.99, 1e-3),
                                  "mu=0.997, eps=1e-5": (0.997, 1e-5)}
    assert models.tf_to_torch_momentum(0.997) == pytest.approx(0.003)
