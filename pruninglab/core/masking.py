"""Binary masks on the weights of ordinary ``nn.Module``s (thesis Sections 2.4 and 3.3.2).

A mask is a bool buffer ``pruning_mask`` on a ``Conv``/``Linear`` layer, shaped like its
``weight``, so it travels with ``state_dict``, ``deepcopy`` and ``.to(device)``. The weight
holds exact zeros where the mask is ``False`` and the forward pass is the plain dense one;
our optimizers (:mod:`~pruninglab.core.optim`) keep the zeros inside their step, any other
optimizer needs :class:`MaskApplier` after it.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

__all__ = ["MASK", "PRUNABLE_TYPES", "MaskApplier", "add_masks", "apply_masks", "bernoulli_ste",
           "count", "density", "functional_forward", "get_masks", "kept_counts", "kept_per_input",
           "layer_densities", "load_state_dict", "masked_layers", "prunable_layers",
           "remove_masks", "restore", "set_masks", "summary"]

MASK = "pruning_mask"
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_layers(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, nn.Module]:
    """The ``Conv``/``Linear`` layers by name, in module order, but ``exclude`` (names or
    shell patterns, ``"stages.0.*"``; one that matches nothing is an error)."""
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
    """An all-``True`` mask on every prunable layer ``exclude`` spares that has none; returns
    the masked layers."""
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
    """Install ``masks`` (layer name -> tensor shaped like its weight, nonzero = kept) and
    zero the pruned weights; all are checked first, so a bad one changes nothing."""
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
    """``apply = MaskApplier(model)`` once, then ``apply()`` after every optimizer step: one
    ``torch._foreach_mul_`` of the masked weights by their masks, as multipliers in the
    weights' dtype (a bool factor is slower; ``pruninglab bench masking``). It notices a
    mask or weight added, replaced or changed in place since the last call, and collects
    them again; layers added to the model later need a new applier. Our optimizers read
    ``weights``, ``multipliers`` (same order) and ``by_weight`` (``id(weight)`` -> multiplier).
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
    """Load ``state`` (e.g. taken at a rewind point) under the model's *current* masks: a
    rewind after pruning."""
    current = {k: v for k, v in model.state_dict().items() if k.endswith("." + MASK)}
    model.load_state_dict({**state, **current})
    apply_masks(model)


def remove_masks(model: nn.Module) -> nn.Module:
    """Fold the masks into the weights and drop the buffers, in place."""
    apply_masks(model)
    for layer in masked_layers(model).values():
        delattr(layer, MASK)
    return model


def load_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True):
    """``model.load_state_dict`` after registering the masks ``state`` carries, so that a
    pruned checkpoint loads into a fresh model (a mask on a non-prunable layer: ValueError)."""
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
    """``{name: (kept, weights)}`` for ``layers`` (default: the masked ones); an unmasked
    layer keeps all."""
    layers = masked_layers(model) if layers is None else layers
    out = {}
    for name, layer in layers.items():
        mask = getattr(layer, MASK, None)
        weights = layer.weight.numel()
        out[name] = (weights if mask is None else int(mask.sum()), weights)
    return out


def kept_per_input(mask: torch.Tensor) -> torch.Tensor:
    """Kept weights reading each input (Figure 3.11's bottom row): ``mask`` bool
    ``(out, in, ...)`` -> int64 ``(in,)``."""
    if mask.dtype != torch.bool or mask.dim() < 2:
        raise ValueError(f"mask must be a bool tensor of at least 2 dimensions, got "
                         f"{mask.dtype} of shape {tuple(mask.shape)}")
    return mask.transpose(0, 1).flatten(1).sum(1)


def layer_densities(model: nn.Module) -> dict[str, float]:
    """Each masked layer's kept / weights, by name (a GIMP record's ``layers``)."""
    return {name: kept / weights for name, (kept, weights) in kept_counts(model).items()}


def summary(model: nn.Module) -> dict[str, float | int]:
    """``{"density", "compression", "kept", "total"}`` over the masked layers, as records
    store it (compression = total / kept, ``inf`` if none kept); ValueError without masks."""
    kept, total = count(model)
    if not total:
        raise ValueError("model has no masked layers; call add_masks(model) first")
    return {"density": kept / total, "compression": total / kept if kept else math.inf,
            "kept": kept, "total": total}


# Stochastic masks, for Training Optimal Masks (Section 3.3.1)


class _BernoulliSTE(torch.autograd.Function):
    # forward: c ~ Bernoulli(sigmoid(logits)); backward: dL/dc, clipped, straight to the
    # logits (Bengio et al. 2013)

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
    """A 0/1 sample with ``P(1) = sigmoid(logits)``, shaped like them; the gradient passes
    straight through to ``logits``, clipped to ``[-clip, clip]`` (thesis: 0.1; ``None``: not)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits!r}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be positive or None, got {clip!r}")
    return _BernoulliSTE.apply(logits, clip, generator)


def functional_forward(
    model: nn.Module, x: torch.Tensor, masks: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """``model(x)`` with each named layer's weight times ``masks[name]``, the module left as it
    is; gradients reach the masks, and the weights where they require grad."""
    override = {f"{name}.weight": model.get_submodule(name).weight * mask
                for name, mask in masks.items()}
    return torch.func.functional_call(model, override, (x,), strict=False)
