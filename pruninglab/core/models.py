"""The networks of the thesis, as plain ``nn.Module``s.

Every model takes ``in_channels``, ``num_classes`` and ``input_size`` so that the same
architecture runs on 8x8 digits, 28x28 MNIST and 32x32 CIFAR-10. Models with batch
normalization take ``bn_momentum`` and ``bn_eps`` in **PyTorch's** convention (the weight of
the *new* batch statistic); :func:`tf_to_torch_momentum` converts the thesis's TensorFlow
values (Section 2.3: ``x' = mu*x + (1-mu)*y``, so TF's 0.99 is PyTorch's 0.01).

Inputs are image tensors of shape ``(N, C, H, W)``; outputs are logits ``(N, num_classes)``.

``create(name, ...)`` builds one by name, ``names()`` lists the names. For CIFAR-10 the
parameter counts equal Table 1.1 of the thesis (see ``TABLE_1_1``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn

from . import checks

__all__ = [
    "BN_SETTINGS",
    "TABLE_1_1",
    "table_1_1",
    "create",
    "names",
    "is_known",
    "family",
    "INITS",
    "init_layer",
    "initialize",
    "count_parameters",
    "tf_to_torch_momentum",
    "torch_to_tf_momentum",
    "MLP",
    "ConvNet",
    "PreActResNet",
    "VGG",
]

# Table 1.1 of the thesis: trainable parameters and dense CIFAR-10 test accuracy (%).
# create() reproduces every count except WRN-16-4's: ours has 2,748,890 (3,680 fewer).
TABLE_1_1: dict[str, tuple[int, float]] = {
    "resnet20": (272_282, 92.5),
    "resnet56": (855_578, 93.7),
    "resnet110": (1_730_522, 94.3),
    "wrn-16-4": (2_752_570, 95.0),
    "wrn-16-8": (10_961_370, 95.7),
    "wrn-28-10": (36_479_194, 96.2),
    "vgg13": (9_413_066, 94.4),
    "vgg16": (14_724_042, 94.2),
    "vgg19": (20_035_018, 94.0),
}


def tf_to_torch_momentum(tf_momentum: float) -> float:
    """TensorFlow's BN momentum (weight of the *old* running value) -> PyTorch's (weight of
    the *new* batch statistic). ``tf_to_torch_momentum(0.99) == 0.01`` (thesis Section 2.3)."""
    if not 0.0 <= tf_momentum <= 1.0:
        raise ValueError(f"tf_momentum must lie in [0, 1], got {tf_momentum!r}")
    return round(1.0 - tf_momentum, 12)


def torch_to_tf_momentum(torch_momentum: float) -> float:
    """PyTorch's BN momentum -> TensorFlow's; the inverse of :func:`tf_to_torch_momentum`."""
    if not 0.0 <= torch_momentum <= 1.0:
        raise ValueError(f"torch_momentum must lie in [0, 1], got {torch_momentum!r}")
    return round(1.0 - torch_momentum, 12)


# Thesis Section 3.4, converted to PyTorch's convention: ResNets mu=0.997 eps=1e-5,
# WRN and VGG mu=0.99 eps=1e-3 (TensorFlow's momentum).
BN_SETTINGS: dict[str, dict[str, float]] = {
    "resnet": {"bn_momentum": tf_to_torch_momentum(0.997), "bn_eps": 1e-5},
    "wrn": {"bn_momentum": tf_to_torch_momentum(0.99), "bn_eps": 1e-3},
    "vgg": {"bn_momentum": tf_to_torch_momentum(0.99), "bn_eps": 1e-3},
}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (weights, biases, BN scales and shifts), as in Table 1.1."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def table_1_1(names: list[str] | None = None) -> pd.DataFrame:
    """Table 1.1 of the thesis beside our CIFAR-10 models (3 input channels, 10 classes,
    32x32). The models are built on PyTorch's ``meta`` device: shapes only, no memory, no
    initialization, so even WRN-28-10 (36M parameters) costs milliseconds.

    Args:
        names: rows to build (default: every row of :data:`TABLE_1_1`).

    Returns:
        Indexed by ``model``: ``parameters`` (ours, trainable, as Table 1.1 counts them),
        ``thesis_parameters``, ``difference`` (ours - thesis), ``thesis_accuracy`` (dense
        CIFAR-10 test accuracy, %) and ``kernel_weights`` (ours: the Conv/Linear kernel
        entries, the weights pruning acts on; the x axis of Figure 1.1).
    """
    names = list(TABLE_1_1) if names is None else list(names)
    rows = []
    for name in names:
        if name not in TABLE_1_1:
            raise ValueError(f"{name!r} is not in Table 1.1; its rows: {', '.join(TABLE_1_1)}")
        with torch.device("meta"):
            model = create(name, in_channels=3, num_classes=10, input_size=32)
        thesis_count, accuracy = TABLE_1_1[name]
        count = count_parameters(model)
        kernels = sum(m.weight.numel() for m in model.modules()
                      if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)))
        rows.append({"model": name, "parameters": count, "thesis_parameters": thesis_count,
                     "difference": count - thesis_count, "thesis_accuracy": accuracy,
                     "kernel_weights": kernels})
    return pd.DataFrame(rows).set_index("model")


# --------------------------------------------------------------------------------------
# Fully connected networks
# --------------------------------------------------------------------------------------


class MLP(nn.Module):
    """A fully connected ReLU network on flattened images.

    ``MLP(784, (400, 400, 400), 10)`` is the thesis's network of Section 3.3.2 (637,600
    kernel weights); ``MLP(784, (300, 100), 10)`` is LeNet-300-100.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int,
                 bn: dict | None = None) -> None:
        super().__init__()
        widths = (in_features, *hidden)
        pairs = list(zip(widths[:-1], widths[1:]))
        self.hidden = nn.ModuleList(nn.Linear(a, b, bias=bn is None) for a, b in pairs)
        # With ``bn`` (``{"bn_momentum", "bn_eps"}``): Linear (no bias) -> BN -> ReLU, the
        # fully connected counterpart of the BN-VGG blocks, for cheap BN experiments.
        self.norms = None
        if bn is not None:
            self.norms = nn.ModuleList(
                nn.BatchNorm1d(b, eps=bn["bn_eps"], momentum=bn["bn_momentum"]) for _, b in pairs)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = torch.relu(x)
        return self.classifier(x)


# --------------------------------------------------------------------------------------
# A small convolutional network for CPU-sized experiments
# --------------------------------------------------------------------------------------


class ConvNet(nn.Module):
    """A small VGG-like net: ``[conv-BN-ReLU] x2, maxpool`` per stage, global average
    pooling, one linear layer. ``widths=(16, 32)`` gives about 24k parameters."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, ...] = (16, 32),
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width, eps=bn_eps, momentum=bn_momentum),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


# --------------------------------------------------------------------------------------
# Pre-activation ResNets and Wide ResNets (He et al. 2016b; Zagoruyko & Komodakis 2016)
# --------------------------------------------------------------------------------------


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity shortcut, or a 1x1 convolution
    (no bias, no BN) when the shape changes. This variant reproduces Table 1.1's counts."""

    def __init__(self, c_in: int, c_out: int, stride: int, bn_momentum: float, bn_eps: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, eps=bn_eps, momentum=bn_momentum)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class PreActResNet(nn.Module):
    """A CIFAR-style pre-activation residual network: a 3x3 stem with 16 channels, three
    stages of ``blocks`` blocks with ``widths`` channels (strides 1, 2, 2), BN-ReLU, global
    average pooling and one linear layer.

    ResNet-(6n+2) has ``blocks=n, widths=(16, 32, 64)``; WRN-d-k has ``blocks=(d-4)/6,
    widths=(16k, 32k, 64k)``.
    """

    def __init__(
        self,
        blocks: int,
        widths: tuple[int, int, int],
        in_channels: int,
        num_classes: int,
        bn_momentum: float,
        bn_eps: float,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        channels = 16
        for i, width in enumerate(widths):
            stage = []
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(PreActBlock(channels, width, stride, bn_momentum, bn_eps))
                channels = width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        x = torch.relu(self.bn(x)).mean(dim=(2, 3))
        return self.classifier(x)


# --------------------------------------------------------------------------------------
# VGG with batch normalization, global pooling and one linear layer (thesis Section 3.4)
# --------------------------------------------------------------------------------------

VGG_CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512),
}


class VGG(nn.Module):
    """VGG-A/B/D/E with BN after every (bias-free) convolution, global average pooling and a
    single linear classifier. Max-pooling uses ``ceil_mode`` so any input size >= 1 works.

    Four max-pools, not torchvision's five: the last block's output (2x2 on a 32x32
    CIFAR image) goes straight to the average pool, as in open_lth's CIFAR VGG. Pools have
    no parameters, so the counts match the thesis's Table 1.1 (:data:`TABLE_1_1`)."""

    def __init__(
        self,
        depth: int,
        in_channels: int,
        num_classes: int,
        bn_momentum: float,
        bn_eps: float,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in VGG_CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            layers += [
                nn.Conv2d(channels, int(item), 3, padding=1, bias=False),
                nn.BatchNorm2d(int(item), eps=bn_eps, momentum=bn_momentum),
                nn.ReLU(inplace=True),
            ]
            channels = int(item)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------

_FIXED_NAMES = (
    ["mlp", "mlp-bn", "lenet300", "convnet"]
    + [f"resnet{d}" for d in (20, 32, 44, 56, 110)]
    + ["wrn-16-4", "wrn-16-8", "wrn-28-10"]
    + [f"vgg{d}" for d in (11, 13, 16, 19)]
)


def names() -> list[str]:
    """The model names :func:`create` knows. Besides these, any ``wrn-<depth>-<width>`` with
    ``depth = 6n + 4`` and any ``resnet<depth>`` with ``depth = 6n + 2`` work."""
    return list(_FIXED_NAMES)


def is_known(name: str) -> bool:
    """Whether :func:`create` can build ``name``."""
    return _builder(name.lower() if isinstance(name, str) else name) is not None


def family(name: str) -> str:
    """``"resnet"``, ``"wrn"``, ``"vgg"`` or ``"other"`` for a model name."""
    for family in ("resnet", "wrn", "vgg"):
        if name.startswith(family):
            return family
    return "other"


INITS = ("torch", "keras")


@torch.no_grad()
def init_layer(layer: nn.Module, init: str = "torch") -> None:
    """Draw a Conv/Linear layer's weight and bias afresh (from the global RNG).

    Args:
        init: ``"torch"`` -- the layer's own ``reset_parameters`` (PyTorch's default:
            Kaiming-uniform with ``a=sqrt(5)``, std ``1/sqrt(3 fan_in)``); ``"keras"`` --
            Glorot-uniform kernel (std ``sqrt(2/(fan_in + fan_out))``) and zero bias, the
            default of Keras's ``Dense`` and ``Conv2D``: what a TensorFlow implementation
            such as the thesis's gets unless it says otherwise (Section 3.4 does not).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "torch":
        layer.reset_parameters()
        return
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        layer.bias.zero_()


def initialize(model: nn.Module, init: str = "torch") -> nn.Module:
    """Re-draw every Conv/Linear layer of ``model`` with :func:`init_layer` and remember the
    scheme as ``model.pruninglab_init`` (so that reinitialization experiments draw from the
    model's own initializer). Returns ``model``."""
    for layer in model.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            init_layer(layer, init)
    model.pruninglab_init = init
    return model


def create(
    name: str,
    in_channels: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
    bn_momentum: float | None = None,
    bn_eps: float | None = None,
    init: str = "torch",
) -> nn.Module:
    """Build a freshly initialized model by name.

    Args:
        name: one of :func:`names`, or ``resnet<6n+2>`` / ``wrn-<6n+4>-<k>``.
        in_channels: channels of the input images (1 for MNIST, 3 for CIFAR-10).
        num_classes: number of output logits.
        input_size: height (= width) of the input images in pixels; only the MLPs need it.
        bn_momentum: BN momentum in PyTorch's convention; ``None`` takes the thesis's value
            for the family (``BN_SETTINGS``) or PyTorch's default 0.1 for ``convnet``.
        bn_eps: BN epsilon; ``None`` as for ``bn_momentum``.
        init: ``"torch"`` (PyTorch's layer defaults) or ``"keras"`` (Glorot-uniform, zero
            biases); see :func:`init_layer`.

    Returns:
        An ``nn.Module`` mapping ``(N, in_channels, input_size, input_size)`` to
        ``(N, num_classes)`` logits.
    """
    for arg, value in (("in_channels", in_channels), ("num_classes", num_classes),
                       ("input_size", input_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if bn_momentum is not None and not 0.0 <= bn_momentum <= 1.0:
        raise ValueError(
            f"bn_momentum must lie in [0, 1] (PyTorch convention), got {bn_momentum!r}")
    if bn_eps is not None and not bn_eps > 0.0:
        raise ValueError(f"bn_eps must be positive, got {bn_eps!r}")

    key = name.lower() if isinstance(name, str) else name
    defaults = BN_SETTINGS.get(family(str(key)), {"bn_momentum": 0.1, "bn_eps": 1e-5})
    bn = {
        "bn_momentum": defaults["bn_momentum"] if bn_momentum is None else bn_momentum,
        "bn_eps": defaults["bn_eps"] if bn_eps is None else bn_eps,
    }
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    builder = _builder(key)
    if builder is None:
        raise ValueError(
            f"unknown model name {checks.shown(name)}; known names: {', '.join(names())} "
            "(or resnet<6n+2>, wrn-<6n+4>-<k>)"
        )
    model = builder(in_channels, num_classes, input_size, bn)
    if init == "torch":  # the layers initialized themselves this way on construction
        model.pruninglab_init = init
        return model
    return initialize(model, init)


Builder = Callable[[int, int, int, dict], nn.Module]


def _builder(key: object) -> Builder | None:
    if key == "mlp":
        return lambda c, n, s, bn: MLP(c * s * s, (400, 400, 400), n)
    if key == "lenet300":
        return lambda c, n, s, bn: MLP(c * s * s, (300, 100), n)
    if key == "mlp-bn":
        return lambda c, n, s, bn: MLP(c * s * s, (400, 400, 400), n, bn=bn)
    if key == "convnet":
        return lambda c, n, s, bn: ConvNet(c, n, **bn)
    if not isinstance(key, str):
        return None
    if m := re.fullmatch(r"resnet(\d+)", key):
        depth = int(m.group(1))
        if depth < 8 or (depth - 2) % 6:
            return None
        return lambda c, n, s, bn: PreActResNet((depth - 2) // 6, (16, 32, 64), c, n, **bn)
    if m := re.fullmatch(r"wrn-(\d+)-(\d+)", key):
        depth, k = int(m.group(1)), int(m.group(2))
        if depth < 10 or (depth - 4) % 6 or k < 1:
            return None
        widths = (16 * k, 32 * k, 64 * k)
        return lambda c, n, s, bn: PreActResNet((depth - 4) // 6, widths, c, n, **bn)
    if m := re.fullmatch(r"vgg(\d+)", key):
        depth = int(m.group(1))
        if depth not in VGG_CONFIGS:
            return None
        return lambda c, n, s, bn: VGG(depth, c, n, **bn)
    return None
