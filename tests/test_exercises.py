"""pl.exercises: the reference passes, stubs are "not done yet", plausible mistakes fail
with a hint that names them, and check never raises."""

from __future__ import annotations

import pruninglab as pl
from pruninglab import exercises

import math
import re

import pytest
import torch

IDS = exercises.names()


def run_check(capsys, id, answer):
    result = exercises.check(id, answer)
    return result, capsys.readouterr().out


@pytest.fixture(autouse=True)
def stubs_stay_stubs(monkeypatch):
    monkeypatch.delenv(exercises.FILL_VARIABLE, raising=False)


COURSE_NOTEBOOKS = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "10")


def test_there_are_at_least_twenty_five_exercises_in_course_order():
    assert len(IDS) >= 25
    assert sorted(IDS) == IDS
    assert {i[:2] for i in IDS} == set(COURSE_NOTEBOOKS)
    assert all(len(exercises.names(nb)) >= 2 for nb in COURSE_NOTEBOOKS)


@pytest.mark.parametrize("id", IDS)
def test_the_reference_passes(capsys, id):
    result, out = run_check(capsys, id, exercises.solution(id))
    assert result is True
    assert out.startswith(f"✓ {id} passed")


@pytest.mark.parametrize("id", IDS)
def test_None_and_ellipsis_are_not_done_yet(capsys, id):
    for stub in (None, ...):
        result, out = run_check(capsys, id, stub)
        assert result is False and "not done yet" in out


@pytest.mark.parametrize("id", IDS)
def test_a_stub_that_raises_NotImplementedError_is_not_done_yet(capsys, id):
    def stub(*args, **kwargs):
        raise NotImplementedError

    result, out = run_check(capsys, id, stub)
    assert result is False and "not done yet" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("id", [i for i in IDS if exercises._get(i).cases is not None])
def test_a_function_whose_body_is_an_ellipsis_is_not_done_yet(capsys, id):
    def stub(**kwargs):
        ...

    result, out = run_check(capsys, id, stub)
    assert result is False and "not done yet" in out


@pytest.mark.parametrize("id", [i for i in IDS if exercises._get(i).cases is not None])
def test_an_answer_that_raises_gets_the_one_line_message_and_False(capsys, id):
    def broken(**kwargs):
        raise ZeroDivisionError("division by zero\nsecond line")

    result, out = run_check(capsys, id, broken)
    assert result is False
    assert "raised ZeroDivisionError: division by zero" in out
    assert "second line" not in out and "Traceback" not in out


# A plausible mistake per exercise, written here as a student might (not taken from the
# module), and a word the hint must contain.
def _top(scores, k):
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    keep[scores.flatten().topk(k).indices] = True
    return keep.view_as(scores)


PLANTED = {
    "01.1": (lambda y, w, b: (y * w).sum(dim=1) + b, "no ReLU"),
    "01.2": (lambda n_in, n_out: n_in * n_out, "forgot the biases"),
    "01.3": (lambda widths: sum((widths[i] + 1) * widths[i + 1]
                                for i in range(len(widths) - 2)), "off by one"),
    "02.1": (lambda size, kernel, stride, padding: (size + 2 * padding - kernel) // stride,
             "off by one"),
    "02.2": (lambda c_in, c_out, kernel, bias: c_out * kernel * kernel + (c_out if bias else 0),
             "input channels"),
    "03.1": (lambda old, new, momentum: old * momentum + new * (1 - momentum),
             "TensorFlow's convention"),
    "03.2": (0.997, "TensorFlow's convention"),
    "03.3": (lambda x, eps: (x - x.mean(dim=(0, 2, 3), keepdim=True))
             / torch.sqrt(x.var(dim=(0, 2, 3), keepdim=True) + eps), "unbiased variance"),
    "03.4": (lambda x, running_mean, running_var, gamma, beta, eps:
             gamma.view(1, -1, 1, 1) * (x - x.mean(dim=(0, 2, 3), keepdim=True))
             / torch.sqrt(x.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + eps)
             + beta.view(1, -1, 1, 1), "the batch's statistics"),
    "04.1": (lambda weight, density: _top(weight.abs(), int(density * weight.numel())),
             "rounded down instead of to nearest"),
    "04.2": (lambda masks: sum(m.float().mean() for m in masks) / len(masks),
             "averaged the layers' densities"),
    "04.3": (lambda weights, density: [_top(w.abs(), round(density * w.numel()))
                                       for w in weights], "layerwise instead of global"),
    "05.1": (lambda K, target: _unclamped_densities(K, target), "not clamped"),
    "05.2": (lambda T, rewind_steps_lr, levels: [0] + [rewind_steps_lr] * (levels - 1),
             "*to* rewind_steps_lr instead of *by* it"),
    "06.1": (lambda T, percent: int(T * percent / 100), "*to* X % instead of *by* X %"),
    "06.2": (lambda schedule, rewind_steps_lr: schedule(schedule.steps),
             "the rewind ignored"),
    "07.1": (lambda logits, grad_c, lr, clip, logit_clip:
             torch.clamp(logits + lr * torch.clamp(grad_c, -clip, clip), -logit_clip,
                         logit_clip), "a step up the gradient"),
    "07.2": (lambda logits: float(torch.cat([(b > 0).float().flatten() for b in logits]).mean()),
             "counted the logits above 0"),
    "08.1": (lambda fan_in, fan_out: fan_in ** -0.5, "PyTorch's default bound"),
    "08.2": (lambda mask, image_shape: mask.logical_not().sum(dim=0).view(*image_shape),
             "counted the pruned connections"),
    "08.3": (lambda weight, mask, order: _send_to(weight, mask, order), "inverse permutation"),
    "09.1": (lambda old, new, mu, steps: (1 - mu) ** steps * old + (1 - (1 - mu) ** steps) * new,
             "PyTorch's convention"),
    "09.2": (lambda mu, fraction: int(math.log(fraction) / math.log(mu)), "rounded down"),
    "10.1": (lambda mask, size, stride, padding: mask.numel()
             * ((size + 2 * padding - mask.shape[-1]) // stride + 1) ** 2,
             "counted the pruned weights too"),
    "10.2": (lambda mask, value_bytes, index_bytes: int(mask.sum()) * (value_bytes + index_bytes),
             "forgot the row pointers"),
    "10.3": (lambda rows, cols, value_bytes, index_bytes: value_bytes / (value_bytes + index_bytes),
             "forgot the row pointers"),
}


def _send_to(weight, mask, order):
    """08.3 the wrong way round: the i-th kept value goes to the order[i]-th kept position."""
    out = weight.clone()
    positions = mask.flatten().nonzero().flatten()
    out.view(-1)[positions[order]] = weight.flatten()[positions]
    return out


def _unclamped_densities(K, target):
    densities = [1.0]
    while densities[-1] > target:
        densities.append(densities[-1] * K)
    return densities


def test_every_exercise_has_a_planted_mistake():
    assert set(PLANTED) == set(IDS)


@pytest.mark.parametrize("id", IDS)
def test_a_plausible_mistake_fails_with_a_hint_naming_it(capsys, id):
    answer, named = PLANTED[id]
    result, out = run_check(capsys, id, answer)
    assert result is False
    assert out.startswith(f"✗ {id}")
    assert named in out


@pytest.mark.parametrize("id, mistake", [
    pytest.param(e.id, m, id=f"{e.id} {m.name}") for e in exercises._EXERCISES.values()
    for m in e.mistakes])
def test_every_known_mistake_is_told_apart_by_the_inputs(capsys, id, mistake):
    result, out = run_check(capsys, id, mistake.answer)
    assert result is False
    assert f"Looks like: {mistake.name}." in out


def test_a_wrong_axis_is_named_in_the_shape_hint(capsys):
    result, out = run_check(capsys, "01.1", lambda y, w, b: torch.relu((y * w).sum(dim=0) + b))
    assert result is False
    assert "expected shape (5,), got" in out and "axis" in out


def test_an_unknown_mistake_names_the_first_input_on_which_it_differs(capsys):
    result, out = run_check(capsys, "02.1", lambda size, kernel, stride, padding: 7)
    assert result is False
    assert "conv_output_size(size=32, kernel=3, stride=2, padding=1): expected 16, got 7" in out
    assert "Looks like" not in out


def test_a_count_must_be_an_int_not_a_float(capsys):
    result, out = run_check(capsys, "01.2", lambda n_in, n_out: float((n_in + 1) * n_out))
    assert result is False and "expected the int 314,000, got the float 314000.0" in out


def test_a_mask_must_be_bool_and_its_count_is_reported(capsys):
    result, out = run_check(capsys, "04.1", lambda weight, density: weight.abs().float())
    assert result is False and "expected a bool mask" in out
    result, out = run_check(capsys, "04.1", lambda weight, density: weight.abs() > 0.5)
    assert result is False and "keeps 50 of 84 entries, expected 26" in out


def test_a_zero_dim_tensor_counts_as_a_number(capsys):
    def density(masks):
        return sum(m.sum() for m in masks) / sum(m.numel() for m in masks)

    assert exercises.check("04.2", density)


def test_an_answer_that_changes_its_inputs_in_place_cannot_change_the_reference(capsys):
    def in_place(weight, density):
        k = round(density * weight.numel())
        weight.abs_()  # a student's in-place edit of the input
        return _top(weight, k)

    assert exercises.check("04.1", in_place)


def test_hints_are_the_same_every_time(capsys):
    first = run_check(capsys, "03.3", PLANTED["03.3"][0])
    second = run_check(capsys, "03.3", PLANTED["03.3"][0])
    assert first == second


def test_a_value_exercise_refuses_a_function(capsys):
    result, out = run_check(capsys, "03.2", lambda: 0.003)
    assert result is False and "should be a value, not a function" in out


def test_an_unknown_id_lists_the_known_ones_without_raising(capsys):
    result, out = run_check(capsys, "4.1", None)
    assert result is False
    assert "no exercise '4.1'" in out and "01.1" in out and "04.3" in out


@pytest.mark.parametrize("function", [exercises.describe, exercises.solution])
def test_describe_and_solution_raise_a_clear_error_for_an_unknown_id(function):
    with pytest.raises(ValueError, match=r"no exercise '99.9'; the exercises are 01.1, "):
        function("99.9")


def test_describe_gives_the_signature_and_the_task():
    text = exercises.describe("04.1")
    assert text.startswith("04.1 · magnitude_mask(weight, density): ")
    assert "round(density·N)" in text


def test_names_keeps_one_notebooks_exercises_and_checks_its_argument():
    assert exercises.names("02") == ["02.1", "02.2"]
    with pytest.raises(ValueError, match="notebook must be two digits such as '04', got 4"):
        exercises.names(4)


def test_headless_runs_check_the_reference_in_place_of_a_stub(capsys, monkeypatch):
    monkeypatch.setenv(exercises.FILL_VARIABLE, "1")
    result, out = run_check(capsys, "01.2", None)
    assert result is True
    assert out.startswith("✓ 01.2 not done yet; this headless run")
    assert "passed" in out
    # a real answer is still checked as it is
    result, out = run_check(capsys, "01.2", PLANTED["01.2"][0])
    assert result is False and "forgot the biases" in out


def test_a_bad_fill_variable_is_reported_not_raised(capsys, monkeypatch):
    monkeypatch.setenv(exercises.FILL_VARIABLE, "yes")
    result, out = run_check(capsys, "01.2", None)
    assert result is False and "PRUNINGLAB_FILL_EXERCISES must be 0 or 1, got 'yes'" in out


def test_the_package_exposes_the_module():
    assert pl.exercises is exercises


def test_a_result_that_cannot_be_compared_is_reported_not_raised(capsys):
    class Unmeasurable(list):
        def __len__(self):
            raise RuntimeError("no length")

    result, out = run_check(capsys, "04.3", lambda weights, density: Unmeasurable())
    assert result is False
    assert "04.3 could not check the answer: RuntimeError: no length" in out


# The references of notebooks 05-07 are the library's own algorithms, not copies of them.


def test_05_and_06_references_follow_the_gimp_config():
    from pruninglab import gimp

    config = gimp.sgimp(400, 0.01, rewind_fraction=0.75)
    assert exercises.solution("05.1")(K=0.7, target=0.01) == config.densities()
    assert exercises.solution("06.1")(T=400, percent=75) == config.rewind_point(1) == 100
    starts = [first for _, first, _ in gimp.schedule_trace(gimp.finetune(400, 0.01), 3)]
    assert exercises.solution("05.2")(T=400, rewind_steps_lr=0, levels=3) == starts
    assert starts == [0, 400, 800]  # fine-tuning reads its schedule past the end


def test_07_1_reference_is_the_mask_trainers_sgd_step(digits):
    from pruninglab import masking, schedules, tom
    from pruninglab.core.train import TrainConfig
    from pruninglab.experiments.config import Setup

    torch.manual_seed(0)
    model = Setup("mlp", "digits", TrainConfig(schedules.resnet(40), batch_size=32)
                  ).build_model(digits)
    masking.add_masks(model)
    config = tom.TOMConfig(40, 0.1, mask_optimizer="sgd", mask_momentum=0.0, mask_lr=1e4,
                           penalty_coef=0.0, logit_clip=3.2, logit_init=3.0)
    trainer = tom.MaskTrainer(model, digits, config, batch_size=32)
    before = {name: b.detach().clone() for name, b in trainer.logits.items()}
    trainer.step()
    step = exercises.solution("07.1")
    for name, b in trainer.logits.items():
        grad_c = b.grad  # dL/dc of the sampled mask, as bernoulli_ste handed it on
        expected = step(logits=before[name], grad_c=grad_c, lr=1e4, clip=0.1, logit_clip=3.2)
        torch.testing.assert_close(b.detach(), expected)
    assert any((b == 3.2).any() and (b < 3.0).any() for b in trainer.logits.values())  # both ways


def test_07_2_reference_is_the_mask_trainers_expected_density():
    from pruninglab import tom

    logits = [torch.full((10, 10), 0.0), torch.full((300,), 20.0)]
    # 100 weights kept with probability 1/2 and 300 with probability ~1: (50 + 300) / 400,
    # not 0.75, the mean of the two layers' means
    assert tom.expected_density(logits) == pytest.approx(0.875, abs=1e-6)
    assert exercises.solution("07.2") is tom.expected_density


# The references of notebooks 08-10 are the library's own functions, not copies of them.


def test_08_1_bound_is_the_range_keras_init_draws_from():
    from pruninglab import models

    layer = torch.nn.Linear(784, 400)
    torch.manual_seed(0)
    models.init_layer(layer, "keras")
    bound = exercises.solution("08.1")(fan_in=784, fan_out=400)
    largest = float(layer.weight.detach().abs().max())
    assert 0.999 * bound < largest <= bound  # 313,600 draws reach the edge, none beyond it


def test_08_2_reference_counts_what_figure_3_11_draws():
    mask = torch.tensor([[True, False, True, True], [False, False, True, True]])
    expected = torch.tensor([[1, 0], [2, 2]])
    assert torch.equal(exercises.solution("08.2")(mask=mask, image_shape=(2, 2)), expected)


def test_08_3_reference_is_what_shuffle_within_masks_does_to_a_layer():
    from pruninglab import masking, shuffle

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 9))
    masking.set_masks(net, {"0": torch.rand(9, 12) < 0.4})
    weight, mask = net[0].weight.detach().clone(), masking.get_masks(net)["0"].clone()
    shuffle.shuffle_within_masks(net, seed=3)
    moved = net[0].weight.detach()
    kept = mask.flatten().nonzero().flatten()
    # recover the permutation the library drew, then ask the reference to apply it
    values = weight.flatten()[kept]
    order = torch.tensor([int((values == v).nonzero()[0]) for v in moved.flatten()[kept]])
    assert sorted(order.tolist()) == list(range(len(kept)))
    assert torch.equal(exercises.solution("08.3")(weight=weight, mask=mask, order=order), moved)


def test_09_references_follow_the_geometric_decay_of_torchs_batch_norm():
    after = exercises.solution("09.1")
    assert after(old=1.0, new=0.0, mu=0.99, steps=100) == pytest.approx(0.99 ** 100, rel=1e-9)
    assert after(old=3.0, new=1.0, mu=0.5, steps=2) == pytest.approx(1.5, rel=1e-12)
    forget = exercises.solution("09.2")
    assert forget(mu=0.5, fraction=0.25) == 2 and forget(mu=0.5, fraction=0.24) == 3
    assert forget(mu=0.997, fraction=math.exp(-1)) == 333  # notebook 09's "memory"


def test_10_references_agree_with_the_efficiency_module():
    from pruninglab import efficiency, masking

    torch.manual_seed(0)
    mask = torch.rand(6, 3, 3, 3) < 0.3
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False))
    masking.set_masks(net, {"0": mask})
    # an 11 x 11 input gives 6 x 6 outputs: every kept weight used 36 times
    assert exercises.solution("10.1")(mask=mask, size=11, stride=2, padding=1) \
        == int(mask.sum()) * 36 == efficiency.macs(net, (3, 11, 11)).loc["total", "kept_macs"]
    flat = torch.rand(20, 50) < 0.1
    assert exercises.solution("10.2")(mask=flat, value_bytes=4, index_bytes=4) \
        == 8 * int(flat.sum()) + 4 * 21
    break_even = exercises.solution("10.3")(rows=20, cols=50, value_bytes=4, index_bytes=4)
    # at that density of the 1,000 weights, the CSR copy's bytes equal the dense copy's
    assert 8 * (break_even * 1000) + 4 * 21 == pytest.approx(4 * 1000)


def test_a_check_leaves_torchs_global_generator_as_it_was(capsys, monkeypatch):
    # 10.1's reference builds Conv2d layers, whose initialisation draws random numbers
    monkeypatch.setenv(exercises.FILL_VARIABLE, "1")
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    run_check(capsys, "10.1", None)
    assert torch.equal(torch.rand(3), expected)


# Enough inputs, edge cases among them (issue 50).


def _cases(id: str) -> tuple[dict, ...]:
    return exercises._get(id).cases


FUNCTION_IDS = [i for i in IDS if _cases(i) is not None]
VALUE_IDS = [i for i in IDS if _cases(i) is None]


def _count(density: float, n: int) -> int:
    return round(density * n)


def _ties_away_from_the_cut(weights: list[torch.Tensor], density: float) -> bool:
    """Tied magnitudes, but not at the cut: the k-th and (k+1)-th largest |w| differ."""
    magnitudes = torch.cat([w.abs().flatten() for w in weights]).sort(descending=True).values
    k = _count(density, magnitudes.numel())
    tied = magnitudes.unique().numel() < magnitudes.numel()
    return tied and 0 < k < magnitudes.numel() and bool(magnitudes[k - 1] > magnitudes[k])


def _odd(*numbers: int) -> bool:
    return all(n % 2 == 1 for n in numbers)


def _any_constant_channel(x: torch.Tensor) -> bool:
    return bool((x.var(dim=(0, 2, 3), unbiased=False) == 0).any())


def _exact_power(base: float, value: float) -> bool:
    return any(base ** n == value for n in range(1, 40))


# For each function exercise, the edge cases its inputs allow, each a predicate that some
# input must satisfy.
EDGES: dict[str, dict[str, object]] = {
    "01.1": {"an odd N": lambda c: _odd(c["w"].numel()),
             "one input": lambda c: c["w"].numel() == 1, "no bias": lambda c: c["b"] == 0,
             "every output 0": lambda c: bool((c["y"] @ c["w"] + c["b"] <= 0).all())},
    "01.2": {"one input": lambda c: c["n_in"] == 1, "one output": lambda c: c["n_out"] == 1,
             "odd sizes": lambda c: _odd(c["n_in"], c["n_out"])},
    "01.3": {"one layer": lambda c: len(c["widths"]) == 2,
             "widths of 1": lambda c: set(c["widths"]) == {1},
             "odd widths": lambda c: _odd(*c["widths"])},
    "02.1": {"one position": lambda c: c["size"] + 2 * c["padding"] == c["kernel"],
             "a 1×1 window": lambda c: c["kernel"] == 1,
             "a stride longer than the input": lambda c: c["stride"] > c["size"],
             "an odd size": lambda c: _odd(c["size"])},
    "02.2": {"a 1×1 kernel": lambda c: c["kernel"] == 1,
             "one channel in and out": lambda c: c["c_in"] == c["c_out"] == 1,
             "a bias": lambda c: c["bias"], "no bias": lambda c: not c["bias"]},
    "03.1": {"momentum 0": lambda c: c["momentum"] == 0,
             "momentum 1": lambda c: c["momentum"] == 1,
             "new equals old": lambda c: torch.equal(c["old"], c["new"]),
             "an odd size": lambda c: _odd(c["old"].numel())},
    "03.3": {"one image": lambda c: c["x"].shape[0] == 1,
             "1×1 images": lambda c: c["x"].shape[2:] == (1, 1),
             "an odd size": lambda c: _odd(*c["x"].shape),
             "a constant channel (variance 0)": lambda c: _any_constant_channel(c["x"])},
    "03.4": {"a running variance of 0": lambda c: bool((c["running_var"] == 0).any()),
             "γ = 1 and β = 0": lambda c: bool((c["gamma"] == 1).all() and
                                               (c["beta"] == 0).all()),
             "one image": lambda c: c["x"].shape[0] == 1,
             "an odd size": lambda c: _odd(*c["x"].shape)},
    "04.1": {"an odd N": lambda c: _odd(c["weight"].numel()),
             "density 1": lambda c: c["density"] == 1.0,
             "round(d·N) = 0": lambda c: _count(c["density"], c["weight"].numel()) == 0,
             "ties away from the cut": lambda c: _ties_away_from_the_cut([c["weight"]],
                                                                         c["density"]),
             "N = 106, d = 0.23": lambda c: (c["weight"].numel(), c["density"]) == (106, 0.23)},
    "04.2": {"nothing kept": lambda c: not any(m.any() for m in c["masks"]),
             "everything kept": lambda c: all(m.all() for m in c["masks"]),
             "one mask": lambda c: len(c["masks"]) == 1,
             "an odd size": lambda c: _odd(sum(m.numel() for m in c["masks"]))},
    "04.3": {"an odd N": lambda c: _odd(sum(w.numel() for w in c["weights"])),
             "density 1": lambda c: c["density"] == 1.0,
             "round(d·N) = 0": lambda c: _count(c["density"],
                                                sum(w.numel() for w in c["weights"])) == 0,
             "ties away from the cut": lambda c: _ties_away_from_the_cut(c["weights"],
                                                                         c["density"]),
             "one layer": lambda c: len(c["weights"]) == 1,
             "N = 106, d = 0.23": lambda c: (sum(w.numel() for w in c["weights"]),
                                             c["density"]) == (106, 0.23)},
    "05.1": {"one level after the dense one": lambda c: c["target"] >= c["K"],
             "K**n exactly the target": lambda c: _exact_power(c["K"], c["target"])},
    "05.2": {"one level": lambda c: c["levels"] == 1,
             "no rewind": lambda c: c["rewind_steps_lr"] == 0,
             "a rewind past the start": lambda c: c["rewind_steps_lr"] > c["T"],
             "an odd T": lambda c: _odd(c["T"]), "one step": lambda c: c["T"] == 1},
    "06.1": {"0 %": lambda c: c["percent"] == 0, "100 %": lambda c: c["percent"] == 100,
             "an odd T": lambda c: _odd(c["T"]), "one step": lambda c: c["T"] == 1},
    "06.2": {"on a boundary": lambda c: c["schedule"].steps - c["rewind_steps_lr"]
             in c["schedule"].boundaries,
             "a step before a boundary": lambda c: c["schedule"].steps - c["rewind_steps_lr"]
             + 1 in c["schedule"].boundaries,
             "a rewind past the start": lambda c: c["rewind_steps_lr"] > c["schedule"].steps,
             "no rewind": lambda c: c["rewind_steps_lr"] == 0,
             "an odd T": lambda c: _odd(c["schedule"].steps)},
    "07.1": {"a zero gradient": lambda c: not c["grad_c"].any(),
             "lr 0": lambda c: c["lr"] == 0,
             "no clip bites": lambda c: bool((c["grad_c"].abs() < c["clip"]).all()),
             "a gradient exactly at the clip": lambda c: bool((c["grad_c"].abs()
                                                               == c["clip"]).any()),
             "one logit": lambda c: c["logits"].numel() == 1,
             "logits outside the logit clip": lambda c: bool((c["logits"].abs()
                                                              > c["logit_clip"]).any())},
    "07.2": {"one layer": lambda c: len(c["logits"]) == 1,
             "logits all 0": lambda c: not any(b.any() for b in c["logits"]),
             "density about 1": lambda c: all(bool((b > 20).all()) for b in c["logits"]),
             "density about 0": lambda c: all(bool((b < -20).all()) for b in c["logits"])},
    "08.1": {"fans of 1": lambda c: c["fan_in"] == c["fan_out"] == 1,
             "odd fans": lambda c: _odd(c["fan_in"], c["fan_out"])},
    "08.2": {"nothing kept": lambda c: not c["mask"].any(),
             "everything kept": lambda c: bool(c["mask"].all()),
             "one row": lambda c: c["image_shape"][0] == 1,
             "one column": lambda c: c["image_shape"][1] == 1,
             "one hidden neuron": lambda c: c["mask"].shape[0] == 1},
    "08.3": {"nothing kept": lambda c: not c["mask"].any(),
             "everything kept": lambda c: bool(c["mask"].all()),
             "one kept": lambda c: int(c["mask"].sum()) == 1,
             "the identity order": lambda c: len(c["order"]) > 1 and torch.equal(
                 c["order"], torch.arange(len(c["order"])))},
    "09.1": {"no step": lambda c: c["steps"] == 0,
             "new equals old": lambda c: c["new"] == c["old"],
             "an odd number of steps": lambda c: _odd(c["steps"])},
    "09.2": {"nothing to forget (no step)": lambda c: c["fraction"] == 1,
             "μⁿ exactly the fraction": lambda c: _exact_power(c["mu"], c["fraction"])},
    "10.1": {"nothing kept": lambda c: not c["mask"].any(),
             "everything kept": lambda c: bool(c["mask"].all()),
             "one output position": lambda c: c["size"] + 2 * c["padding"]
             == c["mask"].shape[-1],
             "a 1×1 window": lambda c: c["mask"].shape[-1] == 1,
             "an odd size": lambda c: _odd(c["size"])},
    "10.2": {"nothing kept": lambda c: not c["mask"].any(),
             "everything kept": lambda c: bool(c["mask"].all()),
             "one row": lambda c: c["mask"].shape[0] == 1,
             "one column": lambda c: c["mask"].shape[1] == 1},
    "10.3": {"one row": lambda c: c["rows"] == 1, "one column": lambda c: c["cols"] == 1,
             "odd sizes": lambda c: _odd(c["rows"], c["cols"])},
}


def test_every_function_exercise_names_its_edge_cases():
    assert set(EDGES) == set(FUNCTION_IDS)


@pytest.mark.parametrize("id", FUNCTION_IDS)
def test_every_function_exercise_is_tried_on_thirty_inputs_with_its_edge_cases(id):
    cases = _cases(id)
    assert len(cases) >= 30
    missing = [edge for edge, holds in EDGES[id].items() if not any(holds(c) for c in cases)]
    assert not missing


def _keep_largest(scores: torch.Tensor, k: int, last_of_ties_first: bool) -> torch.Tensor:
    """The k largest scores, ties broken by the lowest index or by the highest."""
    flat = scores.flatten()
    if last_of_ties_first:
        order = flat.flip(0).sort(descending=True, stable=True).indices
        order = flat.numel() - 1 - order
    else:
        order = flat.sort(descending=True, stable=True).indices
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[order[:k]] = True
    return keep.view_as(scores)


@pytest.mark.parametrize("last_of_ties_first", [False, True])
def test_ties_away_from_the_cut_pass_however_an_answer_breaks_them(capsys, last_of_ties_first):
    def mask(weight, density):
        return _keep_largest(weight.abs(), round(density * weight.numel()), last_of_ties_first)

    def masks(weights, density):
        flat = torch.cat([w.flatten() for w in weights])
        keep = mask(flat, density)
        return [k.view_as(w) for k, w in zip(keep.split([w.numel() for w in weights]), weights)]

    assert run_check(capsys, "04.1", mask)[0] is True
    assert run_check(capsys, "04.3", masks)[0] is True


# A quantile threshold keeps the wrong number of weights.


def _quantile_mask(weight, density, strict):
    threshold = torch.quantile(weight.abs().flatten(), 1 - density)
    return weight.abs() > threshold if strict else weight.abs() >= threshold


def _quantile_masks(weights, density, strict):
    threshold = torch.quantile(torch.cat([w.abs().flatten() for w in weights]), 1 - density)
    return [w.abs() > threshold if strict else w.abs() >= threshold for w in weights]


@pytest.mark.parametrize("strict", [False, True], ids=[">=", ">"])
@pytest.mark.parametrize("id, answer", [("04.1", _quantile_mask), ("04.3", _quantile_masks)])
def test_a_quantile_threshold_fails_with_a_hint_about_the_kept_count(capsys, id, answer,
                                                                     strict):
    result, out = run_check(capsys, id, lambda **kw: answer(**kw, strict=strict))
    assert result is False
    assert re.search(r"keeps (\d+) of (\d+) entries, expected (\d+)", out)
    assert "Looks like: a quantile threshold." in out
    assert "torch.quantile interpolates" in out and "round(density·N)" in out


def test_a_quantile_threshold_keeps_25_of_106_weights_at_density_0_23(capsys):
    result, out = run_check(capsys, "04.1", lambda weight, density:
                            _quantile_mask(weight, density, strict=False))
    assert "density=0.23): keeps 25 of 106 entries, expected 24" in out


# A value exercise's hint never gives the value away.


def _renderings(value: object) -> set[str]:
    shown = {str(value), repr(value)}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown |= {f"{value:{spec}}" for spec in (".6g", ".4g", "g", ".3g", ".2g", ",")}
    return shown


def _unlike(value: float, candidates: list[float]) -> float:
    """The first candidate whose every rendering shares none of ``value``'s."""
    for candidate in candidates:
        if not any(r in c for r in _renderings(value) for c in _renderings(candidate)):
            return candidate
    raise AssertionError(f"no candidate unlike {value!r}")


@pytest.mark.parametrize("id", VALUE_IDS)
def test_no_hint_of_a_value_exercise_contains_the_expected_value(capsys, id):
    exercise = exercises._get(id)
    value = exercise.reference
    larger = _unlike(value, [value * 7.3 + 1.7, value * 13.9 + 2.9, abs(value) * 31 + 5.3])
    smaller = _unlike(value, [value / 7.3 - 1.7, value * 0.137 - 2.9, -abs(value) * 31 - 5.3])
    wrong = [larger, smaller, torch.tensor(larger), "a word", [value], True,
             *(m.answer for m in exercise.mistakes)]
    for answer in wrong:
        result, out = run_check(capsys, id, answer)
        assert result is False
        leaked = [r for r in _renderings(value) if r in out]
        assert not leaked, f"{answer!r}: {out}"
    for mistake in exercise.mistakes:
        assert not any(r in mistake.name + mistake.hint for r in _renderings(value))


def test_a_wrong_value_hint_says_only_which_way_it_is_off(capsys):
    value = exercises.solution("03.2")
    result, out = run_check(capsys, "03.2", value * 10)
    assert result is False and "is not right: it is too large" in out
    result, out = run_check(capsys, "03.2", value / 10)
    assert result is False and "is not right: it is too small" in out
    result, out = run_check(capsys, "03.2", "0.003")
    assert result is False and "should be a number (a float), got a str" in out


# Renamed parameters


@pytest.mark.parametrize("id", FUNCTION_IDS)
def test_renamed_parameters_are_told_to_keep_the_stubs_names(capsys, id):
    def renamed(a, b=None):
        return a

    result, out = run_check(capsys, id, renamed)
    expected = exercises._get(id).signature.split("(")[1].rstrip(")")
    assert result is False
    assert f"keep the stub's parameter names ({expected}): your function takes (a, b)" in out


def test_the_renamed_parameters_hint_shows_pythons_markers(capsys):
    _, out = run_check(capsys, "01.2", lambda n_in, n_out, /: n_in * n_out)
    assert "your function takes (n_in, n_out, /)" in out
    _, out = run_check(capsys, "01.2", lambda n_in, *args, n_output: n_in)
    assert "your function takes (n_in, *args, n_output)" in out


def test_a_TypeError_inside_a_well_named_answer_is_reported_as_raised(capsys):
    def well_named(n_in: int, n_out: int) -> int:
        return "n_in" + n_in  # a TypeError of its own

    result, out = run_check(capsys, "01.2", well_named)
    assert result is False
    assert "raised TypeError" in out and "keep the stub's" not in out


def test_extra_parameters_with_defaults_and_kwargs_are_accepted(capsys):
    assert exercises.check("01.2", lambda n_in, n_out, bias=True: (n_in + bias) * n_out)
    assert exercises.check("01.2", lambda **kw: (kw["n_in"] + 1) * kw["n_out"])


# Named mistakes


def test_instance_norm_is_named_in_03_3(capsys):
    def instance_norm(x, eps):
        mean = x.mean(dim=(2, 3), keepdim=True)
        return (x - mean) / torch.sqrt(x.var(dim=(2, 3), unbiased=False, keepdim=True) + eps)

    result, out = run_check(capsys, "03.3", instance_norm)
    assert result is False
    assert "Looks like: instance norm (per image and channel)." in out
    assert "shared across the batch: dim=(0, 2, 3)" in out


def _sigmoid_slope(b):
    return torch.sigmoid(b) * (1 - torch.sigmoid(b))


@pytest.mark.parametrize("where, step", [
    ("before", lambda grad_c, logits, lr, clip: lr * (grad_c * _sigmoid_slope(logits))
     .clamp(-clip, clip)),
    ("after", lambda grad_c, logits, lr, clip: lr * grad_c.clamp(-clip, clip)
     * _sigmoid_slope(logits)),
])
def test_the_sigmoids_derivative_is_named_before_and_after_the_clip_in_07_1(capsys, where,
                                                                            step):
    def answer(logits, grad_c, lr, clip, logit_clip):
        return (logits - step(grad_c, logits, lr, clip)).clamp(-logit_clip, logit_clip)

    result, out = run_check(capsys, "07.1", answer)
    assert result is False
    assert f"Looks like: through the sigmoid's derivative σ'(b), {where} the clip." in out
    assert "no σ'(b) factor" in out and "b − lr·clip(dL/dc)" in out


# One line, a bool


@pytest.mark.parametrize("id", IDS)
def test_check_prints_exactly_one_line_and_returns_a_bool(capsys, id):
    answers = [exercises.solution(id), None, PLANTED[id][0], lambda wrong_name: 0, "a word"]
    for answer in answers:
        result, out = run_check(capsys, id, answer)
        assert isinstance(result, bool)
        assert out.count("\n") == 1 and out.endswith("\n")


def test_a_check_leaves_torchs_thread_count_as_it_was(capsys):
    threads = torch.get_num_threads()
    run_check(capsys, "09.2", exercises.solution("09.2"))
    assert torch.get_num_threads() == threads


def _bn_train_by_torch(x, eps):
    return torch.nn.functional.batch_norm(x, None, None, training=True, eps=eps)


def _bn_train_by_var_mean(x, eps):
    variance, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(variance + eps)


def _bn_train_in_float64(x, eps):
    wide = x.double()
    mean = wide.mean(dim=(0, 2, 3), keepdim=True)
    variance = wide.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return ((wide - mean) / torch.sqrt(variance + eps)).float()


def _bn_train_channel_by_channel(x, eps):
    channels = x.transpose(0, 1).reshape(x.shape[1], -1)
    mean, variance = channels.mean(1), channels.var(1, unbiased=False)
    return (x - mean.view(1, -1, 1, 1)) / torch.sqrt(variance.view(1, -1, 1, 1) + eps)


@pytest.mark.parametrize("answer", [_bn_train_by_torch, _bn_train_by_var_mean,
                                    _bn_train_in_float64, _bn_train_channel_by_channel])
def test_every_correct_way_to_write_batch_norm_in_training_mode_passes(capsys, answer):
    passed, out = run_check(capsys, "03.3", answer)
    assert passed, out


def _bn_eval_by_torch(x, running_mean, running_var, gamma, beta, eps):
    return torch.nn.functional.batch_norm(x, running_mean, running_var, gamma, beta,
                                          training=False, eps=eps)


def _bn_eval_by_rsqrt(x, running_mean, running_var, gamma, beta, eps):
    def per_channel(t):
        return t.view(1, -1, 1, 1)

    scale = per_channel(gamma) * torch.rsqrt(per_channel(running_var) + eps)
    return (x - per_channel(running_mean)) * scale + per_channel(beta)


@pytest.mark.parametrize("answer", [_bn_eval_by_torch, _bn_eval_by_rsqrt])
def test_every_correct_way_to_write_batch_norm_in_evaluation_mode_passes(capsys, answer):
    passed, out = run_check(capsys, "03.4", answer)
    assert passed, out
