"""pruninglab.core.efficiency: MAC counts by forward hooks, CSR weights and their bytes, CSR layers,
dense vs CSR comparison."""

from __future__ import annotations

from pruninglab import efficiency, masking, models, pruning, timing
from pruninglab.core.pruning import prune

import pandas as pd
import pytest
import torch
from conftest import convnet
from torch import nn


def test_macs_counts_each_conv_weight_once_per_output_position():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, stride=2))
    table = efficiency.macs(model, (3, 9, 9))
    assert table.loc["0", "uses"] == 81 and table.loc["1", "uses"] == 16  # 9x9, then 4x4
    assert table.loc["0", "dense_macs"] == 81 * 8 * 3 * 9
    assert table.loc["1", "dense_macs"] == 16 * 4 * 8 * 9
    assert table.loc["total", "dense_macs"] == 81 * 216 + 16 * 288


def test_macs_of_a_linear_layer_equal_its_kept_weights():
    model = pruning.prune(models.create("lenet300", 1, 10, 28), 0.2, scope="layerwise")
    table = efficiency.macs(model, (1, 28, 28))
    kept, total = masking.count(model)
    assert table.loc["total", "kept_macs"] == kept
    assert table.loc["total", "dense_macs"] == total
    assert table.loc["total", "macs_fraction"] == pytest.approx(kept / total)


def test_macs_counts_only_the_weights_the_mask_keeps():
    torch.manual_seed(0)
    model = pruning.prune(models.create("convnet", 1, 10, 8), 0.3, scope="layerwise")
    table = efficiency.macs(model, (1, 8, 8)).drop(index="total")
    masks = masking.get_masks(model)
    for name, row in table.iterrows():
        assert row["kept"] == int(masks[name].sum())
        assert row["kept_macs"] == row["uses"] * row["kept"]


def test_global_pruning_keeps_more_work_than_weights_when_early_convs_are_spared():
    # magnitude at init: wide late layers have small weights and lose more of them, and
    # the early layers they spare run on large feature maps
    torch.manual_seed(0)
    model = pruning.prune(models.create("resnet8", 3, 10, 32), 0.2, scope="global")
    total = efficiency.macs(model, (3, 32, 32)).loc["total"]
    assert total["macs_fraction"] > total["density"]


def test_macs_densities_replace_the_masks():
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 20), nn.Linear(20, 5))
    table = efficiency.macs(model, (10,), densities={"1": 0.25})
    assert table.loc["1", "kept"] == 50 and table.loc["2", "kept"] == 100  # unmasked: dense


def test_macs_rejects_densities_for_unknown_layers():
    with pytest.raises(ValueError, match="nonexistent"):
        efficiency.macs(nn.Linear(4, 2), (4,), densities={"nonexistent": 0.5})


def test_macs_leaves_the_model_in_training_mode():
    model = models.create("mlp-bn", 1, 10, 8)
    efficiency.macs(model, (1, 8, 8))  # batch of one: BatchNorm1d would fail in train mode
    assert model.training


@pytest.mark.parametrize("name", ["mlp", "resnet8", "convnet"])
def test_to_sparse_gives_the_outputs_of_the_dense_model(name):
    torch.manual_seed(0)
    model = pruning.prune(models.create(name, 3, 10, 16), 0.1, scope="layerwise").eval()
    sparse = efficiency.to_sparse(model)
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(sparse(x), model(x), atol=1e-4, rtol=1e-4)
    kinds = {type(m) for m in sparse.modules()}
    assert not kinds & {nn.Linear, nn.Conv2d}


def test_to_sparse_stores_only_the_kept_weights_and_leaves_the_model_alone():
    model = pruning.prune(models.create("lenet300", 1, 10, 28), 0.05, scope="layerwise")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sparse = efficiency.to_sparse(model)
    assert sparse.hidden[0].weight.values().numel() == int(model.hidden[0].pruning_mask.sum())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.hidden[0], nn.Linear)


def test_to_sparse_of_a_single_conv_layer_is_a_sparse_conv():
    conv = nn.Conv2d(4, 6, 3, padding=1, stride=2)
    masking.add_masks(conv)
    pruning.prune(conv, 0.5)
    sparse = efficiency.to_sparse(conv)
    x = torch.randn(2, 4, 7, 7)
    assert isinstance(sparse, efficiency.SparseConv2d)
    torch.testing.assert_close(sparse(x), conv(x), atol=1e-5, rtol=1e-5)


def test_sparse_conv_rejects_grouped_convolutions():
    conv = nn.Conv2d(4, 4, 3, groups=2)
    weight = conv.weight.detach().flatten(1).to_sparse_csr()
    with pytest.raises(ValueError, match="groups=2"):
        efficiency.SparseConv2d(weight, None, conv)


def test_compare_inference_reports_times_and_the_bytes_of_size_report(monkeypatch):
    model = pruning.prune(models.create("lenet300", 1, 10, 8), 0.1, scope="layerwise")
    calls = {"dense": 0, "csr": 0}

    def fake_interleaved(variants, rounds, steps, warmup):
        for name, step in variants.items():  # each variant really runs once
            step()
            calls[name] += 1
        return {"dense": [0.004, 0.006, 0.005], "csr": [0.001, 0.003, 0.002]}

    monkeypatch.setattr(timing, "interleaved", fake_interleaved)
    result = efficiency.compare_inference(model, torch.randn(2, 1, 8, 8), rounds=1, repeats=1,
                                          warmup=0)
    assert calls == {"dense": 1, "csr": 1}
    # medians 5 ms and 2 ms: the CSR pass is 2.5 times as fast
    assert (result["dense_ms"], result["csr_ms"], result["speedup"]) == pytest.approx(
        (5.0, 2.0, 2.5))
    # the thesis-free count: lenet300 on 8x8 keeps 10% of 64*300, 300*100, 100*10 weights
    kept = round(0.1 * 64 * 300) + round(0.1 * 300 * 100) + round(0.1 * 100 * 10)
    rows = 300 + 100 + 10
    assert result["dense_bytes"] == 4 * (64 * 300 + 300 * 100 + 100 * 10)
    assert result["csr_bytes"] == 4 * kept + 4 * kept + 4 * (rows + 3)
    assert model.training


def test_inference_table_has_a_row_per_sparsity_and_batch_and_leaves_the_model_dense():
    model = models.create("lenet300", 1, 10, 8)
    table = efficiency.inference_table(model, (1, 8, 8), [0.5, 0.1], batch_sizes=[1, 3],
                                       rounds=1, repeats=1, warmup=0)
    assert list(table.index) == [(50.0, 1), (50.0, 3), (90.0, 1), (90.0, 3)]
    assert table.loc[(90.0, 1), "density"] == pytest.approx(0.1, abs=1e-3)
    assert not masking.masked_layers(model)  # pruned copies, not the model


def test_inference_table_rejects_a_density_above_one():
    with pytest.raises(ValueError, match="densities"):
        efficiency.inference_table(nn.Linear(4, 2), (4,), [1.5])


def test_macs_at_levels_reads_gimp_records_and_run_store_columns_alike():
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 20), nn.Linear(20, 5))
    records = pd.DataFrame({"layers": [{"1": 1.0, "2": 1.0}, {"1": 0.5, "2": 0.2}]})
    flat = pd.DataFrame({"layers.1": [1.0, 0.5], "layers.2": [1.0, 0.2]})
    a = efficiency.macs_at_levels(model, (10,), records)
    b = efficiency.macs_at_levels(model, (10,), flat)
    assert list(a["kept_macs"]) == [300, 120] and a.equals(b)


def test_macs_at_levels_needs_per_layer_densities():
    with pytest.raises(ValueError, match="layers"):
        efficiency.macs_at_levels(nn.Linear(4, 2), (4,), pd.DataFrame({"density": [1.0]}))


def test_to_csr_stores_exactly_the_kept_weights_of_the_2d_flattened_weight(pruned):
    csr = efficiency.to_csr(pruned)
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
    csr64 = efficiency.to_csr(model, index_dtype=torch.int64)["0"]
    assert efficiency.csr_nbytes(csr64) == 5 * 4 + 5 * 8 + 4 * 8
    assert efficiency.csr_nbytes(efficiency.to_csr(model)["0"]) == 5 * 4 + 5 * 4 + 4 * 4
    with pytest.raises(ValueError, match="sparse_csr"):
        efficiency.csr_nbytes(torch.zeros(3))


def test_size_report_shows_csr_paying_off_only_at_low_density():
    sparse = prune(convnet(), 0.05, scope="layerwise")
    dense = prune(convnet(), 0.9, scope="layerwise")
    ratio = {name: efficiency.size_report(net).loc["total", "ratio"]
             for name, net in (("sparse", sparse), ("dense", dense))}
    assert ratio["sparse"] > 1 > ratio["dense"]
    report = efficiency.size_report(sparse)
    assert report.loc["total", "dense_bytes"] == (72 + 320) * 4
    assert report.loc["total", "kept"] == masking.count(sparse)[0]
