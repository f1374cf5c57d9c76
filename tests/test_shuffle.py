"""Table 3.1's modifications keep every layer's density and do what their names say; the
BN-settings experiment and pruning at initialization."""

from __future__ import annotations

import copy

import pytest
import torch

from pruninglab import at_init, bn, gimp, masking, models, schedules, shuffle
from pruninglab import data as data_module
from pruninglab.config import Setup
from pruninglab.pruning import prune
from pruninglab.train import TrainConfig


@pytest.fixture()
def ticket():
    torch.manual_seed(0)
    model = models.create("lenet300", in_channels=1, input_size=8)
    prune(model, 0.1, saliency="random")
    return model


def _kept_counts(model):
    return {n: int(m.sum()) for n, m in masking.get_masks(model).items()}


def _kept_values(model):
    return {n: layer.weight[getattr(layer, masking.MASK)].detach().clone()
            for n, layer in masking.masked_layers(model).items()}  # fmt: skip


@pytest.mark.parametrize("name", [n for n in shuffle.MODIFICATIONS if n != "none"])
def test_every_modification_keeps_each_layers_kept_count(ticket, name):
    before = _kept_counts(ticket)
    shuffle.MODIFICATIONS[name](ticket, 3)
    assert _kept_counts(ticket) == before
    for layer in masking.masked_layers(ticket).values():  # pruned weights are zero
        assert torch.all(layer.weight[~getattr(layer, masking.MASK)] == 0)


def test_shuffle_within_masks_keeps_the_topology_and_the_values_but_moves_them(ticket):
    masks = {n: m.clone() for n, m in masking.get_masks(ticket).items()}
    values = _kept_values(ticket)
    shuffle.shuffle_within_masks(ticket, 0)
    after = _kept_values(ticket)
    for name, mask in masking.get_masks(ticket).items():
        assert torch.equal(mask, masks[name])
        assert torch.equal(after[name].sort().values, values[name].sort().values)
        assert not torch.equal(after[name], values[name])


def test_reinitialize_keeps_the_topology_and_draws_from_the_layers_initializer(ticket):
    masks = {n: m.clone() for n, m in masking.get_masks(ticket).items()}
    values = _kept_values(ticket)
    shuffle.reinitialize(ticket, 0)
    for name, layer in masking.masked_layers(ticket).items():
        assert torch.equal(getattr(layer, masking.MASK), masks[name])
        new = layer.weight[masks[name]]
        assert not torch.equal(new, values[name])
        bound = 1 / layer.weight.shape[1] ** 0.5  # nn.Linear's kaiming-uniform bound
        assert new.abs().max() <= bound
    again = copy.deepcopy(ticket)
    shuffle.reinitialize(again, 0)
    assert all(torch.equal(a, b) for a, b in zip(_kept_values(again).values(),
                                                _kept_values(ticket).values()))  # seeded


def test_shuffle_masks_and_weights_moves_each_value_with_its_mask_entry(ticket):
    values = _kept_values(ticket)
    masks = {n: m.clone() for n, m in masking.get_masks(ticket).items()}
    shuffle.shuffle_masks_and_weights(ticket, 0)
    for name, mask in masking.get_masks(ticket).items():
        assert not torch.equal(mask, masks[name])  # the topology changed
        layer = masking.masked_layers(ticket)[name]
        assert torch.equal(layer.weight[mask].sort().values, values[name].sort().values)


def test_shuffle_masks_and_reinitialize_changes_topology_and_values(ticket):
    values = _kept_values(ticket)
    masks = {n: m.clone() for n, m in masking.get_masks(ticket).items()}
    shuffle.shuffle_masks_and_reinitialize(ticket, 0)
    for name, mask in masking.get_masks(ticket).items():
        assert not torch.equal(mask, masks[name])
        layer = masking.masked_layers(ticket)[name]
        assert not torch.equal(layer.weight[mask].sort().values, values[name].sort().values)


def test_the_unmodified_ticket_reproduces_the_weight_rewinding_runs_last_level(tmp_path):
    digits = data_module.load("digits")
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(20), batch_size=32))
    df = shuffle.run(setup, density=0.3, modifications=["none", "reinitialize"], data=digits,
                     store=tmp_path, progress=False)
    wr = gimp.run(setup, gimp.weight_rewinding(20, 0.3), data=digits, store=tmp_path,
                  progress=False)
    none = df.set_index("modification").loc["none"]
    assert none["test_accuracy"] == wr["test_accuracy"].iloc[-1]
    assert none["density"] == pytest.approx(0.3, abs=1e-3)
    with pytest.raises(ValueError, match="unknown modifications"):
        shuffle.run(setup, modifications=["flip"], data=digits, store=tmp_path)


def test_bn_settings_convert_from_tensorflow_and_reach_every_bn_layer(tmp_path):
    digits = data_module.load("digits")
    setup = Setup("mlp-bn", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    seen = []

    def spy(record):
        seen.append(record["level"])

    df = bn.compare(setup, gimp.lr_rewinding(10, 0.5), data=digits, store=tmp_path,
                    progress=False, on_level=spy)
    assert set(df["bn"]) == set(bn.THESIS_SETTINGS)
    assert len(df) == 2 * len(gimp.lr_rewinding(10, 0.5).densities())
    variant = setup.replace(bn_momentum=models.tf_to_torch_momentum(0.997), bn_eps=1e-5)
    norms = [m for m in variant.build_model(digits).modules()
             if isinstance(m, torch.nn.BatchNorm1d)]  # fmt: skip
    assert norms and all(m.momentum == pytest.approx(0.003) and m.eps == 1e-5 for m in norms)


def test_snip_at_initialization_prunes_to_the_density_and_trains(tmp_path):
    digits = data_module.load("digits")
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(100), batch_size=32))
    df = at_init.run(setup, 0.1, "snip", data=digits, store=tmp_path, progress=False)
    assert df["density"].iloc[0] == pytest.approx(0.1, abs=1e-4)
    assert df["test_accuracy"].iloc[0] > 0.5  # well above chance (0.1)
    with pytest.raises(ValueError, match="criterion"):
        at_init.run(setup, 0.1, "oracle", data=digits, store=tmp_path)


def test_bad_arguments_raise_value_error_naming_them_before_any_work(tmp_path):
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    for density in (1.0, 0.0, float("nan"), True):
        with pytest.raises(ValueError, match="density"):
            shuffle.run(setup, density=density, store=tmp_path)
        with pytest.raises(ValueError, match="density"):
            shuffle.ticket(setup, density=density, store=tmp_path)
    with pytest.raises(ValueError, match="modifications"):
        shuffle.run(setup, modifications=[], store=tmp_path)
    with pytest.raises(ValueError, match="n_batches"):
        at_init.run(setup, 0.1, "snip", n_batches=0, store=tmp_path)
    assert not any(tmp_path.iterdir())


def test_reinitialize_draws_from_the_models_own_initializer():
    import math

    torch.manual_seed(0)
    model = models.create("mlp", in_channels=1, input_size=28, init="keras")
    prune(model, 0.5, saliency="random")
    shuffle.reinitialize(model, 1)
    layer = model.hidden[0]
    kept = layer.weight[getattr(layer, masking.MASK)]
    bound = math.sqrt(6 / sum(layer.weight.shape))
    assert kept.abs().max() <= bound and kept.abs().max() > 0.9 * bound  # Glorot, not PyTorch's
    assert torch.all(layer.bias == 0)


def test_fetch_only_neither_trains_nor_creates_a_folder(tmp_path):
    digits = data_module.load("digits")
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    assert gimp.run(setup, gimp.lr_rewinding(10, 0.5), data=digits, store=tmp_path,
                    fetch_only=True) is None
    assert not any(tmp_path.iterdir())
