"""The training loop: it learns, it is deterministic, L2 has the thesis's meaning, the
schedule position is explicit, callbacks fire when promised, masks hold, bad input fails."""

from __future__ import annotations

from pruninglab import masking, models, profiles, schedules
from pruninglab.core.schedules import Schedule
from pruninglab.core.train import (
    TrainConfig,
    Trainer,
    evaluate,
    evaluate_splits,
    kernels,
    resolve_device,
)

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn


@pytest.fixture(scope="module")
def quick_run(mnist5k):
    """The quick profile's setup (thesis MLP, mnist5k, T steps of the ResNet-shaped schedule),
    trained once; returns the events of a callback every 25 steps, the result and the test
    metrics before and after."""
    setup = profiles.get("quick").setup()
    model = setup.build_model(mnist5k)
    before = evaluate(model, mnist5k.x_test, mnist5k.y_test)
    events = []
    trainer = Trainer(model, mnist5k, setup.train, seed=setup.seed, progress=False)
    result = trainer.run(setup.train.steps, callbacks=[(25, events.append)])
    after = evaluate(model, mnist5k.x_test, mnist5k.y_test)
    return {"setup": setup, "events": events, "result": result, "before": before, "after": after}


def test_training_lowers_the_loss_on_mnist5k(quick_run):
    events = quick_run["events"]
    assert events[-1].loss < 0.5 * events[0].loss
    assert quick_run["after"]["loss"] < 0.5 * quick_run["before"]["loss"]
    assert quick_run["after"]["accuracy"] > 0.5  # chance is 0.1


def test_thesis_mlp_reaches_90_percent_on_mnist5k_with_the_quick_profile(quick_run):
    setup = quick_run["setup"]
    assert (setup.model, setup.dataset) == ("mlp", "mnist5k")
    assert quick_run["result"]["steps"] == setup.train.steps
    assert quick_run["after"]["accuracy"] >= 0.90


def train_tiny(digits, seed: int, steps: int = 15) -> nn.Module:
    torch.manual_seed(0)
    model = models.create("lenet300", in_channels=1, num_classes=10, input_size=8)
    config = TrainConfig(schedules.constant(0.05, steps), batch_size=32)
    Trainer(model, digits, config, seed=seed, progress=False).run(steps)
    return model


def test_training_on_cpu_is_deterministic_for_a_seed(digits):
    a, b, c = train_tiny(digits, 0), train_tiny(digits, 0), train_tiny(digits, 1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)  # the seed orders the batches


def test_l2_decays_only_conv_and_linear_kernels_with_twice_the_coefficient(digits):
    model = models.create("convnet", in_channels=1, num_classes=10, input_size=8)
    config = TrainConfig(schedules.constant(0.1, 10), batch_size=16, l2=3e-4)
    trainer = Trainer(model, digits, config, progress=False)
    decayed = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] > 0
               for p in g["params"]}
    expected = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert decayed == expected
    assert {g["weight_decay"] for g in trainer.optimizer.param_groups} == {6e-4, 0.0}
    everything = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert everything == {id(p) for p in model.parameters()}
    assert {id(p) for p in kernels(model)} == expected


class Tiny(nn.Module):
    """conv (with bias) -> ReLU -> BN -> linear: kernels, biases and BN affine parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(self.bn(torch.relu(self.conv(x))).flatten(1))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_step_minimizes_loss_plus_l2_times_the_squared_kernels(toy_data, optimizer):
    data = toy_data(n=8)
    torch.manual_seed(0)
    model = Tiny()
    start = copy.deepcopy(model)
    lr, l2 = 0.1, 0.05
    config = TrainConfig(schedules.constant(lr, 1), batch_size=8, l2=l2, optimizer=optimizer)
    Trainer(model, data, config, progress=False).run(1)

    # the thesis's objective: cross-entropy + l2 * (sum of squared Conv/Linear kernels)
    loss = F.cross_entropy(start(data.x_train), data.y_train)  # batch = the whole set
    loss = loss + l2 * (start.conv.weight.pow(2).sum() + start.fc.weight.pow(2).sum())
    grads = torch.autograd.grad(loss, list(start.parameters()))
    for (name, p0), g, (_, p1) in zip(start.named_parameters(), grads,
                                      model.named_parameters()):
        if optimizer == "sgd":  # first SGD step: the momentum buffer is the gradient
            expected = p0 - lr * g
        else:  # first Adam step moves every coordinate by lr * sign(g)
            expected = p0 - lr * g / (g.abs() + 1e-8)
        assert torch.allclose(p1, expected, atol=1e-6), name


def test_schedule_position_advances_by_steps_and_sets_the_lr(toy_data):
    data = toy_data(n=16)
    schedule = Schedule(10, (5,), (0.1, 0.01))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    trainer = Trainer(model, data, TrainConfig(schedule, batch_size=4), progress=False)
    events = []
    result = trainer.run(8, callbacks=[(1, events.append)])
    assert [e.position for e in events] == list(range(1, 9))
    assert [e.step for e in events] == list(range(1, 9))
    # the step that moves the position from p to p + 1 uses the rate at p
    assert [e.lr for e in events] == [0.1] * 5 + [0.01] * 3
    assert trainer.position == result["position"] == 8
    assert trainer.optimizer.param_groups[0]["lr"] == 0.01

    trainer.position = 2  # rewinding the schedule is plain assignment
    events.clear()
    trainer.run(4, callbacks=[(1, events.append)])
    assert [e.lr for e in events] == [0.1, 0.1, 0.1, 0.01]
    assert trainer.position == 6 and trainer.steps_done == 12

    late = Trainer(model, data, TrainConfig(schedule, batch_size=4), position=50, progress=False)
    late.run(1, callbacks=[(1, events.append)])
    assert events[-1].lr == 0.01 and late.position == 51  # past the end: the final rate


def test_callbacks_fire_every_k_steps_and_after_the_last(toy_data):
    data = toy_data(n=16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    trainer = Trainer(model, data, TrainConfig(schedules.constant(0.1, 10), batch_size=4),
                      progress=False)
    every3, every20 = [], []
    trainer.run(10, callbacks=[(3, lambda e: every3.append(e.step)),
                               (20, lambda e: every20.append(e.step))])
    assert every3 == [3, 6, 9, 10]
    assert every20 == [10]


def test_callback_reports_window_averages_and_the_trainer(toy_data):
    data = toy_data(n=16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    trainer = Trainer(model, data, TrainConfig(schedules.constant(0.1, 10), batch_size=4),
                      progress=False)
    events = []
    result = trainer.run(6, callbacks=[(2, events.append)])
    assert all(e.trainer is trainer for e in events)
    assert all(0.0 <= e.accuracy <= 1.0 and e.loss > 0 for e in events)
    mean_loss = sum(e.loss for e in events) / len(events)  # equal windows of 2 steps
    assert result["loss"] == pytest.approx(mean_loss)


def test_masked_weights_stay_exactly_zero_through_training(digits):
    torch.manual_seed(0)
    model = models.create("lenet300", in_channels=1, num_classes=10, input_size=8)
    masking.add_masks(model)
    masks = {name: torch.rand(layer.weight.shape) < 0.3
             for name, layer in masking.masked_layers(model).items()}
    masking.set_masks(model, masks)
    config = TrainConfig(schedules.constant(0.1, 20), batch_size=32, l2=1e-3)
    Trainer(model, digits, config, progress=False).run(20)
    for name, layer in masking.masked_layers(model).items():
        assert torch.all(layer.weight[~masks[name]] == 0), name
        assert torch.any(layer.weight[masks[name]] != 0), name


def test_evaluate_returns_loss_and_accuracy_and_restores_the_mode(toy_data):
    data = toy_data(n=8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    model.train()
    metrics = evaluate(model, data.x_test, data.y_test, batch_size=3)
    with torch.no_grad():
        logits = model(data.x_test)
    assert metrics["loss"] == pytest.approx(float(F.cross_entropy(logits, data.y_test)), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(
        float((logits.argmax(1) == data.y_test).float().mean()))
    assert model.training


def test_evaluate_splits_evaluates_each_split_and_only_the_first_max_train_images(toy_data):
    data = toy_data(n=8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    out = evaluate_splits(model, data, max_train=5)
    assert list(out) == ["test_loss", "test_accuracy", "train_loss", "train_accuracy"]
    test = evaluate(model, data.x_test, data.y_test)
    train = evaluate(model, data.x_train[:5], data.y_train[:5])
    assert (out["test_loss"], out["test_accuracy"]) == (test["loss"], test["accuracy"])
    assert (out["train_loss"], out["train_accuracy"]) == (train["loss"], train["accuracy"])
    with_val = copy.copy(data)
    with_val.x_val, with_val.y_val = data.x_train[:3], data.y_train[:3]
    out = evaluate_splits(model, with_val, splits=("val", "test"))
    assert list(out) == ["test_loss", "test_accuracy", "val_loss", "val_accuracy"]
    assert out["val_accuracy"] == evaluate(model, data.x_train[:3], data.y_train[:3])["accuracy"]


@pytest.mark.parametrize("kwargs, arg", [({"max_train": 0}, "max_train"),
                                         ({"max_train": 2.5}, "max_train"),
                                         ({"splits": "test"}, "splits"),
                                         ({"splits": ("test", "holdout")}, "splits")])
def test_evaluate_splits_rejects_bad_arguments_naming_them(toy_data, kwargs, arg):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match=arg):
        evaluate_splits(model, toy_data(n=8), **kwargs)


@pytest.mark.parametrize(
    "kwargs, arg",
    [({"batch_size": 0}, "batch_size"), ({"batch_size": 2.0}, "batch_size"),
     ({"optimizer": "rmsprop"}, "optimizer"), ({"momentum": 1.0}, "momentum"),
     ({"momentum": -0.1}, "momentum"), ({"l2": -1e-4}, "l2"), ({"schedule": 0.1}, "schedule")],
)
def test_bad_train_config_raises_value_error_naming_the_field(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        TrainConfig(**{"schedule": schedules.constant(0.1, 10), **kwargs})


def test_bad_trainer_arguments_raise_value_error_naming_them(toy_data):
    data = toy_data(n=8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    config = TrainConfig(schedules.constant(0.1, 10), batch_size=4)
    with pytest.raises(ValueError, match="position"):
        Trainer(model, data, config, position=-1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(model, data, TrainConfig(schedules.constant(0.1, 10), batch_size=9))
    trainer = Trainer(model, data, config, progress=False)
    with pytest.raises(ValueError, match="steps"):
        trainer.run(-1)
    with pytest.raises(ValueError, match="callback"):
        trainer.run(2, callbacks=[(0, print)])
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, data.x_test[:0], data.y_test[:0])


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            resolve_device("cuda")


def test_running_means_weigh_each_run_by_its_steps(digits):
    torch.manual_seed(0)
    model = models.create("lenet300", in_channels=1, num_classes=10, input_size=8)
    trainer = Trainer(model, digits, TrainConfig(schedules.constant(0.05, 20), batch_size=32),
                      progress=False)
    assert trainer.running_means()["steps"] == 0
    first, empty, rest = trainer.run(4), trainer.run(0), trainer.run(12)
    means = trainer.running_means()
    assert means["steps"] == 16 and means["position"] == rest["position"] == 16
    assert means["loss"] == pytest.approx((4 * first["loss"] + 12 * rest["loss"]) / 16)
    assert means["accuracy"] == pytest.approx(
        (4 * first["accuracy"] + 12 * rest["accuracy"]) / 16)
    assert empty["steps"] == 0


def test_optimizer_state_is_saved_by_parameter_name_and_restored(digits):
    config = TrainConfig(schedules.constant(0.05, 20), batch_size=32)
    torch.manual_seed(0)
    model = models.create("lenet300", in_channels=1, num_classes=10, input_size=8)
    trainer = Trainer(model, digits, config, progress=False)
    fresh = trainer.optimizer_state()
    assert set(fresh) == {name for name, _ in model.named_parameters()}
    assert all(not s["momentum_buffer"].any() for s in fresh.values())  # zeros: no steps yet
    trainer.run(5)
    saved = trainer.optimizer_state()
    other = Trainer(copy.deepcopy(model), digits, config, progress=False)
    other.load_optimizer_state(saved)
    assert all(torch.equal(other.optimizer_state()[n]["momentum_buffer"], s["momentum_buffer"])
               for n, s in saved.items())
    with pytest.raises(ValueError, match="lacks"):
        other.load_optimizer_state({"fc.weight": saved[next(iter(saved))]})
