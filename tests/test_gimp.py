"""GIMP (Algorithm 5) follows docs/design.md's semantics to the letter, resumes, and validates."""

from __future__ import annotations

from pruninglab import data as data_module
from pruninglab import gimp, gimp_runs, masking, runs, schedules, seeding
from pruninglab.core.pruning import prune
from pruninglab.core.train import TrainConfig, Trainer
from pruninglab.experiments.config import Setup

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

T = 24  # steps of the dense training in these tests


@pytest.fixture(scope="module")
def digits():
    return data_module.load("digits")


def tiny_setup(model: str = "lenet300", seed: int = 0) -> Setup:
    return Setup(model, "digits", TrainConfig(schedules.resnet(T), batch_size=32), seed=seed)


PRESETS = {
    "finetune": gimp.finetune(T, 0.3),
    "weight_rewinding": gimp.weight_rewinding(T, 0.3),
    "stable_weight_rewinding": gimp.stable_weight_rewinding(T, 0.3, rewind_to=3),
    "lr_rewinding": gimp.lr_rewinding(T, 0.3),
    "sgimp": gimp.sgimp(T, 0.3, rewind_fraction=0.75),
    "one_shot": gimp.one_shot(T, 0.3, rewind_fraction=0.5),
}


def _initial(setup: Setup, config: gimp.GIMPConfig, data) -> dict:
    """The state level 0 starts from: the masked initialization at position 0."""
    return gimp_runs.experiment(setup, config, data, progress=False).start()


def _model_from(setup: Setup, data, state: dict):
    model = setup.build_model(data)
    masking.add_masks(model)
    masking.load_state_dict(model, state["model"])
    return model


def _tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_level_starts_from_the_rewind_state_times_the_new_mask(name, digits, tmp_path):
    """Replays each level by hand from its stored start state and checks the next start state:
    parameters (and BN statistics) of the cycle after max(0, n - rewind_steps) steps, times the
    mask pruned from the end-of-cycle weights; schedule position rewound by rewind_steps_lr."""
    config = PRESETS[name]
    setup = tiny_setup("convnet" if name == "sgimp" else "lenet300")  # convnet: BN statistics too
    df = gimp.run(setup, config, data=digits, store=tmp_path, progress=False)
    run = next(runs.iter_runs(tmp_path, "gimp"))
    densities = config.densities()
    assert len(df) == len(densities)
    for level in range(len(densities) - 1):
        start = run.load_checkpoint(level) if level else _initial(setup, config, digits)
        model = _model_from(setup, digits, start)
        trainer = Trainer(model, digits, setup.train,
                          seed=seeding.derive(setup.seed, "gimp", level),
                          position=start["position"], progress=False)
        point = config.rewind_point(level)
        trainer.run(point)
        rewind_state = {k: v.clone() for k, v in model.state_dict().items()}
        trainer.run(config.steps(level) - point)
        prune(model, densities[level + 1])
        new_mask = {n: m.clone() for n, m in masking.get_masks(model).items()}

        expected = dict(rewind_state)
        for layer, mask in new_mask.items():
            expected[f"{layer}.weight"] = rewind_state[f"{layer}.weight"] * mask
            expected[f"{layer}.{masking.MASK}"] = mask
        stored = run.load_checkpoint(level + 1)
        assert _tensors_equal(stored["model"], expected), f"level {level + 1} start state differs"
        assert stored["position"] == max(0, trainer.position - config.rewind_steps_lr)


def test_schedule_positions_follow_each_preset(digits, tmp_path):
    expected_start = {
        "finetune": lambda level: level * T,  # never rewound: training continues at the end rate
        "weight_rewinding": lambda level: 0,
        "stable_weight_rewinding": lambda level: 0 if level == 0 else 3,
        "lr_rewinding": lambda level: 0,
        "sgimp": lambda level: 0,
        "one_shot": lambda level: 0,
    }
    for name, config in PRESETS.items():
        df = gimp.run(tiny_setup(), config, data=digits, store=tmp_path, progress=False)
        starts = list(df["position_start"])
        assert starts == [expected_start[name](lv) for lv in range(len(df))], name
        assert list(df["steps"]) == [config.steps(lv) for lv in range(len(df))], name
        trace = gimp.schedule_trace(config)
        assert [(lv, a, b) for lv, a, b in trace] == list(
            zip(df["level"], df["position_start"], df["position_end"])), name


def test_weight_rewinding_returns_every_level_to_the_masked_initialization(digits, tmp_path):
    setup = tiny_setup()
    gimp.run(setup, gimp.weight_rewinding(T, 0.3), data=digits, store=tmp_path, progress=False)
    run = next(runs.iter_runs(tmp_path, "gimp"))
    init = _initial(setup, gimp.weight_rewinding(T, 0.3), digits)["model"]
    level = 1
    while (state := run.load_checkpoint(level)) is not None:
        for key, value in state["model"].items():
            if key.endswith(".weight") and f"{key[:-7]}.{masking.MASK}" in state["model"]:
                mask = state["model"][f"{key[:-7]}.{masking.MASK}"]
                assert torch.equal(value, init[key] * mask)
        level += 1
    assert level == len(gimp.weight_rewinding(T, 0.3).densities())


def test_densities_follow_powers_of_k_clamped_at_the_target():
    config = gimp.GIMPConfig(10, target_density=0.3, density_multiplier=0.7)
    assert config.densities() == pytest.approx([1.0, 0.7, 0.49, 0.343, 0.3])
    exact = gimp.GIMPConfig(10, target_density=0.49, density_multiplier=0.7)
    assert exact.densities() == pytest.approx([1.0, 0.7, 0.49])


def test_one_shot_is_a_single_pruned_level(digits, tmp_path):
    df = gimp.run(tiny_setup(), gimp.one_shot(T, 0.05), data=digits, store=tmp_path, progress=False)
    assert list(df["level"]) == [0, 1]
    assert df["density"].iloc[1] == pytest.approx(0.05, abs=1e-4)


def test_records_hold_end_of_training_metrics_for_every_level(digits, tmp_path):
    setup = tiny_setup().replace(val_size=200)
    data = setup.load_data()
    df = gimp.run(setup, gimp.lr_rewinding(T, 0.5), data=data, store=tmp_path, progress=False)
    for column in ("density", "compression", "test_accuracy", "test_loss", "val_accuracy",
                   "val_loss", "train_accuracy", "steps", "seconds", "layers"):
        assert column in df, column
    assert df["density"].iloc[-1] == pytest.approx(0.5, abs=1e-4)
    assert (df["compression"] * df["density"]).round(9).eq(1.0).all()
    assert set(df["layers"].iloc[-1]) == set(masking.prunable_layers(setup.build_model(data)))


def test_a_finished_run_comes_back_from_the_store_without_training(digits, tmp_path,
                                                                   monkeypatch):
    config = gimp.lr_rewinding(T, 0.3)
    first = gimp.run(tiny_setup(), config, data=digits, store=tmp_path, progress=False)

    def no_training(self, *args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(Trainer, "run", no_training)
    again = gimp.run(tiny_setup(), config, data=digits, store=tmp_path, progress=False)
    assert first.drop(columns="layers").equals(again.drop(columns="layers"))


def _comparable(df):
    return df.drop(columns=["seconds"]).to_dict("records")


def test_a_truncated_record_is_recomputed_not_used(digits, tmp_path):
    config = gimp.sgimp(T, 0.3, rewind_fraction=0.5)
    reference = gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "a", progress=False)
    gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "b", progress=False)
    run = next(runs.iter_runs(tmp_path / "b", "gimp"))
    record = run.path / "record_002.json"
    record.write_text(record.read_text()[:40])  # truncated mid-write
    with pytest.warns(runs.CorruptRecordWarning):
        again = gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "b", progress=False)
    assert _comparable(again) == _comparable(reference)


def test_a_tampered_record_fails_its_checksum(digits, tmp_path):
    gimp.run(tiny_setup(), gimp.lr_rewinding(T, 0.5), data=digits, store=tmp_path, progress=False)
    run = next(runs.iter_runs(tmp_path, "gimp"))
    path = run.path / "record_001.json"
    path.write_text(path.read_text().replace('"level": 1', '"level": 7'))
    with pytest.warns(runs.CorruptRecordWarning):
        assert run.read_record(1) is None


def test_a_missing_checkpoint_steps_back_one_level(digits, tmp_path):
    config = gimp.lr_rewinding(T, 0.3)
    reference = gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "a", progress=False)
    gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "b", progress=False)
    run = next(runs.iter_runs(tmp_path / "b", "gimp"))
    (run.path / "record_003.json").unlink()
    (run.path / "checkpoint_003.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(runs.CorruptRecordWarning):
        again = gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "b", progress=False)
    assert _comparable(again) == _comparable(reference)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"density_multiplier": 0.4}, "density_multiplier"),
        ({"density_multiplier": 1.0}, "density_multiplier"),
        ({"target_density": 1.0}, "target_density"),
        ({"target_density": 0.0}, "target_density"),
        ({"target_density": -0.5}, "target_density"),
        ({"train_steps": -1}, "train_steps"),
        ({"rewind_steps": -5}, "rewind_steps"),
        ({"rewind_steps_lr": -5}, "rewind_steps_lr"),
        ({"retrain_steps": -5}, "retrain_steps"),
        ({"scope": "everywhere"}, "scope"),
    ],
)
def test_bad_configs_raise_value_errors_naming_the_field(kwargs, field):
    base = {"train_steps": 10, "target_density": 0.1}
    with pytest.raises(ValueError, match=field):
        gimp.GIMPConfig(**{**base, **kwargs})


@pytest.mark.parametrize("fraction", [-0.1, 1.5, math.nan])
def test_sgimp_rewind_fraction_outside_0_1_raises(fraction):
    with pytest.raises(ValueError, match="rewind_fraction"):
        gimp.sgimp(100, 0.1, rewind_fraction=fraction)


def test_stable_weight_rewinding_point_must_lie_within_training():
    with pytest.raises(ValueError, match="rewind_to"):
        gimp.stable_weight_rewinding(100, 0.1, rewind_to=101)


def test_presets_read_like_the_thesis_algorithms():
    T_ = 100
    assert gimp.finetune(T_, 0.1).replace(method="x") == gimp.GIMPConfig(
        T_, 0.1, rewind_steps=0, rewind_steps_lr=0, retrain_steps=T_, method="x")
    wr = gimp.weight_rewinding(T_, 0.1)
    assert (wr.rewind_steps, wr.rewind_steps_lr, wr.retrain) == (T_, T_, T_)
    assert wr.rewind_fraction == 1.0
    swr = gimp.stable_weight_rewinding(T_, 0.1, rewind_to=7)
    assert (swr.rewind_steps, swr.rewind_steps_lr, swr.retrain) == (93, 93, 93)
    lrr = gimp.lr_rewinding(T_, 0.1)
    assert (lrr.rewind_steps, lrr.rewind_steps_lr, lrr.retrain) == (0, T_, T_)
    assert lrr.rewind_fraction == 0.0
    sg = gimp.sgimp(T_, 0.1, rewind_fraction=0.75)
    assert (sg.rewind_steps, sg.rewind_steps_lr, sg.retrain) == (75, T_, T_)
    assert sg.rewind_fraction == 0.75
    assert gimp.sgimp(T_, 0.1, rewind_fraction=0) == lrr  # the same runs in the store
    assert gimp.sgimp(T_, 0.1, rewind_fraction=1) == wr
    assert gimp.one_shot(T_, 0.1, rewind_fraction=0.25).rewind_fraction == 0.25


def test_the_rewind_fraction_is_stored_in_the_config_and_checked_against_the_steps():
    assert gimp.run_config(tiny_setup(), gimp.sgimp(T, 0.3, rewind_fraction=0.5))[
        "method"]["rewind_fraction"] == 0.5
    with pytest.raises(ValueError, match="rewind_fraction"):
        gimp.GIMPConfig(100, 0.1, rewind_steps=10, rewind_fraction=0.5)


def test_numpy_scalars_are_accepted_as_plain_numbers():
    config = gimp.GIMPConfig(np.int64(100), np.float32(0.1), density_multiplier=np.float32(0.7),
                             rewind_steps=np.int64(0))
    assert config == gimp.GIMPConfig(100, 0.1, density_multiplier=0.7)
    assert type(config.density_multiplier) is float and type(config.train_steps) is int
    assert gimp.sgimp(np.int64(100), 0.1, rewind_fraction=np.float64(0.75)).rewind_steps == 75


def test_a_string_exclude_is_one_pattern_not_its_characters(digits, tmp_path):
    config = gimp.lr_rewinding(T, 0.5, exclude="classifier")
    assert config.exclude == ("classifier",)
    df = gimp.run(tiny_setup(), config, data=digits, store=tmp_path, progress=False)
    assert "classifier" not in df["layers"].iloc[-1]


def _never_trains(monkeypatch):
    calls = []
    monkeypatch.setattr(Trainer, "run", lambda self, *a, **k: calls.append(1))
    return calls


@pytest.mark.parametrize("exclude, match", [(["*"], "leaves no prunable layer"),
                                            (["nothing.*"], "matches no prunable layer")])
def test_an_exclude_that_leaves_nothing_to_prune_fails_before_training(
        exclude, match, digits, tmp_path, monkeypatch):
    calls = _never_trains(monkeypatch)
    with pytest.raises(ValueError, match=match):
        gimp.run(tiny_setup(), gimp.lr_rewinding(T, 0.5, exclude=exclude), data=digits,
                 store=tmp_path, progress=False)
    assert not calls and not any(tmp_path.iterdir())  # not even a folder for the bad run


def test_train_steps_other_than_the_schedule_length_fail_before_training(digits, tmp_path,
                                                                          monkeypatch):
    calls = _never_trains(monkeypatch)
    with pytest.raises(ValueError, match=r"train_steps=48 .*setup.train.steps=24"):
        gimp.run(tiny_setup(), gimp.lr_rewinding(2 * T, 0.5), data=digits, store=tmp_path,
                 progress=False)
    assert not calls and not any(tmp_path.iterdir())


def test_a_flipped_byte_in_a_checkpoints_mask_is_detected_and_recomputed(digits, tmp_path):
    config = gimp.lr_rewinding(T, 0.3)
    reference = gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "a", progress=False)
    gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "b", progress=False)
    run = next(runs.iter_runs(tmp_path / "b", "gimp"))
    for index in (3, 4):
        (run.path / f"record_{index:03d}.json").unlink()
    state = run.load_checkpoint(3)
    mask = next(k for k in state["model"] if k.endswith(masking.MASK))
    # rewrite the file with one mask entry flipped but the old checksum (a bit rot on disk)
    body = torch.load(run.path / "checkpoint_003.pt", weights_only=True)
    flat = body["state"]["model"][mask].view(-1)
    flat[0] = ~flat[0]
    torch.save(body, run.path / "checkpoint_003.pt")
    with pytest.warns(runs.CorruptRecordWarning, match="checksum"):
        again = gimp.run(tiny_setup(), config, data=digits, store=tmp_path / "b", progress=False)
    assert _comparable(again) == _comparable(reference)


def test_cumulative_steps_charges_each_level_all_the_training_before_it():
    records = pd.DataFrame({"method": ["wr"] * 3 + ["one_shot"] * 2,
                            "level": [0, 1, 2, 0, 1], "steps": [10, 10, 10, 10, 10]})
    out = gimp_runs.cumulative_steps(records)
    assert out["total_steps"].tolist() == [10, 20, 30, 10, 20]
    assert "total_steps" not in records  # a copy
    with pytest.raises(ValueError, match="level 0"):
        gimp_runs.cumulative_steps(records.iloc[1:])
    with pytest.raises(ValueError, match="steps"):
        gimp_runs.cumulative_steps(records.drop(columns="steps"))


def test_run_many_labels_every_run_and_seed(digits, tmp_path):
    setup = tiny_setup()
    runs_ = {"LRR": (setup, gimp.lr_rewinding(T, 0.5)), "FT": (setup, gimp.finetune(T, 0.5))}
    df = gimp.run_many(runs_, [0, 1], label="algorithm", data=digits, store=tmp_path,
                       progress=False)
    assert sorted(set(zip(df["algorithm"], df["seed"]))) == [("FT", 0), ("FT", 1), ("LRR", 0),
                                                            ("LRR", 1)]
    with pytest.raises(ValueError, match="seeds"):
        gimp.run_many(runs_, [2**64], data=digits, store=tmp_path)


def test_data_for_another_dataset_is_refused(digits, tmp_path):
    setup = Setup("mlp", "mnist5k", TrainConfig(schedules.resnet(T)))
    with pytest.raises(ValueError, match="digits"):
        gimp.run(setup, gimp.lr_rewinding(T, 0.5), data=digits, store=tmp_path, progress=False)


def test_at_densities_finds_levels_that_differ_only_in_the_last_bits():
    records = pd.DataFrame({"target_density": [1.0, 0.7, 0.49, 0.7**18 * (1 + 1e-15)]})
    found = gimp_runs.at_densities(records, [0.7**18, 0.49])
    assert found.index.tolist() == [2, 3]
    with pytest.raises(ValueError, match="target_density"):
        gimp_runs.at_densities(pd.DataFrame({"density": [1.0]}), [0.5])


# --------------------------------------------------------------------------------------
# gimp.loop and gimp.level: Algorithm 5 on one screen, the same as the stored runs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgimp", "finetune"])
def test_the_loop_in_memory_gives_the_stored_runs_records(name, digits, tmp_path):
    """The store calls the same level, from checkpoints: every field but the wall time agrees."""
    setup, config = tiny_setup("convnet" if name == "sgimp" else "lenet300"), PRESETS[name]
    stored = gimp.run(setup, config, data=digits, store=tmp_path, progress=False)
    seen = []
    looped = gimp.loop(setup.build_model(digits), digits, config, train=setup.train,
                       seed=setup.seed, progress=False, on_level=seen.append)
    assert _comparable(looped) == _comparable(stored.drop(columns=["method", "seed"]))
    assert [r["level"] for r in seen] == list(range(len(config.densities())))


def _body_lines(function) -> int:
    """Lines of a function's body after its docstring, blank lines included."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    first = tree.body[1] if isinstance(tree.body[0], ast.Expr) else tree.body[0]
    return tree.body[-1].end_lineno - first.lineno + 1


def test_loop_and_level_each_fit_on_one_screen():
    assert _body_lines(gimp.loop) <= 25
    assert _body_lines(gimp.level) <= 35


def test_the_loop_refuses_an_exclude_that_leaves_nothing_to_prune(digits):
    model = tiny_setup().build_model(digits)
    config = gimp.lr_rewinding(T, 0.5).replace(exclude=("*",))
    with pytest.raises(ValueError, match="exclude"):
        gimp.loop(model, digits, config, train=tiny_setup().train, progress=False)


def _momentum_after_first_step(config, digits, start):
    """Level 1 from ``start``, stopped after its first step: the momentum buffers by name."""
    setup = tiny_setup()
    model = setup.masked_model(digits, state=start["model"])
    seen = {}

    def grab(event):
        if event.step == 1:
            seen.update(event.trainer.optimizer_state())

    gimp.level(model, digits, config.replace(retrain_steps=1), 1, train=setup.train,
               start=start, seed=setup.seed, on_step=(1, grab))
    return {name: state["momentum_buffer"] for name, state in seen.items()}


@pytest.mark.parametrize("preset", ["lr_rewinding", "sgimp"])
def test_carry_optimizer_brings_back_the_momentum_of_the_rewind_point(preset, digits):
    setup = tiny_setup()
    config = PRESETS[preset].replace(carry_optimizer=True)
    model = setup.masked_model(digits)
    _, start = gimp.level(model, digits, config, 0, train=setup.train, seed=setup.seed)
    start = {**start, "model": runs.cpu_state(model.state_dict())}

    # the momentum the trainer had at the rewind point, replayed by hand
    hand = setup.masked_model(digits)
    trainer = Trainer(hand, digits, setup.train, seed=seeding.derive(setup.seed, "gimp", 0),
                      progress=False)
    trainer.run(config.rewind_point(0))
    at_rewind = trainer.optimizer_state()
    assert at_rewind.keys() == start["optimizer"].keys()
    for name, state in at_rewind.items():
        assert torch.equal(state["momentum_buffer"], start["optimizer"][name]["momentum_buffer"])
        assert state["momentum_buffer"].abs().sum() > 0

    # level 1's first step: buf = mu * carried * mask + fresh step's buf; fresh without carry
    carried = _momentum_after_first_step(config, digits, start)
    fresh = _momentum_after_first_step(config.replace(carry_optimizer=False), digits, start)
    mu, masks = setup.train.momentum, masking.get_masks(
        setup.masked_model(digits, state=start["model"]))
    for name, buf in carried.items():
        layer = name.removesuffix(".weight")
        mask = masks[layer] if name.endswith(".weight") and layer in masks else 1.0
        expected = mu * start["optimizer"][name]["momentum_buffer"] * mask + fresh[name]
        torch.testing.assert_close(buf, expected)
    assert any(not torch.equal(carried[n], fresh[n]) for n in carried)


def test_by_default_every_level_starts_with_a_fresh_optimizer_and_the_hash_is_unchanged(digits):
    setup = tiny_setup()
    config = PRESETS["sgimp"]
    _, start = gimp.level(setup.masked_model(digits), digits, config, 0, train=setup.train)
    assert set(start) == {"position"}
    assert "carry_optimizer" not in config.to_dict()
    assert config.replace(carry_optimizer=True).to_dict()["carry_optimizer"] is True
    assert runs.config_hash(gimp.run_config(setup, config)) != runs.config_hash(
        gimp.run_config(setup, config.replace(carry_optimizer=True)))
    with pytest.raises(ValueError, match="carry_optimizer"):
        config.replace(carry_optimizer="yes")


def test_a_stored_run_that_carries_the_optimizer_resumes_from_its_checkpoints(digits, tmp_path):
    setup, config = tiny_setup(), gimp.sgimp(T, 0.3).replace(carry_optimizer=True)
    reference = gimp.run(setup, config, data=digits, store=tmp_path / "a", progress=False)
    gimp.run(setup, config, data=digits, store=tmp_path / "b", progress=False)
    run = next(runs.iter_runs(tmp_path / "b", "gimp"))
    assert "optimizer" in run.load_checkpoint(2)
    for level in (2, 3):
        (run.path / f"record_{level:03d}.json").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", runs.CorruptRecordWarning)  # its checkpoint is trusted
        again = gimp.run(setup, config, data=digits, store=tmp_path / "b", progress=False)
    assert _comparable(again) == _comparable(reference)
    looped = gimp.loop(setup.build_model(digits), digits, config, train=setup.train,
                       progress=False)
    assert _comparable(looped) == _comparable(reference.drop(columns=["method", "seed"]))
