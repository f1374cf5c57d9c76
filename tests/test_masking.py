"""Masks live on Conv/Linear layers, keep pruned weights at exactly 0 through training, and
travel with state_dict, deepcopy and .to()."""

from __future__ import annotations

from pruninglab import masking, schedules
from pruninglab.core.data import Dataset
from pruninglab.core.pruning import prune
from pruninglab.core.train import TrainConfig, Trainer

import copy
import io

import pytest
import torch
from torch import nn


def tiny_convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 3),
    )


def tiny_data(n: int = 96) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 6, 6, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return Dataset("tiny", x, y, x[:16], y[:16], ["a", "b", "c"], torch.zeros(1), torch.ones(1))


def test_add_masks_covers_every_conv_and_linear_layer_and_nothing_else():
    model = tiny_convnet()
    layers = masking.add_masks(model)
    assert list(layers) == ["0", "3", "6", "8"]
    for layer in layers.values():
        mask = getattr(layer, masking.MASK)
        assert mask.dtype == torch.bool and mask.shape == layer.weight.shape and mask.all()
    assert getattr(model[1], masking.MASK, None) is None  # BN is not prunable


def test_exclude_leaves_named_and_patterned_layers_unmasked():
    model = tiny_convnet()
    assert list(masking.add_masks(model, exclude=["8", "0"])) == ["3", "6"]
    other = tiny_convnet()
    assert list(masking.add_masks(other, exclude="[03]")) == ["6", "8"]


def test_exclude_pattern_matching_no_layer_raises_naming_it():
    with pytest.raises(ValueError, match="'classifier'"):
        masking.add_masks(tiny_convnet(), exclude=["classifier"])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_pruned_weights_stay_exactly_zero_after_100_training_steps(optimizer):
    model = tiny_convnet()
    prune(model, 0.3, saliency="random")
    masks = {n: m.clone() for n, m in masking.get_masks(model).items()}
    before = {n: m.weight.detach().clone() for n, m in masking.masked_layers(model).items()}
    config = TrainConfig(schedules.constant(0.05 if optimizer == "sgd" else 1e-2, 100),
                         batch_size=16, optimizer=optimizer, momentum=0.9, l2=5e-3)
    Trainer(model, tiny_data(), config, progress=False).run(100)
    for name, layer in masking.masked_layers(model).items():
        w = layer.weight.detach()
        assert torch.equal(getattr(layer, masking.MASK), masks[name])
        assert torch.count_nonzero(w[~masks[name]]) == 0, name
        assert not torch.equal(w[masks[name]], before[name][masks[name]]), name  # it trained


def test_state_dict_round_trip_through_a_file_restores_masks_in_a_fresh_model():
    model = tiny_convnet()
    prune(model, 0.4)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = tiny_convnet()
    masking.load_state_dict(fresh, torch.load(buffer))
    assert masking.get_masks(fresh).keys() == masking.get_masks(model).keys()
    for name, mask in masking.get_masks(model).items():
        assert torch.equal(masking.get_masks(fresh)[name], mask)
    x = torch.randn(5, 1, 6, 6)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_state_dict_with_masks_loads_into_a_model_that_already_has_masks():
    model = tiny_convnet()
    prune(model, 0.4)
    target = tiny_convnet()
    masking.add_masks(target)
    target.load_state_dict(model.state_dict())
    assert masking.count(target) == masking.count(model)


def test_load_state_dict_refuses_a_mask_for_a_layer_that_cannot_hold_one():
    state = tiny_convnet().state_dict()
    state["1.pruning_mask"] = torch.ones(4, dtype=torch.bool)
    with pytest.raises(ValueError, match="'1'"):
        masking.load_state_dict(tiny_convnet(), state)


def test_masks_survive_deepcopy_dtype_and_device_moves():
    model = prune(tiny_convnet(), 0.5)
    twin = copy.deepcopy(model)
    for name, mask in masking.get_masks(model).items():
        assert torch.equal(masking.get_masks(twin)[name], mask)
        assert masking.get_masks(twin)[name].data_ptr() != mask.data_ptr()
    model.to(torch.float64)
    assert all(m.dtype == torch.bool for m in masking.get_masks(model).values())
    model.to("meta")
    assert all(m.device.type == "meta" and m.dtype == torch.bool
               for m in masking.get_masks(model).values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_masks_move_to_cuda_with_the_model():
    model = prune(tiny_convnet(), 0.5).to("cuda")
    assert all(m.is_cuda for m in masking.get_masks(model).values())
    masking.apply_masks(model)


def test_set_masks_checks_every_mask_before_installing_any():
    model = tiny_convnet()
    good = torch.zeros(4, 1, 3, 3)
    with pytest.raises(ValueError, match="shape"):
        masking.set_masks(model, {"0": good, "3": torch.zeros(2, 2)})
    assert not masking.masked_layers(model)
    masking.set_masks(model, {"0": good})
    assert masking.count(model) == (0, 36) and torch.count_nonzero(model[0].weight) == 0


def test_remove_masks_folds_zeros_into_an_ordinary_state_dict():
    model = prune(tiny_convnet(), 0.2)
    kept, _ = masking.count(model)
    masking.remove_masks(model)
    state = model.state_dict()
    assert not any(k.endswith(masking.MASK) for k in state)
    assert sum(int(torch.count_nonzero(state[f"{n}.weight"])) for n in ("0", "3", "6", "8")) == kept


def test_count_and_density_are_over_masked_weights():
    model = tiny_convnet()
    assert masking.density(model) == 1.0
    masking.set_masks(model, {"8": torch.eye(3, 16)})
    assert masking.count(model) == (3, 48)
    assert masking.density(model) == pytest.approx(3 / 48)


def test_summary_holds_density_compression_and_counts_and_needs_masks():
    model = tiny_convnet()
    with pytest.raises(ValueError, match="model"):
        masking.summary(model)
    masking.set_masks(model, {"8": torch.eye(3, 16)})
    assert masking.summary(model) == {"density": 3 / 48, "compression": 16.0, "kept": 3,
                                      "total": 48}
    masking.set_masks(model, {"8": torch.zeros(3, 16)})
    assert masking.summary(model)["compression"] == float("inf")


def test_bernoulli_ste_samples_with_sigmoid_probability_and_clips_the_straight_through_gradient():
    logits = torch.tensor([-2.0, 0.0, 3.0]).repeat(20_000, 1).requires_grad_()
    c = masking.bernoulli_ste(logits, clip=0.1, generator=torch.Generator().manual_seed(0))
    assert set(c.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(c.mean(0), torch.sigmoid(logits[0].detach()), atol=0.01)
    upstream = torch.linspace(-1, 1, c.numel()).view_as(c)
    c.backward(upstream)
    assert torch.equal(logits.grad, upstream.clamp(-0.1, 0.1))


def test_bernoulli_ste_rejects_a_non_positive_clip():
    with pytest.raises(ValueError, match="clip"):
        masking.bernoulli_ste(torch.zeros(3), clip=0.0)


def test_functional_forward_uses_the_given_masks_and_sends_gradients_to_them():
    model = tiny_convnet().eval()
    x = torch.randn(4, 1, 6, 6)
    masks = {"3": (torch.rand(4, 4, 3, 3) > 0.5).float().requires_grad_()}
    out = masking.functional_forward(model, x, masks)
    reference = copy.deepcopy(model)
    masking.set_masks(reference, {"3": masks["3"].detach()})
    assert torch.allclose(out, reference(x), atol=1e-6)
    out.sum().backward()
    assert masks["3"].grad is not None and masks["3"].grad.abs().sum() > 0
    assert getattr(model[3], masking.MASK, None) is None  # the module is untouched


def test_mask_applier_zeros_pruned_weights_and_follows_masks_changed_later():
    model = prune(tiny_convnet(), 0.5)
    apply = masking.MaskApplier(model)

    def perturb_then_apply():
        with torch.no_grad():
            for layer in masking.masked_layers(model).values():
                layer.weight.add_(1.0)
        apply()

    perturb_then_apply()
    for layer in masking.masked_layers(model).values():
        assert torch.equal(layer.weight != 0, getattr(layer, masking.MASK))
    prune(model, 0.2)  # masks change in place
    perturb_then_apply()
    assert int(sum(torch.count_nonzero(m.weight) for m in masking.masked_layers(model).values())) \
        == masking.count(model)[0]
    model.to(torch.float64)  # weights change dtype
    perturb_then_apply()
    assert all(m.dtype == torch.float64 for m in apply.multipliers)
    assert masking.count(model)[0] == sum(int(torch.count_nonzero(w)) for w in apply.weights)


def test_mask_applier_on_a_model_without_masks_does_nothing():
    model = tiny_convnet()
    before = copy.deepcopy(model.state_dict())
    masking.MaskApplier(model)()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_mask_applier_survives_masks_removed_after_it_was_made():
    model = prune(tiny_convnet(), 0.5)
    apply = masking.MaskApplier(model)
    masking.remove_masks(model)
    apply()  # nothing left to multiply, and no error
    assert apply.weights == []


def test_kept_per_input_counts_each_input_over_outputs_and_kernel_positions():
    linear = torch.tensor([[True, False, True], [True, True, False]])
    assert torch.equal(masking.kept_per_input(linear), torch.tensor([2, 1, 1]))
    conv = torch.zeros(4, 2, 3, 3, dtype=torch.bool)
    conv[:, 1, 0, :] = True  # input channel 1: 4 outputs x 3 positions
    assert masking.kept_per_input(conv).tolist() == [0, 12]
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        masking.kept_per_input(linear.float())


def test_restore_brings_back_a_state_under_the_current_masks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    masking.add_masks(model)
    snapshot = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model[1].running_mean.fill_(3.0)
    prune(model, 0.5)
    new_masks = {k: v.clone() for k, v in masking.get_masks(model).items()}
    masking.restore(model, snapshot)
    assert masking.get_masks(model).keys() == new_masks.keys()
    for name, mask in new_masks.items():
        assert torch.equal(masking.get_masks(model)[name], mask)  # the masks stay the new ones
        assert torch.equal(model.get_submodule(name).weight, snapshot[f"{name}.weight"] * mask)
    assert torch.equal(model[1].running_mean, snapshot["1.running_mean"])
    assert torch.equal(model[0].bias, snapshot["0.bias"])
    with pytest.raises(RuntimeError, match="Missing key"):
        masking.restore(model, {"0.weight": snapshot["0.weight"]})
