"""pruninglab.core.optim: torch.optim's arithmetic bit for bit, masks applied inside the step,
pruned weights exactly zero, and no torch._dynamo import."""

from __future__ import annotations

from pruninglab import masking, optim
from pruninglab.core.pruning import prune

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 3))


def groups(model: nn.Module, wd: float) -> list[dict]:
    kernels = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    others = [p for p in model.parameters() if all(p is not k for k in kernels)]
    return [{"params": kernels, "weight_decay": wd}, {"params": others, "weight_decay": 0.0}]


def train(model: nn.Module, optimizer, steps: int = 12, prune_at: int | None = None) -> None:
    g = torch.Generator().manual_seed(1)
    for i in range(steps):
        if i == prune_at:
            prune(model, 0.3)
        x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] *= 0.9  # the learning rate changes between steps, as a schedule does


OURS_AND_TORCH = {
    "sgd": (lambda params, model=None: optim.SGD(params, lr=0.1, momentum=0.9, model=model),
            lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, foreach=True)),
    "sgd without momentum": (
        lambda params, model=None: optim.SGD(params, lr=0.1, model=model),
        lambda params: torch.optim.SGD(params, lr=0.1, foreach=True)),
    "adam": (lambda params, model=None: optim.Adam(params, lr=0.01, model=model),
             lambda params: torch.optim.Adam(params, lr=0.01, foreach=True)),
}


@pytest.mark.parametrize("kind", OURS_AND_TORCH)
def test_a_dense_model_trains_bit_for_bit_as_with_torch_optim(kind):
    ours, theirs = OURS_AND_TORCH[kind]
    a, b = mlp(), mlp()
    train(a, ours(groups(a, 2e-4)))
    train(b, theirs(groups(b, 2e-4)))
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("kind", OURS_AND_TORCH)
def test_kept_weights_follow_torch_optim_plus_a_mask_multiply_exactly(kind):
    """The old path (torch.optim, then the weights multiplied by their masks) and ours give
    the same kept weights; ours needs no pass after the step."""
    ours, theirs = OURS_AND_TORCH[kind]
    a = prune(mlp(), 0.4)
    b = copy.deepcopy(a)
    train(a, ours(groups(a, 2e-4), model=a))
    apply = masking.MaskApplier(b)
    optimizer = theirs(groups(b, 2e-4))
    step = optimizer.step
    optimizer.step = lambda: (step(), apply())
    train(b, optimizer)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("kind", OURS_AND_TORCH)
def test_pruned_weights_and_their_optimizer_state_stay_exactly_zero(kind):
    ours, _ = OURS_AND_TORCH[kind]
    model = mlp()
    optimizer = ours(groups(model, 1e-2), model=model)
    train(model, optimizer, steps=20, prune_at=5)  # pruned mid-training, with momentum
    for name, layer in masking.masked_layers(model).items():
        pruned = ~getattr(layer, masking.MASK)
        assert pruned.any()
        assert torch.all(layer.weight[pruned] == 0), name
        for key, buffer in optimizer.state.get(layer.weight, {}).items():
            if isinstance(buffer, torch.Tensor):
                assert torch.all(buffer[pruned] == 0), (name, key)
        assert torch.all(layer.weight[~pruned] != 0), name  # the kept ones still train


@pytest.mark.parametrize("masked", [False, True])
def test_a_parameter_that_gets_its_first_gradient_late_leaves_the_others_momentum_alone(masked):
    """Its buffer starts as its gradient; the others' buffers go on, as in torch.optim."""
    a = prune(mlp(), 0.5) if masked else mlp()
    b = copy.deepcopy(a)
    ours = optim.SGD(a.parameters(), lr=0.1, momentum=0.9, model=a)
    theirs = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, foreach=True)
    g = torch.Generator().manual_seed(2)
    for step in range(4):
        x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        for model, optimizer in ((a, ours), (b, theirs)):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if step < 2:  # no gradient yet: no step, no buffer (a masked weight, a bias)
                model[3].bias.grad = None
                model[3].weight.grad = None
            optimizer.step()
            if masked and optimizer is theirs:
                masking.apply_masks(model)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name


def test_weights_a_mask_prunes_are_zeroed_at_the_first_step_even_if_they_were_not():
    model = mlp()
    layer = model[0]
    mask = torch.rand_like(layer.weight) > 0.5
    layer.register_buffer(masking.MASK, mask)  # registered by hand: the weights are not zero
    train(model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9, model=model), steps=1)
    assert torch.all(layer.weight[~mask] == 0)


def test_weights_written_between_steps_are_masked_again_at_the_next_step():
    model = prune(mlp(), 0.3)
    dense = {k: v for k, v in mlp().state_dict().items() if "pruning_mask" not in k}
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, model=model)
    train(model, optimizer, steps=2)
    model.load_state_dict(dense, strict=False)  # writes every weight, the masks unchanged
    assert torch.count_nonzero(model[0].weight) == model[0].weight.numel()
    train(model, optimizer, steps=1)
    for name, layer in masking.masked_layers(model).items():
        assert torch.all(layer.weight[~getattr(layer, masking.MASK)] == 0), name


def test_masks_removed_during_training_free_their_weights():
    model = prune(mlp(), 0.3)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, model=model)
    train(model, optimizer, steps=2)
    masking.remove_masks(model)
    train(model, optimizer, steps=2)
    assert int(torch.count_nonzero(model[0].weight)) == model[0].weight.numel()


@pytest.mark.parametrize(("make", "arg"), [
    (lambda p: optim.SGD(p, lr=-1.0), "lr"),
    (lambda p: optim.SGD([{"params": p[:2]}, {"params": p[2:], "lr": -1.0}], lr=0.1),
     r"param_groups\[1\]\.lr"),
    (lambda p: optim.SGD([{"params": p, "dampening": 0.1}], lr=0.1),
     r"param_groups\[0\] has settings \['dampening'\]"),
    (lambda p: optim.SGD(p[0], lr=0.1), "a single tensor"),
    (lambda p: optim.SGD([p[0], {"params": p[1:]}], lr=0.1), "mixes tensors and parameter"),
    (lambda p: optim.SGD([p[0] * 2], lr=0.1), r"\[0\] is not a leaf tensor"),
    (lambda p: optim.SGD([p[0], p[1], p[0]], lr=0.1), r"\['params'\]\[2\] is given twice"),
    (lambda p: optim.SGD([p[0], "w"], lr=0.1), r"\[1\] must be a tensor, got str"),
    (lambda p: optim.Adam(p, betas=(0.9,)), "betas must be a pair"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=1.0), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.5)), r"betas\[1\]"),
    (lambda p: optim.Adam(p, eps=0.0), "eps"),
    (lambda p: optim.Adam([]), "no parameters"),
])
def test_bad_settings_raise_value_error_naming_them(make, arg):
    with pytest.raises(ValueError, match=arg):
        make(list(mlp().parameters()) if arg != "no parameters" else [])


def test_making_and_stepping_an_optimizer_does_not_import_torch_dynamo():
    code = ("import sys, torch; from pruninglab import optim\n"
            "m = torch.nn.Linear(3, 2)\n"
            "for o in (optim.SGD(m.parameters(), lr=0.1, momentum=0.9, model=m),"
            " optim.Adam(m.parameters())):\n"
            "    m(torch.randn(4, 3)).sum().backward(); o.step(); o.zero_grad()\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("kind", OURS_AND_TORCH)
def test_a_restored_param_state_continues_training_as_if_never_interrupted(kind):
    """Save every parameter's state after some steps, load it into a new optimizer of the
    same kind: the next steps are bit for bit those of the first optimizer."""
    ours, _ = OURS_AND_TORCH[kind]
    a = mlp()
    first = ours(groups(a, 2e-4), model=a)
    train(a, first, steps=6)
    b = copy.deepcopy(a)
    second = ours(groups(b, 2e-4), model=b)
    for p, q in zip(a.parameters(), b.parameters()):
        second.load_param_state(q, first.param_state(p))
    for opt in (first, second):
        for group in opt.param_groups:
            group["lr"] = 0.05
    train(a, first, steps=6)
    train(b, second, steps=6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("kind", OURS_AND_TORCH)
def test_the_written_out_fresh_state_steps_exactly_as_no_state(kind):
    ours, _ = OURS_AND_TORCH[kind]
    a, b = mlp(), mlp()
    first, second = ours(groups(a, 2e-4), model=a), ours(groups(b, 2e-4), model=b)
    for q in b.parameters():
        second.load_param_state(q, second.param_state(q))  # zeros (and Adam's step 0)
    train(a, first)
    train(b, second)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_param_state_refuses_a_foreign_tensor_and_a_state_of_another_kind():
    model = mlp()
    sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    adam = optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="not one of this optimizer's parameters"):
        sgd.param_state(torch.zeros(3, requires_grad=True))
    p = next(model.parameters())
    with pytest.raises(ValueError, match="exp_avg"):
        sgd.load_param_state(p, adam.param_state(p))
