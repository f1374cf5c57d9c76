"""pl.exercises: the reference passes, stubs are "not done yet", plausible mistakes fail
with a hint that names them, and check never raises."""

from __future__ import annotations

import pruninglab as pl
from pruninglab import exercises

import pytest
import torch

IDS = exercises.names()


def run_check(capsys, id, answer):
    result = exercises.check(id, answer)
    return result, capsys.readouterr().out


@pytest.fixture(autouse=True)
def stubs_stay_stubs(monkeypatch):
    monkeypatch.delenv(exercises.FILL_VARIABLE, raising=False)


def test_there_are_at_least_ten_exercises_in_course_order():
    assert len(IDS) >= 10
    assert sorted(IDS) == IDS
    assert {i[:2] for i in IDS} == {"01", "02", "03", "04"}
    assert all(len(exercises.names(nb)) >= 2 for nb in ("01", "02", "03", "04"))


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
}


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
