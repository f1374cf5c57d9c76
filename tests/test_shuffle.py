"""Table 3.1: the modifications keep every layer's density and do what their names say; the
experiment runs through the store (resumable, JSON records enough once finished, a damaged
ticket recomputed); Table 3.1's summary and Section 3.3.2's claims."""

from __future__ import annotations

from pruninglab import data as data_module
from pruninglab import gimp, masking, models, runs, schedules, shuffle, train
from pruninglab.core.pruning import prune
from pruninglab.core.train import TrainConfig
from pruninglab.experiments.config import Setup

import copy

import numpy as np
import pandas as pd
import pytest
import torch


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
            for n, layer in masking.masked_layers(model).items()}


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


def test_bad_arguments_raise_value_error_naming_them_before_any_work(tmp_path):
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    for density in (1.0, 0.0, float("nan"), True):
        with pytest.raises(ValueError, match="density"):
            shuffle.run(setup, density=density, store=tmp_path)
        with pytest.raises(ValueError, match="density"):
            shuffle.ticket(setup, density=density, store=tmp_path)
    with pytest.raises(ValueError, match="modifications"):
        shuffle.run(setup, modifications=[], store=tmp_path)
    assert not any(tmp_path.iterdir())


def test_reinitialize_draws_from_the_models_own_initializer():
    torch.manual_seed(0)
    model = models.create("mlp", in_channels=1, input_size=28, init="keras")
    prune(model, 0.5, saliency="random")
    shuffle.reinitialize(model, 1)
    layer = model.hidden[0]
    kept = layer.weight[getattr(layer, masking.MASK)]
    bound = (6 / sum(layer.weight.shape)) ** 0.5
    assert kept.abs().max() <= bound and kept.abs().max() > 0.9 * bound  # Glorot, not PyTorch's
    assert torch.all(layer.bias == 0)


def test_reinitialize_never_redraws_the_initialization_of_the_same_seed(digits):
    setup = Setup("lenet300", "digits", TrainConfig(schedules.resnet(10), batch_size=32), seed=3)
    model = setup.build_model(digits)
    masking.add_masks(model)
    redrawn = shuffle.reinitialize(copy.deepcopy(model), setup.seed)
    for name, layer in masking.masked_layers(model).items():
        assert not torch.equal(layer.weight, redrawn.get_submodule(name).weight)


@pytest.fixture(scope="module")
def digits():
    return data_module.load("digits")


SETUP = Setup("lenet300", "digits", TrainConfig(schedules.resnet(12), batch_size=32))


def _records(store, kind="shuffle"):
    return {run.path.name: [{k: v for k, v in r.items() if k != "seconds"} for r in run.records()]
            for run in runs.iter_runs(store, kind)}


def test_a_store_of_json_records_alone_reruns_table_3_1_without_training(digits, tmp_path,
                                                                         monkeypatch):
    first = shuffle.run(SETUP, density=0.5, data=digits, store=tmp_path, progress=False)
    for checkpoint in tmp_path.glob("*/checkpoint_*.pt"):
        checkpoint.unlink()  # what a committed store holds: JSON only
    monkeypatch.setattr(train.Trainer, "run", lambda *a, **k: pytest.fail("trained"))
    again = shuffle.run(SETUP, density=0.5, data=digits, store=tmp_path, progress=False)
    assert again.drop(columns="seconds").equals(first.drop(columns="seconds"))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def _flip_a_mask_entry(path):
    """Bit rot in the tensor data: one mask entry flipped, the stored checksum kept."""
    body = torch.load(path, weights_only=True)
    mask = next(k for k in body["state"]["model"] if k.endswith(masking.MASK))
    flat = body["state"]["model"][mask].view(-1)
    flat[0] = ~flat[0]
    torch.save(body, path)


@pytest.mark.parametrize("damage, reason", [(_truncate, "cannot be loaded"),
                                            (_flip_a_mask_entry, "checksum")])
def test_a_damaged_ticket_checkpoint_is_recomputed_not_called_missing(damage, reason, digits,
                                                                      tmp_path):
    reference = shuffle.run(SETUP, density=0.5, modifications=["none", "reinitialize"],
                            data=digits, store=tmp_path / "a", progress=False)
    gimp.run(SETUP, gimp.weight_rewinding(12, 0.5), data=digits, store=tmp_path / "b",
             progress=False)
    ticket_run = next(runs.iter_runs(tmp_path / "b", "gimp"))
    last = len(gimp.weight_rewinding(12, 0.5).densities()) - 1
    damage(ticket_run.path / f"checkpoint_{last:03d}.pt")
    with pytest.warns(runs.CorruptRecordWarning, match=reason):
        again = shuffle.run(SETUP, density=0.5, modifications=["none", "reinitialize"],
                            data=digits, store=tmp_path / "b", progress=False)
    assert again.drop(columns="seconds").equals(reference.drop(columns="seconds"))
    assert ticket_run.load_checkpoint(last) is not None  # rewritten whole


def _table_rows(means: dict[str, float], seeds=(0, 1, 2), spread: float = 0.002):
    return pd.DataFrame([{"modification": name, "seed": s,
                          "test_accuracy": mean + spread * (s - 1)}
                         for name, mean in means.items() for s in seeds])


THESIS_LIKE = {name: mean / 100 for name, (mean, _) in shuffle.THESIS_TABLE_3_1.items()}


def test_table_3_1_gives_differences_to_the_unmodified_ticket():
    summary = shuffle.table_3_1(_table_rows(THESIS_LIKE))
    assert list(summary.index) == list(shuffle.MODIFICATIONS)
    assert summary.loc["none", "difference"] == pytest.approx(0.0)
    assert summary.loc["reinitialize", "difference"] == pytest.approx(98.259 - 98.624)
    assert summary.loc["reinitialize", "thesis difference"] == pytest.approx(-0.365)
    assert summary["std"].iloc[0] == pytest.approx(0.2)  # sample std of ±0.2 points
    assert (summary["rank"] == summary["thesis rank"]).all()
    assert np.isclose(summary.loc["none", "mean"], 98.624)
    with pytest.raises(ValueError, match="none"):
        shuffle.table_3_1(_table_rows({"reinitialize": 0.9}))


def test_claims_hold_for_the_thesis_numbers_and_fail_for_a_reversed_table():
    assert all(shuffle.claims(shuffle.table_3_1(_table_rows(THESIS_LIKE))).values())
    names = list(shuffle.MODIFICATIONS)
    reversed_means = dict(zip(names, sorted(THESIS_LIKE.values())))
    verdict = shuffle.claims(shuffle.table_3_1(_table_rows(reversed_means)))
    assert not verdict["every modification lowers the accuracy"]
    assert not verdict["keeping the topology beats changing it"]
    assert not verdict["the order of the five rows is the thesis's"]
    one_seed = shuffle.claims(shuffle.table_3_1(_table_rows(THESIS_LIKE, seeds=(0,))))
    assert one_seed["shuffling within masks and reinitializing do not differ significantly"] is None


def test_the_ticket_is_the_initialization_under_weight_rewindings_final_mask(digits, tmp_path):
    setup = Setup("mlp", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    net = shuffle.ticket(setup, 0.3, data=digits, store=tmp_path, progress=False)
    assert masking.density(net) == pytest.approx(0.3, abs=1e-3)
    init = setup.build_model(digits)
    for name, layer in masking.masked_layers(net).items():
        mask = getattr(layer, masking.MASK)
        assert torch.equal(layer.weight, init.get_submodule(name).weight * mask)
    assert len(gimp.weight_rewinding(10, 0.3).densities()) == 5  # K**4 = 0.24 < 0.3 clamps
