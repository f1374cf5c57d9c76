"""Training Optimal Masks: the straight-through estimator, the clipping, the final mask."""

from __future__ import annotations

from pruninglab import data as data_module
from pruninglab import masking, profiles, reproduction, runs, schedules, tom
from pruninglab.core.train import TrainConfig
from pruninglab.experiments.config import Setup

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def digits():
    return data_module.load("digits")


def tiny_setup() -> Setup:
    return Setup("lenet300", "digits", TrainConfig(schedules.resnet(30), batch_size=32))


def test_the_straight_through_gradient_reaches_the_logits_clipped():
    logits = torch.zeros(1000, requires_grad=True)
    c = masking.bernoulli_ste(logits, clip=0.1, generator=torch.Generator().manual_seed(0))
    assert set(c.unique().tolist()) <= {0.0, 1.0}
    upstream = torch.linspace(-1.0, 1.0, 1000)
    (c * upstream).sum().backward()
    assert torch.equal(logits.grad, upstream.clamp(-0.1, 0.1))  # dL/dc, clipped, unchanged


def test_bernoulli_samples_follow_the_sigmoid_of_the_logits():
    logits = torch.full((20_000,), 2.0)
    c = masking.bernoulli_ste(logits, generator=torch.Generator().manual_seed(1))
    assert c.mean().item() == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item(), abs=0.01)


def test_mask_training_changes_only_the_logits_and_keeps_them_within_the_clip(digits):
    torch.manual_seed(0)
    model = tiny_setup().build_model(digits)
    masking.add_masks(model)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    config = tom.TOMConfig(30, 0.1, mask_lr=5.0, logit_clip=2.0, logit_init=1.0)
    trainer = tom.MaskTrainer(model, digits, config, batch_size=32)
    for _ in range(20):
        trainer.step()
    for b in trainer.logits.values():
        assert b.abs().max() <= 2.0
        assert (b.abs() == 2.0).any()  # the large step size hit the clip
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again for phase 4


def test_the_evaluation_mask_keeps_exactly_t_of_the_weights(digits):
    model = tiny_setup().build_model(digits)
    masking.add_masks(model)
    trainer = tom.MaskTrainer(model, digits, tom.TOMConfig(30, 0.1), batch_size=32)
    g = torch.Generator().manual_seed(0)
    for b in trainer.logits.values():
        b.data = torch.randn(b.shape, generator=g) * 5
    masks = trainer.final_masks(0.1)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.1 * total)
    # the kept ones are the largest logits
    flat_logits = torch.cat([trainer.logits[n].detach().flatten() for n in masks])
    flat_masks = torch.cat([m.flatten() for m in masks.values()])
    assert flat_logits[flat_masks].min() >= flat_logits[~flat_masks].max()


def test_ties_among_clipped_logits_fall_to_the_weight_magnitude(digits):
    model = tiny_setup().build_model(digits)
    masking.add_masks(model)
    trainer = tom.MaskTrainer(model, digits, tom.TOMConfig(30, 0.1), batch_size=32)
    masks = trainer.final_masks(0.05)  # every logit equal: global magnitude decides
    flat_w = torch.cat([trainer.layers[n].weight.detach().abs().flatten() for n in masks])
    flat_m = torch.cat([m.flatten() for m in masks.values()])
    assert flat_w[flat_m].min() >= flat_w[~flat_m].max()


def test_a_full_run_prunes_to_the_target_and_records_three_phases(digits, tmp_path):
    config = tom.TOMConfig(30, 0.2, mask_steps=10)
    df = tom.run(tiny_setup(), config, data=digits, store=tmp_path, progress=False)
    assert list(df["phase"]) == ["pretrain", "masks", "final"]
    assert df["density"].iloc[0] == 1.0
    assert df["density"].iloc[2] == pytest.approx(0.2, abs=1e-4)
    history = df["history"].iloc[1]
    assert len(history) == 10 and len(history[-1]["histogram"]) == len(tom.HIST_BINS) - 1
    assert df["total_steps"].iloc[0] == 3 + 10 + 30
    again = tom.run(tiny_setup(), config, data=digits, store=tmp_path, progress=False)
    assert again["test_accuracy"].tolist() == df["test_accuracy"].tolist()


def test_pruned_weights_stay_zero_through_the_final_training(digits, tmp_path):
    setup = tiny_setup()
    config = tom.TOMConfig(30, 0.2, mask_steps=5)
    tom.run(setup, config, data=digits, store=tmp_path, progress=False)
    run = next(runs.iter_runs(tmp_path, "tom"))
    state = run.load_checkpoint(2)["model"]
    for key, mask in state.items():
        if key.endswith(masking.MASK):
            assert torch.all(state[key.replace(masking.MASK, "weight")][~mask] == 0)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"target_density": 1.0}, "target_density"), ({"pretrain_fraction": 1.5}, "pretrain_fraction"),
     ({"penalty": "l3"}, "penalty"), ({"mask_lr": 0.0}, "mask_lr"),
     ({"final_weights": "best"}, "final_weights"), ({"mask_steps": 0}, "mask_steps"),
     ({"logit_init": 20.0}, "logit_init"), ({"mask_optimizer": "lbfgs"}, "mask_optimizer"),
     ({"price_growth": 0.0}, "price_growth"), ({"penalty_coef": -1.0}, "penalty_coef")],
)
def test_bad_tom_configs_raise_value_errors_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        tom.TOMConfig(**{"train_steps": 10, "target_density": 0.1, **kwargs})


def test_functional_forward_uses_masked_weights_without_changing_the_module():
    layer = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    mask = torch.zeros(3, 4)
    mask[0] = 1
    out = masking.functional_forward(nn.Sequential(layer), x, {"0": mask})
    expected = x @ (layer.weight * mask).T + layer.bias
    assert torch.allclose(out, expected)
    assert (layer.weight != 0).all()


def test_by_default_tom_costs_exactly_a_one_shot_run():
    config = tom.TOMConfig(400, 0.01)
    assert (config.pretrain_steps, config.mask_training_steps) == (40, 360)
    assert config.total_steps == 2 * 400  # one-shot: T of training + T of retraining


def test_the_logits_step_is_large_enough_to_reach_the_target_in_half_the_mask_steps():
    assert tom.TOMConfig(400, 0.01).logit_lr == 0.1  # 360 steps: Adam's 0.1 is enough
    few = tom.TOMConfig(40, 0.01)  # 36 mask steps: logit 3 to logit(0.01) = -4.6 in 18
    assert few.logit_lr == pytest.approx((3.0 + 4.595) / 18, rel=1e-3)
    assert tom.TOMConfig(40, 0.01, mask_lr=0.05).logit_lr == 0.05


def test_the_price_grows_while_the_density_stays_on_one_side_and_halves_when_it_crosses(
        digits):
    model = tiny_setup().build_model(digits)
    masking.add_masks(model)
    config = tom.TOMConfig(30, 0.1, mask_steps=100, price_growth=0.1, penalty_coef=1e-4)
    trainer = tom.MaskTrainer(model, digits, config, batch_size=32)
    masks = trainer.sample()
    kept = sum(float(c.sum()) for c in masks.values())
    assert trainer.above_target()  # every logit starts at 3: density 0.95
    assert float(trainer.penalty(masks)) == pytest.approx(1e-4 * kept)  # a price per weight
    factors = []
    for _ in range(60):
        above, price = trainer.above_target(), trainer.price
        trainer.step()
        factors.append((trainer.price / price, above == trainer.above_target()))
    for factor, same_side in factors:
        assert factor == pytest.approx(1.1 if same_side else 0.5)
    assert {same for _, same in factors} == {True, False}  # it grew, and it crossed t
    for b in trainer.logits.values():
        b.data.fill_(-10.0)  # far below the target
    assert not trainer.above_target()
    assert float(trainer.penalty(masks)) < 0  # below t the price rewards kept weights


def test_a_fixed_l1_penalty_does_not_aim_at_the_target(digits):
    model = tiny_setup().build_model(digits)
    masking.add_masks(model)
    config = tom.TOMConfig(30, 0.1, penalty="l1")
    trainer = tom.MaskTrainer(model, digits, config, batch_size=32)
    expected = 1e-3 * sum(float(torch.sigmoid(b).sum()) for b in trainer.logits.values())
    assert float(trainer.penalty(trainer.sample())) == pytest.approx(expected, rel=1e-5)


def test_notebook_07_compares_at_iterative_levels_and_the_collapse_density():
    quick = profiles.get("quick")
    densities = tom.compared_densities(quick)
    assert densities == pytest.approx([0.7**6, 0.7**9, 0.01, 0.7**18])
    assert tom.compared_densities(quick, wanted=[0.05], collapse=0.7**19) == pytest.approx(
        [0.7**8, 0.7**19])
    assert tom.compared_densities(profiles.get("full")) == pytest.approx(
        [0.7**13, 0.7**15, 0.001])  # no collapse density: already in that regime
    with pytest.raises(ValueError, match="collapse"):
        tom.compared_densities(quick, collapse=1.5)


def test_mask_training_ends_within_a_factor_1_5_of_every_smoke_target(tmp_path):
    smoke = profiles.get("smoke")
    setup = smoke.setup()
    data = setup.load_data()
    for density in tom.compared_densities(smoke):
        df = tom.run(setup, tom.TOMConfig(setup.train.steps, density), data=data,
                     store=tmp_path, progress=False)
        history = df.set_index("phase").loc["masks", "history"]
        end = history[-1]["expected_density"]
        assert density / 1.5 <= end <= 1.5 * density, (density, end)
        assert history[-1]["price"] > 0


def test_the_committed_quick_tom_runs_end_mask_training_near_their_targets():
    masks = runs.load(reproduction.packaged_results("quick"), kind="tom")
    masks = masks[masks["phase"] == "masks"]
    assert masks["run"].nunique() >= 12  # 4 densities x 3 seeds on mnist5k
    for run, target, history in zip(masks["run"], masks["method.target_density"],
                                    masks["history"]):
        end = history[-1]["expected_density"]
        assert target / 1.5 <= end <= 1.5 * target, (run, target, end)


@pytest.mark.parametrize("final_weights", ["pretrained", "init"])
def test_the_phases_in_memory_give_the_stored_runs_records(digits, tmp_path, final_weights):
    setup = tiny_setup()
    config = tom.TOMConfig(30, 0.2, mask_steps=6, final_weights=final_weights)
    stored = tom.run(setup, config, data=digits, store=tmp_path, progress=False)
    model = setup.masked_model(digits)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    rows = [tom.pretrain(model, digits, config, train=setup.train, seed=setup.seed),
            tom.train_masks(model, digits, config, batch_size=setup.train.batch_size,
                            seed=setup.seed),
            tom.final_training(model, digits, config, train=setup.train, seed=setup.seed,
                               initial=initial)]
    for ours, theirs in zip(rows, stored.to_dict("records")):
        assert ours == {k: theirs[k] for k in ours}


def test_the_phases_refuse_what_they_cannot_use(digits):
    setup = tiny_setup()
    config = tom.TOMConfig(30, 0.2, mask_steps=2, final_weights="init")
    with pytest.raises(ValueError, match="no masks"):
        tom.MaskTrainer(setup.build_model(digits), digits, config, batch_size=32)
    with pytest.raises(ValueError, match="eval_every"):
        tom.train_masks(setup.masked_model(digits), digits, config, batch_size=32,
                        eval_every=-3)
    with pytest.raises(ValueError, match='final_weights="init" needs initial='):
        tom.final_training(setup.masked_model(digits), digits, config, train=setup.train)
    model = setup.build_model(digits)  # no masks yet: pretraining adds them
    assert tom.pretrain(model, digits, config, train=setup.train)["density"] == 1.0
