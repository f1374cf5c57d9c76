"""SGD with momentum and Adam for masked training: the masks are applied inside the step.

Why not ``torch.optim``? Making one imports ``torch._dynamo``, about a second of start-up
in every notebook kernel for a compiler the notebooks do not use; and a masked step would
need one more pass over the weights afterwards, where our SGD folds the mask into the
momentum update it makes anyway (docs/measurements.md, "Optimizers";
``pruninglab bench masking``).

The arithmetic is ``torch.optim``'s foreach arithmetic, op for op, so the kept weights
follow exactly the values ``torch.optim.SGD(foreach=True)`` / ``torch.optim.Adam(foreach=
True)`` would give them (``tests/test_optim.py`` checks it bit for bit). With gradient
``g``, weight ``w``, learning rate ``lr``, weight decay ``wd`` (L2 through the gradient, as
in ``torch.optim``) and ``mask`` (1 kept, 0 pruned; all ones for a parameter without one):

SGD with momentum ``mu``::

    buf <- mu * buf + mask * (g + wd * w)      # the first step: buf <- mask * (g + wd * w)
    w   <- w - lr * buf

Adam (``beta1``, ``beta2``, ``eps``, step ``t``)::

    d   <- mask * (g + wd * w)
    m   <- beta1 * m + (1 - beta1) * d
    v   <- beta2 * v + (1 - beta2) * d**2
    w   <- w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

Where the mask is 0 the weight and the optimizer's buffers are 0, and the update keeps them
0 exactly. When a mask changes (pruning between steps), the next step first multiplies the
weights and the buffers by the new masks, so they start at 0 there too; a weight written
between steps (``load_state_dict``, ``copy_``) is multiplied by its mask again at the next
step. A weight that a changed mask lets back in starts with zero momentum (SGD) or zero
moments at Adam's current step count, so without bias correction: make a fresh optimizer
after regrowing weights, as :class:`pruninglab.core.train.Trainer` does at every GIMP level.

The masks are found on ``model`` (the ``pruning_mask`` buffers of :mod:`pruninglab.core.masking`)
and followed as they change. An optimizer without ``model`` is plain SGD or Adam. Only the
settings named in each class are known; ``torch.optim``'s others (``nesterov``,
``dampening``, ``amsgrad``, ...) are refused, not ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from . import checks, masking

__all__ = ["SGD", "Adam"]


def _groups(params: Iterable, defaults: dict, check: Callable[[dict, str], None]) -> list[dict]:
    """``torch.optim``-style parameter groups: dicts with ``"params"`` and the settings, a
    group's own settings overriding ``defaults``; ``check(settings, prefix)`` validates a
    group's settings, naming them with ``prefix``.

    Raises:
        ValueError: no parameters, a single tensor instead of an iterable of them, a mix of
            tensors and groups, a setting this optimizer does not know, something that is
            not a leaf tensor, or a tensor given twice.
    """
    if isinstance(params, torch.Tensor):
        raise ValueError("params must be an iterable of tensors or of parameter groups, got "
                         "a single tensor; pass [tensor]")
    params = list(params)
    if not params:
        raise ValueError("params is empty: the optimizer got no parameters")
    dicts = [isinstance(p, dict) for p in params]
    if any(dicts) and not all(dicts):
        raise ValueError("params mixes tensors and parameter groups (dicts); pass one kind")
    groups, seen = [], set()
    for i, group in enumerate(params if all(dicts) else [{"params": params}]):
        where = f"param_groups[{i}]"
        unknown = sorted(set(group) - {"params", *defaults})
        if unknown:
            raise ValueError(f"{where} has settings {unknown} that this optimizer does not "
                             f"know; known: {sorted(defaults)}")
        tensors = group.get("params", [])
        tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        for j, p in enumerate(tensors):
            if not isinstance(p, torch.Tensor):
                raise ValueError(f"{where}['params'][{j}] must be a tensor, got "
                                 f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{where}['params'][{j}] is not a leaf tensor (it is computed "
                                 "from others), so it gets no gradient of its own")
            if id(p) in seen:
                raise ValueError(f"{where}['params'][{j}] is given twice; it would be updated "
                                 "twice per step")
            seen.add(id(p))
        merged = {**defaults, **group, "params": tensors}
        if len(group) > 1:  # settings of its own
            check(merged, f"{where}.")
        groups.append(merged)
    return groups


class _MaskedOptimizer:
    """What SGD and Adam share: parameter groups, per-parameter state, the model's masks."""

    def __init__(self, params: Iterable, defaults: dict, model: nn.Module | None) -> None:
        self._check(defaults, "")
        self.param_groups = _groups(params, defaults, self._check)
        self.state: dict[torch.Tensor, dict] = {}
        self.masks = masking.MaskApplier(model) if model is not None else None
        self._masks_applied = False  # the first step multiplies the weights by their masks
        self._versions: list[int] = []  # the masked weights' versions after our last step

    @staticmethod
    def _check(settings: dict, prefix: str) -> None:
        """Raise ``ValueError`` naming ``prefix + key`` for a setting out of its range."""
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def param_state(self, p: torch.Tensor) -> dict:
        """A copy of ``p``'s state (momentum buffer; Adam's moments and step count); before
        ``p``'s first step, the state that acts like none: zeros and step 0."""
        return {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                for k, v in self._state_or_fresh(p).items()}

    def load_param_state(self, p: torch.Tensor, state: dict) -> None:
        """Give ``p`` a copy of ``state`` (from :meth:`param_state`, maybe of another
        optimizer of the same kind). The next step multiplies it by the current mask."""
        fresh = self._state_or_fresh(p)
        if set(state) != set(fresh):
            raise ValueError(f"state has keys {sorted(state)}, this optimizer keeps "
                             f"{sorted(fresh)} for each parameter")
        self.state[p] = {k: v.detach().to(p.device, copy=True) if isinstance(v, torch.Tensor)
                         else v for k, v in state.items()}
        self._masks_applied = False  # the next step zeros the buffers where pruned

    def _state_or_fresh(self, p: torch.Tensor) -> dict:
        """``p``'s state, or :meth:`_fresh_state` before its first step (not copied)."""
        group = next((g for g in self.param_groups if any(q is p for q in g["params"])), None)
        if group is None:
            raise ValueError("the tensor is not one of this optimizer's parameters")
        return self.state.get(p) or self._fresh_state(p, group)

    @staticmethod
    def _fresh_state(p: torch.Tensor, group: dict) -> dict:
        """The state of a parameter that has not stepped yet, written out."""
        raise NotImplementedError

    def _split(self, group: dict) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                           list[torch.Tensor]]:
        """The group's parameters with gradients, as ``(masked, multipliers, unmasked)``."""
        multipliers = self.masks.by_weight if self.masks is not None else {}
        masked, factors, unmasked = [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            factor = multipliers.get(id(p))
            if factor is None:
                unmasked.append(p)
            else:
                masked.append(p)
                factors.append(factor)
        return masked, factors, unmasked

    def _follow_masks(self, buffers: tuple[str, ...]) -> None:
        """Before a step: re-read the masks; at the first step and after a mask changed,
        zero the weights and ``buffers`` where pruned; after a weight was written since our
        last step, zero its pruned entries again."""
        if self.masks is None:
            return
        if self.masks.update() or not self._masks_applied:
            self.masks()
            self._masks_applied = True
            for p, factor in zip(self.masks.weights, self.masks.multipliers):
                state = self.state.get(p, {})
                for name in buffers:
                    if state.get(name) is not None:
                        state[name].mul_(factor)
        elif [w._version for w in self.masks.weights] != self._versions:
            self.masks()

    def _stepped(self) -> None:
        """After a step: remember the masked weights' versions (see ``_follow_masks``)."""
        if self.masks is not None:
            self._versions = [w._version for w in self.masks.weights]


class SGD(_MaskedOptimizer):
    """Stochastic gradient descent with momentum and weight decay (see the module's text).

    Args:
        params: tensors, or ``torch.optim``-style groups (dicts with ``"params"`` and any
            of ``lr``, ``momentum``, ``weight_decay``).
        lr: learning rate (set ``param_groups[i]["lr"]`` to change it between steps).
        momentum: ``mu`` in [0, 1).
        weight_decay: ``wd`` >= 0, added to the gradient as ``wd * w``.
        model: whose masks to apply in the step (``None``: no masks).
    """

    def __init__(self, params: Iterable, *, lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, model: nn.Module | None = None) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "weight_decay": weight_decay}, model)

    @staticmethod
    def _check(settings: dict, prefix: str) -> None:
        checks.real(settings["lr"], f"{prefix}lr", 0.0)
        checks.real(settings["momentum"], f"{prefix}momentum", 0.0, 1.0, high_open=True)
        checks.real(settings["weight_decay"], f"{prefix}weight_decay", 0.0)

    @staticmethod
    def _fresh_state(p: torch.Tensor, group: dict) -> dict:
        # a zero buffer steps exactly as none: mu * 0 + g == g
        return {"momentum_buffer": torch.zeros_like(p)} if group["momentum"] else {}

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self._follow_masks(("momentum_buffer",))
        for group in self.param_groups:
            masked, factors, unmasked = self._split(group)
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for params, mask in ((masked, factors), (unmasked, None)):
                if not params:
                    continue
                grads = [p.grad for p in params]
                if wd != 0:
                    grads = torch._foreach_add(grads, params, alpha=wd)
                if mu == 0:
                    if mask is not None:
                        grads = torch._foreach_mul(grads, mask)
                    torch._foreach_add_(params, grads, alpha=-lr)
                    continue
                buffers = [self.state.setdefault(p, {}).get("momentum_buffer") for p in params]
                if all(b is not None for b in buffers):
                    torch._foreach_mul_(buffers, mu)
                    if mask is None:
                        torch._foreach_add_(buffers, grads)
                    else:  # the mask rides along in the pass that adds the gradient
                        torch._foreach_addcmul_(buffers, grads, mask)
                else:  # a first step: a new buffer is the (masked) gradient
                    for i, p in enumerate(params):
                        g = grads[i] if mask is None else grads[i] * mask[i]
                        if buffers[i] is None:
                            buffers[i] = self.state[p]["momentum_buffer"] = (
                                g.clone() if mask is None else g)
                        else:
                            buffers[i].mul_(mu).add_(g)
                torch._foreach_add_(params, buffers, alpha=-lr)
        self._stepped()


class Adam(_MaskedOptimizer):
    """Adam (Kingma & Ba, 2015) with L2 weight decay through the gradient, as
    ``torch.optim.Adam`` (see the module's text).

    Args:
        params: tensors, or groups with any of ``lr``, ``betas``, ``eps``, ``weight_decay``.
        lr: the step size (0.001 as in ``torch.optim``).
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: added to the denominator, > 0 (where a mask is 0 the update is 0 / eps).
        weight_decay: ``wd`` >= 0, added to the gradient as ``wd * w``.
        model: whose masks to apply in the step (``None``: no masks).
    """

    def __init__(self, params: Iterable, *, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, model: nn.Module | None = None) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay}, model)

    @staticmethod
    def _check(settings: dict, prefix: str) -> None:
        checks.real(settings["lr"], f"{prefix}lr", 0.0)
        betas = settings["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"{prefix}betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            checks.real(beta, f"{prefix}betas[{i}]", 0.0, 1.0, high_open=True)
        checks.real(settings["eps"], f"{prefix}eps", 0.0, low_open=True)
        checks.real(settings["weight_decay"], f"{prefix}weight_decay", 0.0)

    @staticmethod
    def _fresh_state(p: torch.Tensor, group: dict) -> dict:
        return {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self._follow_masks(("exp_avg", "exp_avg_sq"))
        for group in self.param_groups:
            masked, factors, unmasked = self._split(group)
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for params, mask in ((masked, factors), (unmasked, None)):
                if not params:
                    continue
                grads = [p.grad for p in params]
                if group["weight_decay"] != 0:
                    grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
                if mask is not None:
                    grads = torch._foreach_mul(grads, mask)
                states = []
                for p in params:
                    state = self.state.setdefault(p, {})
                    if not state:
                        state.update(step=0, exp_avg=torch.zeros_like(p),
                                     exp_avg_sq=torch.zeros_like(p))
                    state["step"] += 1
                    states.append(state)
                exp_avgs = [s["exp_avg"] for s in states]
                exp_avg_sqs = [s["exp_avg_sq"] for s in states]
                torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
                torch._foreach_mul_(exp_avg_sqs, beta2)
                torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
                steps = [float(s["step"]) for s in states]
                step_sizes = [(lr / (1 - beta1**t)) * -1 for t in steps]
                denominators = torch._foreach_sqrt(exp_avg_sqs)
                torch._foreach_div_(denominators, [(1 - beta2**t) ** 0.5 for t in steps])
                torch._foreach_add_(denominators, eps)
                torch._foreach_addcdiv_(params, exp_avgs, denominators, step_sizes)
        self._stepped()
