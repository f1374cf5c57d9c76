"""Masks to and from torch.nn.utils.prune, folded into a plain model, and as CSR matrices."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from pruninglab import interop, masking
from pruninglab.pruning import prune


def convnet() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 5))  # fmt: skip


@pytest.fixture
def pruned() -> nn.Sequential:
    return prune(convnet(), 0.3).eval()


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


def test_to_csr_stores_exactly_the_kept_weights_of_the_2d_flattened_weight(pruned):
    csr = interop.to_csr(pruned)
    assert set(csr) == {"0", "4"}
    assert csr["0"].layout == torch.sparse_csr and csr["0"].shape == (4, 18)
    for name, layer in masking.masked_layers(pruned).items():
        assert csr[name].values().numel() == int(getattr(layer, masking.MASK).sum())
        assert torch.equal(csr[name].to_dense(), layer.weight.detach().flatten(1))
    x = torch.randn(64, 7)
    assert torch.allclose(csr["4"] @ x, pruned[4].weight.detach() @ x, atol=1e-5)


def test_csr_nbytes_counts_values_columns_and_row_pointers():
    model = nn.Sequential(nn.Linear(4, 3))
    masking.set_masks(model, {"0": torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 0]])})
    csr64 = interop.to_csr(model, index_dtype=torch.int64)["0"]
    assert interop.csr_nbytes(csr64) == 5 * 4 + 5 * 8 + 4 * 8
    assert interop.csr_nbytes(interop.to_csr(model)["0"]) == 5 * 4 + 5 * 4 + 4 * 4
    with pytest.raises(ValueError, match="sparse_csr"):
        interop.csr_nbytes(torch.zeros(3))


def test_size_report_shows_csr_paying_off_only_at_low_density():
    sparse = prune(convnet(), 0.05, scope="layerwise")
    dense = prune(convnet(), 0.9, scope="layerwise")
    ratio = {name: interop.size_report(net).loc["total", "ratio"]
             for name, net in (("sparse", sparse), ("dense", dense))}
    assert ratio["sparse"] > 1 > ratio["dense"]
    report = interop.size_report(sparse)
    assert report.loc["total", "dense_bytes"] == (72 + 320) * 4
    assert report.loc["total", "kept"] == masking.count(sparse)[0]
