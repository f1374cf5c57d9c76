"""Masks to and from torch.nn.utils.prune, and folded into a plain model."""

from __future__ import annotations

from pruninglab import interop, masking

import pytest
import torch
from conftest import convnet
from torch.nn.utils import prune as torch_prune


def test_to_torch_prune_gives_weight_orig_weight_mask_and_the_same_function(pruned):
    exported = interop.to_torch_prune(pruned)
    state = exported.state_dict()
    for name, mask in masking.get_masks(pruned).items():
        assert torch.equal(state[f"{name}.weight_mask"], mask.float())
        assert f"{name}.weight_orig" in state and f"{name}.{masking.MASK}" not in state
        assert torch_prune.is_pruned(exported)
    x = torch.randn(3, 2, 6, 6)
    assert torch.equal(exported(x), pruned(x))
    assert masking.get_masks(pruned)  # the original keeps its masks


def test_from_torch_prune_reads_masks_made_by_torch(pruned):
    model = convnet()
    torch_prune.l1_unstructured(model[0], "weight", amount=10)
    torch_prune.random_unstructured(model[4], "weight", amount=0.5)
    model(torch.randn(1, 2, 6, 6))  # after a forward pass the hook's weight is not a leaf
    ours = interop.from_torch_prune(model)
    assert not torch_prune.is_pruned(ours)
    assert masking.count(ours) == (72 - 10 + 160, 72 + 320)
    assert torch.equal(masking.get_masks(ours)["4"], model[4].weight_mask.bool())
    assert torch.equal(ours[0].weight, model[0].weight_orig * model[0].weight_mask)


def test_torch_prune_round_trip_keeps_masks_and_weights(pruned):
    back = interop.from_torch_prune(interop.to_torch_prune(pruned))
    assert back.state_dict().keys() == pruned.state_dict().keys()
    for key, value in pruned.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_from_torch_prune_refuses_a_pruned_bias():
    model = convnet()
    torch_prune.l1_unstructured(model[4], "bias", amount=1)
    with pytest.raises(ValueError, match="bias"):
        interop.from_torch_prune(model)


def test_fold_gives_a_plain_copy_whose_state_dict_holds_zeros_and_loads_into_a_fresh_model(pruned):
    plain = interop.fold(pruned)
    assert not masking.masked_layers(plain) and masking.masked_layers(pruned)
    state = plain.state_dict()
    assert not any("mask" in key for key in state)
    kept, _ = masking.count(pruned)
    nonzero = sum(int(torch.count_nonzero(state[f"{n}.weight"])) for n in ("0", "4"))
    assert nonzero == kept
    fresh = convnet()
    fresh.load_state_dict(state)  # plain torch, strict
    x = torch.randn(3, 2, 6, 6)
    assert torch.equal(fresh.eval()(x), pruned(x))
