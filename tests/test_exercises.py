"""pl.exercises: the reference passes, stubs are "not done yet", plausible mistakes fail
with a hint that names them, and check never raises."""

from __future__ import annotations

import pruninglab as pl
from pruninglab import exercises

import math

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
