"""Models: Table 1.1's parameter counts, shapes for every name and input, BN settings, and
argument checking."""

from __future__ import annotations

from pruninglab import models

import math

import pytest
import torch
from torch import nn

# Table 1.1 of the thesis: trainable parameters for CIFAR-10 (3 channels, 10 classes, 32x32).
THESIS_COUNTS = {
    "resnet20": 272_282,
    "resnet56": 855_578,
    "resnet110": 1_730_522,
    "wrn-16-8": 10_961_370,
    "wrn-28-10": 36_479_194,
    "vgg13": 9_413_066,
    "vgg16": 14_724_042,
    "vgg19": 20_035_018,
}

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def meta_model(name: str, **kwargs) -> nn.Module:
    """Build on the meta device: shapes and counts without allocating or initializing."""
    with torch.device("meta"):
        return models.create(name, **kwargs)


@pytest.mark.parametrize("name, expected", THESIS_COUNTS.items())
def test_cifar10_parameter_counts_equal_table_1_1(name, expected):
    model = meta_model(name, in_channels=3, num_classes=10, input_size=32)
    assert models.count_parameters(model) == expected
    assert models.TABLE_1_1[name][0] == expected


def test_count_parameters_counts_only_trainable_tensors():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))  # 6 + 2 + 2 + 2
    assert models.count_parameters(model) == 12
    model[0].weight.requires_grad_(False)
    assert models.count_parameters(model) == 6


@pytest.mark.parametrize("name", models.names())
def test_every_model_maps_each_input_size_to_logits(name):
    # (channels, size): MNIST, CIFAR-10, the 8x8 digits, and odd channel/class numbers.
    for channels, size, classes in ((1, 28, 10), (3, 32, 10), (1, 8, 10), (2, 8, 7)):
        model = meta_model(name, in_channels=channels, num_classes=classes, input_size=size)
        with torch.device("meta"):
            out = model(torch.empty(2, channels, size, size))
        assert out.shape == (2, classes), (channels, size)


@pytest.mark.parametrize("name", ["mlp", "lenet300", "convnet", "resnet20", "wrn-16-4", "vgg11"])
def test_small_models_give_finite_logits_on_cpu(name):
    torch.manual_seed(0)
    for channels, size in ((1, 28), (3, 32), (1, 8), (3, 8)):
        if size > 8 and name not in ("mlp", "lenet300", "convnet"):
            continue  # the meta-device test covers these sizes; keep the CPU work small
        model = models.create(name, in_channels=channels, num_classes=5, input_size=size)
        with torch.no_grad():
            out = model(torch.randn(2, channels, size, size))
        assert out.shape == (2, 5)
        assert torch.isfinite(out).all()


def test_thesis_mlp_has_637600_kernel_weights():
    model = models.create("mlp", in_channels=1, num_classes=10, input_size=28)
    kernels = [m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)]
    assert sum(kernels) == 784 * 400 + 400 * 400 + 400 * 400 + 400 * 10 == 637_600


@pytest.mark.parametrize("name", [n for n in models.names() if n not in ("mlp", "lenet300")])
def test_bn_momentum_and_eps_reach_every_bn_layer(name):
    model = meta_model(name, bn_momentum=0.05, bn_eps=1e-4)
    bns = [m for m in model.modules() if isinstance(m, BN_TYPES)]
    assert bns, "a model with batch normalization should have BN layers"
    assert all(bn.momentum == 0.05 and bn.eps == 1e-4 for bn in bns)


@pytest.mark.parametrize(
    "name, momentum, eps",
    [("resnet20", 0.003, 1e-5), ("wrn-16-4", 0.01, 1e-3), ("vgg11", 0.01, 1e-3),
     ("convnet", 0.1, 1e-5)],
)
def test_bn_defaults_are_the_thesis_values_in_pytorch_convention(name, momentum, eps):
    bns = [m for m in meta_model(name).modules() if isinstance(m, BN_TYPES)]
    assert bns
    for bn in bns:
        assert bn.momentum == pytest.approx(momentum)
        assert bn.eps == eps


def test_tf_momentum_0_99_is_torch_momentum_0_01():
    assert models.tf_to_torch_momentum(0.99) == pytest.approx(0.01)
    assert models.torch_to_tf_momentum(0.01) == pytest.approx(0.99)
    assert models.BN_SETTINGS["resnet"]["bn_momentum"] == pytest.approx(0.003)


@pytest.mark.parametrize("value", [0.0, 0.003, 0.1, 0.5, 0.99, 0.997, 1.0, 0.123456789])
def test_momentum_conversions_round_trip(value):
    assert models.torch_to_tf_momentum(models.tf_to_torch_momentum(value)) == pytest.approx(
        value, abs=1e-11)
    assert models.tf_to_torch_momentum(models.torch_to_tf_momentum(value)) == pytest.approx(
        value, abs=1e-11)


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_momentum_conversions_reject_values_outside_unit_interval(value):
    with pytest.raises(ValueError, match="tf_momentum"):
        models.tf_to_torch_momentum(value)
    with pytest.raises(ValueError, match="torch_momentum"):
        models.torch_to_tf_momentum(value)


@pytest.mark.parametrize("name", ["resnet21", "wrn-17-2", "vgg12", "alexnet", "wrn-16-0"])
def test_unknown_model_name_lists_the_known_names(name):
    assert not models.is_known(name)
    with pytest.raises(ValueError, match="unknown model name") as info:
        models.create(name)
    for known in models.names():
        assert known in str(info.value)


def test_names_are_known_and_pattern_names_work():
    assert all(models.is_known(n) for n in models.names())
    assert models.is_known("ResNet20")
    assert models.count_parameters(meta_model("resnet8")) > 0
    assert models.count_parameters(meta_model("wrn-10-2")) > 0


@pytest.mark.parametrize(
    "kwargs, arg",
    [({"in_channels": 0}, "in_channels"), ({"in_channels": 1.5}, "in_channels"),
     ({"in_channels": True}, "in_channels"), ({"num_classes": 0}, "num_classes"),
     ({"num_classes": -3}, "num_classes"), ({"input_size": 0}, "input_size"),
     ({"bn_momentum": 1.5}, "bn_momentum"), ({"bn_momentum": -0.1}, "bn_momentum"),
     ({"bn_eps": 0.0}, "bn_eps"), ({"bn_eps": -1e-5}, "bn_eps")],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        models.create("resnet20", **kwargs)


def test_keras_initialization_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    model = models.create("mlp", in_channels=1, input_size=28, init="keras")
    layer = model.hidden[0]
    fan_in, fan_out = layer.weight.shape[1], layer.weight.shape[0]
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert layer.weight.abs().max() <= bound
    assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert torch.all(layer.bias == 0)
    assert model.pruninglab_init == "keras"
    assert models.create("lenet300", in_channels=1, input_size=8).pruninglab_init == "torch"
    with pytest.raises(ValueError, match="init"):
        models.create("mlp", init="he")


def test_table_1_1_reproduces_the_thesis_counts_except_wrn_16_4():
    table = models.table_1_1()
    assert list(table.index) == list(models.TABLE_1_1)
    mismatched = table[table["difference"] != 0]
    assert list(mismatched.index) == ["wrn-16-4"]
    assert table.loc["wrn-16-4", "parameters"] == 2_748_890  # thesis: 2,752,570
    assert table.loc["vgg19", "thesis_accuracy"] == 94.0
    # conv1 3*16*9 + stage 1: 6 convs 16*16*9 + stage 2: 16*32*9 + 5 convs 32*32*9 + a 1x1
    # shortcut 16*32 + stage 3: 32*64*9 + 5 * 64*64*9 + 32*64 + the classifier 64*10
    by_hand = (432 + 6 * 2304 + (4608 + 5 * 9216 + 512) + (18432 + 5 * 36864 + 2048) + 640)
    assert table.loc["resnet20", "kernel_weights"] == by_hand == 270_896
    assert (table["kernel_weights"] < table["parameters"]).all()


def test_table_1_1_rejects_a_model_not_in_the_table():
    with pytest.raises(ValueError, match="not in Table 1.1"):
        models.table_1_1(["mlp"])
