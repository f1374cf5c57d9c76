"""Binary masks on the weights of ordinary ``nn.Module``s (thesis Sections 2.4 and 3.3.2).

A mask is a boolean buffer named ``pruning_mask`` registered on a ``Conv``/``Linear`` layer,
with the shape of its ``weight``. The weight itself holds exact zeros where the mask is
``False``, so the forward pass is the plain dense one; the training loop's optimizers
(:mod:`pruninglab.core.optim`) apply the masks inside their step, which keeps pruned weights at
exactly 0 under SGD with momentum and weight decay and under Adam. With any other
optimizer, multiply the weights by their masks after every step: :class:`MaskApplier` (or
:func:`apply_masks`, one ``torch._foreach_mul_`` over all layers).

Because the mask is a buffer it travels with ``state_dict``, ``copy.deepcopy`` and
``.to(device)``. A state dict with masks loads into a fresh model with
:func:`load_state_dict`.

For mask *training* (Training Optimal Masks, Section 3.3.1), :func:`bernoulli_ste` draws a
stochastic mask from logits with a straight-through gradient, and :func:`functional_forward`
runs a model with its weights multiplied by any masks without touching the module.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

__all__ = [
    "MASK",
    "PRUNABLE_TYPES",
    "MaskApplier",
    "add_masks",
    "apply_masks",
    "bernoulli_ste",
    "count",
    "density",
    "functional_forward",
    "get_masks",
    "kept_counts",
    "kept_per_input",
    "layer_densities",
    "load_state_dict",
    "masked_layers",
    "prunable_layers",
    "remove_masks",
    "restore",
    "set_masks",
    "summary",
]

MASK = "pruning_mask"
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_layers(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, nn.Module]:
    """The ``Conv``/``Linear`` layers of ``model`` by qualified name, in module order.

    Args:
        exclude: layer names or shell-style patterns (``"classifier"``, ``"stages.0.*"``) to
            leave out; a pattern that matches no layer raises ``ValueError``.
    """
    layers = {n: m for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}
    patterns = [exclude] if isinstance(exclude, str) else list(exclude)
    for pattern in patterns:
        hits = fnmatch.filter(layers, pattern)
        if not hits:
            raise ValueError(f"exclude pattern {pattern!r} matches no prunable layer; "
                             f"layers: {', '.join(layers)}")
        for name in hits:
            layers.pop(name)
    return layers


def add_masks(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, nn.Module]:
    """Give every prunable layer (except ``exclude``) an all-``True`` mask unless it already
    has one; returns the masked layers by name."""
    for layer in prunable_layers(model, exclude).values():
        if getattr(layer, MASK, None) is None:
            layer.register_buffer(MASK, torch.ones_like(layer.weight, dtype=torch.bool))
    return masked_layers(model)


def masked_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Layers that carry a mask, by qualified name, in module order."""
    return {n: m for n, m in model.named_modules() if getattr(m, MASK, None) is not None}


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks by layer name (the buffers themselves, not copies)."""
    return {n: getattr(m, MASK) for n, m in masked_layers(model).items()}


def set_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Install ``masks`` (layer name -> tensor shaped like its weight; nonzero = kept) and
    zero the pruned weights. Layers not named keep their masks. Every mask is checked before
    any is installed, so a bad one leaves the model as it was."""
    layers = dict(model.named_modules())
    for name, mask in masks.items():
        layer = layers.get(name)
        if layer is None or not isinstance(layer, PRUNABLE_TYPES):
            raise ValueError(f"masks names {name!r}, which is not a prunable layer of the model")
        if not isinstance(mask, torch.Tensor) or mask.shape != layer.weight.shape:
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(
                f"mask for {name!r} has shape {got}, its weight has {tuple(layer.weight.shape)}")
    for name, mask in masks.items():
        layer = layers[name]
        mask = mask.to(device=layer.weight.device) != 0
        if getattr(layer, MASK, None) is None:
            layer.register_buffer(MASK, mask.clone())
        else:
            getattr(layer, MASK).copy_(mask)
    apply_masks(model)


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Multiply every masked weight by its mask, in place (one fused ``foreach`` call)."""
    layers = masked_layers(model).values()
    weights = [m.weight for m in layers]
    if weights:
        torch._foreach_mul_(weights, [getattr(m, MASK) for m in layers])


class MaskApplier:
    """The masks of ``model`` as multipliers, followed as they change: ``apply =
    MaskApplier(model)`` once, then ``apply()`` after every optimizer step multiplies each
    masked weight by its mask with one ``torch._foreach_mul_``. (Our optimizers,
    :mod:`pruninglab.core.optim`, use it to apply the masks inside their step instead.)

    It multiplies by *multipliers*: copies of the bool masks in each weight's dtype. On a
    CPU, float32 times bool casts inside the inner loop and costs about 2.5x as much as
    float32 times float32 (``pruninglab bench masking``). The copies cost 4 bytes
    per masked weight (float32).

    Every call first checks, for each Conv/Linear layer the model had when the applier was
    made, that its mask and its weight are the same tensors as before, unchanged in place
    and of the same dtype (a few dictionary reads per layer, no device synchronisation). A
    mask added, removed, changed in place (``prune``, ``set_masks``) or replaced
    (``.to(device)``), and a weight replaced or converted, make it collect the masked layers
    and multipliers again. Layers added to the model later are not seen: make a new one.

    Attributes:
        weights: the masked weights, in module order.
        multipliers: their masks in the weights' dtypes, in the same order.
        by_weight: ``{id(weight): multiplier}``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._prunable = [m for m in model.modules() if isinstance(m, PRUNABLE_TYPES)]
        self._seen: list[tuple] = []
        self._held: list[torch.Tensor | None] = []  # keeps the ids in _seen from being reused
        self.weights: list[torch.Tensor] = []
        self.multipliers: list[torch.Tensor] = []
        self.by_weight: dict[int, torch.Tensor] = {}
        self.update()

    def _now(self) -> list[tuple]:
        # Runs every step: plain dict reads, no nn.Module.__getattr__ (a few microseconds).
        out = []
        for layer in self._prunable:
            mask, weight = layer._buffers.get(MASK), layer._parameters.get("weight")
            out.append((id(mask), mask._version if mask is not None else 0, id(weight),
                        weight.dtype if weight is not None else None))
        return out

    def update(self) -> bool:
        """Collect the masks again if any changed since the last look; ``True`` if so."""
        now = self._now()
        if now == self._seen:
            return False
        layers = [m for m in self._prunable if m._buffers.get(MASK) is not None]
        self.weights = [layer.weight for layer in layers]
        self.multipliers = [getattr(layer, MASK).to(layer.weight.dtype) for layer in layers]
        self.by_weight = {id(w): m for w, m in zip(self.weights, self.multipliers)}
        self._held = [t for layer in self._prunable
                      for t in (layer._buffers.get(MASK), layer._parameters.get("weight"))]
        self._seen = now
        return True

    def __call__(self) -> None:
        self.update()
        if self.weights:
            with torch.no_grad():
                torch._foreach_mul_(self.weights, self.multipliers)


def restore(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` (a state dict taken earlier, e.g. at a rewind point) into ``model``
    under the model's *current* masks: the masks ``state`` carries are ignored and the
    weights come back multiplied by the current ones (a rewind after pruning)."""
    current = {k: v for k, v in model.state_dict().items() if k.endswith("." + MASK)}
    model.load_state_dict({**state, **current})
    apply_masks(model)


def remove_masks(model: nn.Module) -> nn.Module:
    """Fold the masks into the weights and drop the buffers: an ordinary model whose
    ``state_dict`` holds the zeros. Works in place and returns ``model``."""
    apply_masks(model)
    for layer in masked_layers(model).values():
        delattr(layer, MASK)
    return model


def load_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True):
    """Like ``model.load_state_dict`` but first registers the masks that ``state`` carries
    (keys ending in ``.pruning_mask``), so a pruned checkpoint loads into a fresh model.

    Raises:
        ValueError: ``state`` has a mask for a module that is not a prunable layer.
    """
    suffix = "." + MASK
    masks = {k[: -len(suffix)]: v for k, v in state.items() if k.endswith(suffix)}
    layers = dict(model.named_modules())
    for name in masks:
        layer = layers.get(name)
        if layer is None and not strict:
            continue
        if layer is None or not isinstance(layer, PRUNABLE_TYPES):
            raise ValueError(f"state has a mask for {name!r}, which is not a prunable layer "
                             "of the model")
        if getattr(layer, MASK, None) is None:
            layer.register_buffer(MASK, torch.ones_like(layer.weight, dtype=torch.bool))
    return model.load_state_dict(state, strict=strict)


def count(model: nn.Module) -> tuple[int, int]:
    """``(kept, total)`` weights over the masked layers."""
    masks = get_masks(model).values()
    kept = sum(int(m.sum()) for m in masks)
    total = sum(m.numel() for m in masks)
    return kept, total


def density(model: nn.Module) -> float:
    """Fraction of masked-layer weights that are kept (1.0 for a model without masks)."""
    kept, total = count(model)
    return kept / total if total else 1.0


def kept_counts(model: nn.Module, layers: Mapping[str, nn.Module] | None = None,
                ) -> dict[str, tuple[int, int]]:
    """``{name: (kept, weights)}`` for ``layers`` (default: the masked layers), in their
    order: a masked layer keeps its mask's ``True`` entries, an unmasked one all weights."""
    layers = masked_layers(model) if layers is None else layers
    out = {}
    for name, layer in layers.items():
        mask = getattr(layer, MASK, None)
        weights = layer.weight.numel()
        out[name] = (weights if mask is None else int(mask.sum()), weights)
    return out


def kept_per_input(mask: torch.Tensor) -> torch.Tensor:
    """How many kept weights read each input of a layer (the bottom row of thesis Figure
    3.11): ``mask`` (bool; a Linear's ``(out_features, in_features)`` or a Conv's
    ``(C_out, C_in, kH, kW)``) counted over every axis but the input one. Returns an int64
    tensor of shape ``(in_features,)`` or ``(C_in,)``."""
    if mask.dtype != torch.bool or mask.dim() < 2:
        raise ValueError(f"mask must be a bool tensor of at least 2 dimensions, got "
                         f"{mask.dtype} of shape {tuple(mask.shape)}")
    return mask.transpose(0, 1).flatten(1).sum(1)


def layer_densities(model: nn.Module) -> dict[str, float]:
    """Each masked layer's kept fraction of its weights (kept / weights), by layer name in
    module order: what a GIMP record's ``layers`` holds."""
    return {name: kept / weights for name, (kept, weights) in kept_counts(model).items()}


def summary(model: nn.Module) -> dict[str, float | int]:
    """The masked layers' totals as the flat record the experiments store:
    ``{"density", "compression", "kept", "total"}`` (compression = total / kept, ``inf``
    when nothing is kept).

    Raises:
        ValueError: ``model`` has no masks (:func:`add_masks` first).
    """
    kept, total = count(model)
    if not total:
        raise ValueError("model has no masked layers; call add_masks(model) first")
    return {"density": kept / total, "compression": total / kept if kept else math.inf,
            "kept": kept, "total": total}


# --------------------------------------------------------------------------------------
# Stochastic masks (for Training Optimal Masks)
# --------------------------------------------------------------------------------------


class _BernoulliSTE(torch.autograd.Function):
    """Forward: ``c ~ Bernoulli(sigmoid(logits))``. Backward: the gradient with respect to
    ``c``, clipped to ``[-clip, clip]``, handed to the logits unchanged (straight-through,
    Bengio et al. 2013; thesis Section 3.3.1)."""

    @staticmethod
    def forward(ctx, logits, clip, generator):
        ctx.clip = clip
        return torch.bernoulli(torch.sigmoid(logits), generator=generator)

    @staticmethod
    def backward(ctx, grad):
        if ctx.clip is not None:
            grad = grad.clamp(-ctx.clip, ctx.clip)
        return grad, None, None


def bernoulli_ste(
    logits: torch.Tensor, clip: float | None = 0.1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample a 0/1 mask with ``P(c=1) = sigmoid(logits)``; gradients pass straight through
    to ``logits``, clipped to ``[-clip, clip]`` (thesis Section 3.3.1: 0.1; ``None`` = no
    clipping). Same shape and dtype as ``logits`` (floating point)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits!r}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be positive or None, got {clip!r}")
    return _BernoulliSTE.apply(logits, clip, generator)


def functional_forward(
    model: nn.Module, x: torch.Tensor, masks: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """``model(x)`` with each named layer's weight replaced by ``weight * masks[name]``;
    gradients flow to the masks (and to the weights if they require grad). The module's
    own parameters are not modified."""
    override = {f"{name}.weight": model.get_submodule(name).weight * mask
                for name, mask in masks.items()}
    return torch.func.functional_call(model, override, (x,), strict=False)
