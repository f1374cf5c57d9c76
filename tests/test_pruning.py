"""prune(): exact counts, global vs layerwise, nested masks, deterministic ties, warnings;
structured channel pruning; the sparsity report."""

from __future__ import annotations

from pruninglab import masking, widgets
from pruninglab.core.data import Dataset
from pruninglab.core.pruning import EmptyLayerWarning, prune, prune_channels, sparsity_report

import itertools
import math
import warnings

import pytest
import torch
from torch import nn

# Tiny nets with odd scores empty layers on purpose; the warning has its own test.
pytestmark = pytest.mark.filterwarnings("ignore::pruninglab.core.pruning.EmptyLayerWarning")


def mlp(widths=(7, 9, 5, 3)) -> nn.Sequential:
    """A ReLU MLP with awkward (odd) layer sizes: 63 + 45 + 15 = 123 weights."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def kept(model: nn.Module) -> dict[str, int]:
    return {n: int(m.sum()) for n, m in masking.get_masks(model).items()}


@pytest.mark.parametrize("density", [1.0, 0.9, 0.5, 0.37, 0.1, 0.01])
def test_global_prune_keeps_exactly_round_density_times_n_weights(density):
    model = prune(mlp(), density)
    assert masking.count(model) == (round(density * 123), 123)


@pytest.mark.parametrize("density", [0.9, 0.5, 0.37, 0.1])
def test_layerwise_prune_keeps_exactly_round_density_times_n_in_every_layer(density):
    model = prune(mlp(), density, scope="layerwise")
    sizes = {"0": 63, "2": 45, "4": 15}
    assert kept(model) == {name: round(density * n) for name, n in sizes.items()}


def test_layerwise_gives_every_layer_the_same_density():
    model = prune(mlp((8, 12, 4, 4)), 0.25, scope="layerwise")
    report = sparsity_report(model)
    assert report["density"].tolist() == [0.25] * 4  # three layers and the total


def test_global_prune_keeps_the_largest_magnitudes_across_layers():
    model = mlp()
    layers = masking.prunable_layers(model).values()
    weights = torch.cat([m.weight.detach().abs().flatten() for m in layers])
    prune(model, 0.3)
    masks = torch.cat([m.flatten() for m in masking.get_masks(model).values()])
    assert weights[masks].min() > weights[~masks].max()


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_weights_already_pruned_stay_pruned_whatever_the_saliency(scope):
    model = prune(mlp(), 0.6, scope=scope, saliency="random")
    first = {n: m.clone() for n, m in masking.get_masks(model).items()}
    # Scores favouring exactly the pruned weights must not revive them.

    def revive(model, layers):
        return {n: (~first[n]).float() for n in layers}

    prune(model, 0.3, scope=scope, saliency=revive)
    for name, mask in masking.get_masks(model).items():
        assert not (mask & ~first[name]).any()
    expected = round(0.3 * 123) if scope == "global" else sum(round(0.3 * n) for n in (63, 45, 15))
    assert masking.count(model)[0] == expected


def test_density_above_what_is_left_raises_instead_of_reviving():
    model = prune(mlp(), 0.4)
    with pytest.raises(ValueError, match="never revives"):
        prune(model, 0.5)


def test_ties_are_broken_by_position_so_the_earliest_weights_are_kept():
    model = mlp()

    def ones(model, layers):
        return {n: torch.ones_like(m.weight) for n, m in layers.items()}

    prune(model, 70 / 123, saliency=ones)
    assert kept(model) == {"0": 63, "2": 7, "4": 0}  # global: the first 70 in module order
    flat = torch.cat([m.flatten() for m in masking.get_masks(model).values()])
    assert flat[:70].all() and not flat[70:].any()
    again = prune(mlp(), 70 / 123, saliency=ones)
    assert kept(again) == kept(model)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.0001, 2, math.nan, math.inf, True, "0.5", None])
def test_bad_density_raises_value_error_naming_the_argument(bad):
    with pytest.raises(ValueError, match=r"density must be a number in \(0, 1\]"):
        prune(mlp(), bad)
    with pytest.raises(ValueError, match="density"):
        prune_channels(mlp(), bad)


def test_bad_density_leaves_the_model_without_masks():
    model = mlp()
    with pytest.raises(ValueError):
        prune(model, math.nan)
    assert not masking.masked_layers(model)


def test_unknown_scope_raises_naming_it():
    with pytest.raises(ValueError, match="'local'"):
        prune(mlp(), 0.5, scope="local")


def test_global_pruning_that_empties_a_layer_warns():
    model = mlp()
    with torch.no_grad():
        model[2].weight.mul_(1e-3)  # magnitude pruning now sees layer "2" as unimportant
    with pytest.warns(EmptyLayerWarning, match="'2'.*Figure 2.9"):
        prune(model, 0.2)
    assert kept(model)["2"] == 0


def test_layerwise_pruning_of_the_same_network_does_not_warn():
    model = mlp()
    with torch.no_grad():
        model[2].weight.mul_(1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prune(model, 0.2, scope="layerwise")


def test_a_custom_saliency_function_decides_what_is_kept():
    model = mlp()

    def last(model, layers):  # the later the layer, the higher every score
        return {n: torch.full_like(m.weight, float(i)) for i, (n, m) in enumerate(layers.items())}

    prune(model, 15 / 123, saliency=last)
    assert kept(model) == {"0": 0, "2": 0, "4": 15}


@pytest.mark.parametrize(("scores", "match"), [
    (lambda model, layers: {n: torch.zeros(2) for n in layers}, "expected a tensor of shape"),
    (lambda model, layers: {n: torch.full_like(m.weight, math.nan) for n, m in layers.items()},
     "NaN"),
    (lambda model, layers: {}, "layer '0'"),
])
def test_bad_saliency_output_raises(scores, match):
    with pytest.raises(ValueError, match=match):
        prune(mlp(), 0.5, saliency=scores)


def test_excluded_layers_get_no_mask_and_density_counts_the_others():
    model = prune(mlp(), 0.5, exclude=["4"])
    assert list(masking.get_masks(model)) == ["0", "2"]
    assert masking.count(model) == (round(0.5 * 108), 108)
    assert torch.count_nonzero(model[4].weight) == 15


def test_prune_channels_masks_whole_output_rows_with_the_smallest_l1_norm():
    model = mlp()
    norms = model[0].weight.detach().abs().sum(1)
    prune_channels(model, 0.5)
    rows = masking.get_masks(model)["0"].all(1)
    assert int(rows.sum()) == round(0.5 * 9)
    assert (masking.get_masks(model)["0"].any(1) == rows).all()  # rows are all or nothing
    assert norms[rows].min() > norms[~rows].max()


def test_prune_channels_with_chain_leaves_a_smaller_dense_network():
    model = mlp().eval()
    prune_channels(model, 0.5, chain=True)
    masks = masking.get_masks(model)
    rows0, rows2 = masks["0"].all(1), masks["2"].any(1)
    assert masks["2"][rows2].equal(rows0.expand(int(rows2.sum()), -1))  # inputs of cut neurons go
    assert masks["4"].all(0).equal(rows2) and masks["4"].any(1).all()  # logits stay
    small = nn.Sequential(nn.Linear(7, int(rows0.sum())), nn.ReLU(),
                          nn.Linear(int(rows0.sum()), int(rows2.sum())), nn.ReLU(),
                          nn.Linear(int(rows2.sum()), 3))
    with torch.no_grad():
        small[0].weight.copy_(model[0].weight[rows0])
        small[0].bias.copy_(model[0].bias[rows0])
        small[2].weight.copy_(model[2].weight[rows2][:, rows0])
        small[2].bias.copy_(model[2].bias[rows2])
        small[4].weight.copy_(model[4].weight[:, rows2])
        small[4].bias.copy_(model[4].bias)
    x = torch.randn(10, 7)
    assert torch.allclose(model(x), small(x), atol=1e-6)


def test_prune_channels_with_chain_refuses_layers_that_do_not_chain():
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="chain"):
        prune_channels(model, 0.5, chain=True)


def test_sparsity_report_counts_densities_and_compression():
    model = mlp()
    masking.add_masks(model)
    masking.set_masks(model, {"0": torch.zeros(9, 7), "4": torch.eye(3, 5)})
    report = sparsity_report(model)
    assert report.index.tolist() == ["0", "2", "4", "total"]
    assert report.loc["total", ["weights", "kept", "pruned"]].tolist() == [123, 48, 75]
    assert report.loc["4", "density"] == pytest.approx(0.2)
    assert report.loc["total", "compression"] == pytest.approx(123 / 48)
    assert report.loc["0", "compression"] == math.inf


def test_sparsity_report_of_an_unmasked_model_is_dense():
    report = sparsity_report(mlp())
    assert report.loc["total", "density"] == 1.0 and report.loc["total", "kept"] == 123


def test_pruning_playground_reprunes_a_copy_when_the_controls_change():
    model = mlp((7, 20, 10, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 7, generator=g), torch.randint(0, 3, (64,), generator=g)
    data = Dataset("toy", x, y, x[:32], y[:32], ["a", "b", "c"], torch.zeros(1), torch.ones(1))
    explorer = widgets.pruning_playground(model, data, density=0.5, batch_size=16, curve=(1.0, 0.3))
    assert explorer.result["density"] == pytest.approx(0.5) and explorer.redraws == 1

    explorer.controls["density"].value = 0.1
    assert explorer.result["density"] == pytest.approx(0.1)
    explorer.controls["scope"].value = "layerwise"
    assert explorer.result["layers"] == pytest.approx({"0": 0.1, "2": 0.1, "4": 0.1}, abs=0.02)
    explorer.controls["saliency"].value = "snip"
    assert explorer.result["saliency"] == "snip" and 0.0 <= explorer.result["accuracy"] <= 1.0
    assert explorer.redraws == 4 and explorer.image.value[:4] == b"\x89PNG"
    assert not masking.masked_layers(model)  # the model itself is never pruned


def test_pruning_playground_refuses_an_unknown_saliency():
    x, y = torch.randn(8, 7), torch.zeros(8, dtype=torch.long)
    data = Dataset("toy", x, y, x, y, ["a", "b", "c"], torch.zeros(1), torch.ones(1))
    with pytest.raises(ValueError, match="'hessian'"):
        widgets.pruning_playground(mlp(), data, saliency="hessian")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64,
                                   torch.uint8, torch.int8, torch.int64, torch.uint16])
def test_top_keeps_what_a_stable_descending_sort_keeps(dtype):
    """_top selects with kthvalue, not a sort; on scores full of ties, any alive pattern and
    any k it must keep exactly the positions a stable sort would."""
    from pruninglab.core.pruning import _top

    generator = torch.Generator().manual_seed(0)
    for trial in range(200):
        n = int(torch.randint(1, 60, (), generator=generator))
        low = 0 if dtype in (torch.uint8, torch.uint16) else -3
        scores = torch.randint(low, 4, (n,), generator=generator).to(dtype)  # many ties
        if trial % 3 == 0 and dtype.is_floating_point:
            scores = torch.randn(n, generator=generator).to(dtype)
            scores[torch.rand(n, generator=generator) < 0.1] = math.inf
            scores[torch.rand(n, generator=generator) < 0.1] = -math.inf
        alive = torch.rand(n, generator=generator) < 0.7
        k = int(torch.randint(0, int(alive.sum()) + 1, (), generator=generator))
        index = alive.nonzero().squeeze(1)
        order = torch.sort(scores[index], descending=True, stable=True).indices[:k]
        expected = torch.zeros_like(alive)
        expected[index[order]] = True
        assert torch.equal(_top(scores, alive, k), expected), (scores, alive, k)
