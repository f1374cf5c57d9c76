"""Setup serializes and validates; profiles resolve by name and by $PRUNINGLAB_PROFILE."""

from __future__ import annotations

from pruninglab import models, profiles, runs, schedules
from pruninglab.core.train import TrainConfig
from pruninglab.experiments.config import Setup

import json

import numpy as np
import pytest
import torch


def a_setup(**changes) -> Setup:
    train = TrainConfig(schedules.vgg(800), batch_size=64, optimizer="adam", momentum=0.8,
                        l2=2e-4, augment=False, compile=True)
    fields = {"model": "vgg11", "dataset": "cifar10", "train": train, "seed": 3,
              "val_size": 0.1, "train_size": 500, "bn_momentum": 0.01, "bn_eps": 1e-3}
    return Setup(**{**fields, **changes})


def test_setup_round_trips_through_to_dict_and_json():
    setup = a_setup()
    assert Setup.from_dict(setup.to_dict()) == setup
    assert Setup.from_dict(json.loads(json.dumps(setup.to_dict()))) == setup
    plain = Setup("mlp", "digits", TrainConfig(schedules.constant(0.1, 5)))
    assert Setup.from_dict(json.loads(json.dumps(plain.to_dict()))) == plain


def test_setup_dict_holds_every_field():
    d = a_setup().to_dict()
    rates = pytest.approx((0.1, 0.02, 0.004, 0.0008))
    assert d["train"]["schedule"] == {"steps": 800, "boundaries": (320, 480, 640), "values": rates}
    assert (d["model"], d["dataset"], d["seed"], d["train_size"]) == ("vgg11", "cifar10", 3, 500)


def test_unknown_model_or_dataset_raise_value_error_listing_names():
    with pytest.raises(ValueError, match="unknown model name") as info:
        a_setup(model="resnet21")
    assert "resnet20" in str(info.value)
    with pytest.raises(ValueError, match="dataset") as info:
        a_setup(dataset="imagenet")
    assert "cifar10" in str(info.value)
    with pytest.raises(ValueError, match="seed"):
        a_setup(seed=1.5)


def test_replace_changes_one_field():
    setup = a_setup()
    assert setup.replace(seed=9).seed == 9 and setup.replace(seed=9).model == setup.model


def test_build_model_fits_the_data_and_follows_the_seed(digits):
    setup = Setup("convnet", "digits", TrainConfig(schedules.constant(0.1, 5)), seed=4,
                  bn_momentum=0.2, bn_eps=1e-2)
    a, b = setup.build_model(digits), setup.build_model(digits)
    c = setup.replace(seed=5).build_model(digits)
    assert a(digits.x_test[:2]).shape == (2, 10)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    bn = next(m for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert (bn.momentum, bn.eps) == (0.2, 1e-2)
    setup.check_data(digits)
    with pytest.raises(ValueError, match="digits"):
        Setup("mlp", "mnist5k", setup.train).check_data(digits)


def test_load_data_follows_the_setup():
    setup = Setup("mlp", "digits", TrainConfig(schedules.constant(0.1, 5)), val_size=100,
                  train_size=200)
    data = setup.load_data()
    assert data.name == "digits" and len(data.x_val) == 100 and len(data.x_train) == 200


def test_profiles_resolve_by_name_unless_PRUNINGLAB_PROFILE_is_set(monkeypatch):
    monkeypatch.delenv("PRUNINGLAB_PROFILE", raising=False)
    assert profiles.resolve("quick").name == "quick"
    assert profiles.resolve("full") is profiles.PROFILES["full"]
    monkeypatch.setenv("PRUNINGLAB_PROFILE", "smoke")
    assert profiles.resolve("full").name == "smoke"
    monkeypatch.setenv("PRUNINGLAB_PROFILE", "")
    assert profiles.resolve("quick").name == "quick"


def test_unknown_profile_name_raises_value_error_listing_profiles(monkeypatch):
    monkeypatch.delenv("PRUNINGLAB_PROFILE", raising=False)
    with pytest.raises(ValueError, match="unknown profile") as info:
        profiles.get("huge")
    assert all(name in str(info.value) for name in ("smoke", "quick", "full"))
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.resolve("huge")
    monkeypatch.setenv("PRUNINGLAB_PROFILE", "huge")
    with pytest.raises(ValueError, match="huge"):
        profiles.resolve("quick")


def test_profile_setup_uses_the_profile_defaults_and_overrides():
    quick = profiles.get("quick")
    setup = quick.setup()
    assert (setup.model, setup.dataset, setup.seed) == ("mlp", "mnist5k", 0)
    assert setup.train.steps == quick.train_steps and setup.train.batch_size == quick.batch_size
    other = quick.setup(model="resnet20", dataset="digits", seed=2, train_steps=100, val_size=50)
    assert (other.model, other.dataset, other.seed, other.val_size) == ("resnet20", "digits", 2, 50)
    assert other.train.schedule == schedules.resnet(100)
    with pytest.raises(ValueError, match="steps"):
        quick.setup(train_steps=0)  # not silently the profile's T


def test_full_profile_uses_the_thesis_settings():
    full = profiles.get("full")
    assert (full.dataset, full.model, full.train_steps) == ("cifar10", "resnet20", 72_000)
    assert full.density_multiplier == 0.7 and full.batch_size == 128
    assert full.setup().train.schedule == schedules.resnet()


@pytest.mark.parametrize(
    "model, schedule, l2",
    [("resnet56", schedules.resnet(), 1e-4), ("vgg19", schedules.vgg(), 1e-4),
     ("wrn-28-10", schedules.wrn(), 2e-4), ("mlp", schedules.resnet(), 1e-4)],
)
def test_thesis_train_config_matches_section_3_4(model, schedule, l2):
    config = profiles.thesis_train_config(model)
    assert config.schedule == schedule and config.l2 == l2 and config.batch_size == 128
    assert models.is_known(model)


@pytest.mark.parametrize("seed", [2**64, -1, 1.0, True])
def test_a_seed_outside_the_range_is_refused_when_the_setup_is_made(seed):
    with pytest.raises(ValueError, match="seed must be an integer in"):
        profiles.get("smoke").setup(seed=seed)


def test_numpy_scalars_are_accepted_everywhere_a_number_is():



    schedule = schedules.Schedule(np.int64(100), (np.int64(50), np.int64(75)),
                                  (np.float32(0.1), 0.01, 0.001))
    assert schedule == schedules.resnet(100) and type(schedule.boundaries[0]) is int
    train = TrainConfig(schedule, batch_size=np.int64(32), momentum=np.float32(0.9),
                        l2=np.float64(1e-4))
    assert train == TrainConfig(schedules.resnet(100), batch_size=32, momentum=0.9, l2=1e-4)
    setup = Setup("mlp", "digits", train, seed=np.int64(3), train_size=np.int64(100))
    assert setup.seed == 3 and type(setup.seed) is int
    assert setup == Setup("mlp", "digits", train, seed=3, train_size=100)  # the same run


def test_a_setup_without_eval_size_keeps_the_hash_of_runs_stored_before_the_field():
    setup = profiles.get("smoke").setup()
    assert "eval_size" not in setup.to_dict()  # the dict, and so the run's hash, as before
    assert Setup.from_dict(setup.to_dict()) == setup
    small = setup.replace(eval_size=20)
    assert small.to_dict()["eval_size"] == 20 and Setup.from_dict(small.to_dict()) == small
    assert runs.config_hash(small.to_dict()) != runs.config_hash(setup.to_dict())
    with pytest.raises(ValueError, match="eval_size must be an integer"):
        setup.replace(eval_size=0)


def test_data_loaded_with_another_eval_size_is_refused():
    setup = profiles.get("smoke").setup(eval_size=30)
    data = setup.load_data()
    assert len(data.x_test) == 30 and data.eval_size == 30
    setup.check_data(data)
    with pytest.raises(ValueError, match="eval_size=30 but the setup asks for eval_size=None"):
        setup.replace(eval_size=None).check_data(data)


def test_the_gpu_profile_trains_the_thesis_networks_on_fashion_mnist_at_32x32():
    gpu = profiles.get("gpu")
    assert (gpu.dataset, gpu.model) == ("fashion-mnist-32", "resnet20")
    assert (gpu.wide_model, gpu.narrow_model) == ("wrn-16-8", "resnet20")
    assert gpu.wide_model == profiles.get("full").wide_model
    assert profiles.get("quick").train_steps < gpu.train_steps < profiles.get("full").train_steps
    assert len(gpu.seeds) >= 2  # an interval, and so a verdict, needs two seeds
    setup = gpu.setup(model="vgg19")
    assert setup.train.steps == gpu.train_steps and setup.train.l2 == 1e-4
    assert setup.train.schedule == schedules.preset("vgg", gpu.train_steps)
    assert gpu.setup(model="wrn-16-8").train.l2 == 2e-4  # Section 3.4's WRN settings, scaled


def test_shrunk_overrides_the_sizes_and_turns_off_the_thesis_lengths():
    full = profiles.get("full")
    assert full.setup(model="vgg19").train.steps == 80_000
    small = full.shrunk(train_steps=5, batch_size=4, target_density=0.5, eval_size=16)
    assert (small.name, small.dataset, small.wide_model) == ("full", "cifar10", "wrn-16-8")
    setup = small.setup(model="vgg19")
    assert (setup.train.steps, setup.train.batch_size, setup.eval_size) == (5, 4, 16)
    assert small.target_density == 0.5 and small.steps_for("wrn-16-8") == 5
    assert full.shrunk() == full
    for kwargs, message in [({"train_steps": 0}, "train_steps"),
                            ({"batch_size": 1.5}, "batch_size"),
                            ({"target_density": 1.0}, "target_density"),
                            ({"eval_size": -1}, "eval_size")]:
        with pytest.raises(ValueError, match=message):
            full.shrunk(**kwargs)


def test_every_committed_record_keeps_the_hash_its_folder_is_named_by():
    """Setup gained a field (eval_size): a setup rebuilt from each committed run's config
    must give back the same dict, and so the same hash and folder."""
    from pruninglab import reproduction

    folders = sorted(reproduction.packaged_results("quick").iterdir())
    folders = [f for f in folders if (f / "config.json").exists()]
    assert len(folders) > 100
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())
        rebuilt = {**config, "setup": Setup.from_dict(config["setup"]).to_dict()}
        assert json.loads(json.dumps(rebuilt)) == config, folder.name  # tuples as lists
        assert folder.name == f"{config['kind']}-{runs.config_hash(rebuilt)}"
