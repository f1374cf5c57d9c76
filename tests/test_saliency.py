"""Saliency criteria: magnitude |w|, SNIP |w*g| over n batches, random."""

from __future__ import annotations

from pruninglab import masking, saliency
from pruninglab.core.pruning import prune

import pytest
import torch
from torch import nn


def two_layer_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_magnitude_is_the_absolute_weight():
    model = two_layer_net()
    scores = saliency.magnitude(model, masking.prunable_layers(model))
    assert torch.equal(scores["0"], model[0].weight.abs())
    assert torch.equal(scores["2"], model[2].weight.abs())


def test_snip_scores_equal_abs_w_times_g_computed_by_hand_on_a_tiny_net():
    model = two_layer_net()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g), torch.tensor([0, 1, 1, 0, 1, 0])
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    # Forward and backward of the mean cross-entropy over the 4 examples of 2 batches of 2.
    xs, ys = x[:4], y[:4]
    a = xs @ w1.T + b1
    h = a.clamp_min(0)
    p = torch.softmax(h @ w2.T + b2, dim=1)
    delta2 = (p - torch.eye(2)[ys]) / len(xs)  # dL/dlogits
    g2 = delta2.T @ h
    g1 = ((delta2 @ w2) * (a > 0)).T @ xs
    scores = saliency.snip(x, y, n_batches=2, batch_size=2)(model, masking.prunable_layers(model))
    assert torch.allclose(scores["0"], (w1 * g1).abs(), atol=1e-6)
    assert torch.allclose(scores["2"], (w2 * g2).abs(), atol=1e-6)


def test_snip_works_under_no_grad_and_leaves_grads_and_bn_statistics_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        fn = saliency.snip(x, y, n_batches=4, batch_size=8)
        scores = fn(model, masking.prunable_layers(model))
    assert scores["0"].abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_prune_with_snip_keeps_the_largest_snip_scores():
    model = two_layer_net()
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    fn = saliency.snip(x, y, n_batches=1, batch_size=8)
    scores = fn(model, masking.prunable_layers(model))
    prune(model, 0.5, scope="layerwise", saliency=fn)
    for name in ("0", "2"):
        kept = scores[name][masking.get_masks(model)[name]]
        dropped = scores[name][~masking.get_masks(model)[name]]
        assert kept.min() >= dropped.max()


@pytest.mark.parametrize(("kwargs", "arg"), [({"n_batches": 0}, "n_batches"),
                                             ({"batch_size": 2.5}, "batch_size"),
                                             ({"n_batches": 3, "batch_size": 4}, "exceeds")])
def test_snip_rejects_bad_sizes(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        saliency.snip(torch.zeros(10, 3), torch.zeros(10, dtype=torch.long), **kwargs)


def test_random_scores_repeat_for_a_seed_and_change_with_it():
    model = two_layer_net()
    layers = masking.prunable_layers(model)
    a, b = saliency.random(3)(model, layers), saliency.random(3)(model, layers)
    c = saliency.random(4)(model, layers)
    assert torch.equal(a["0"], b["0"]) and not torch.equal(a["0"], c["0"])
    assert a["2"].shape == model[2].weight.shape


def test_resolve_knows_names_passes_callables_and_refuses_the_rest():
    assert saliency.resolve("magnitude") is saliency.magnitude
    assert saliency.resolve(len) is len
    with pytest.raises(ValueError, match="needs data"):
        saliency.resolve("snip")
    with pytest.raises(ValueError, match="'hessian'"):
        saliency.resolve("hessian")
