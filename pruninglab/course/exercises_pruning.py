"""The exercises of notebooks 05-10: iterative pruning, GIMP and sGIMP, Training Optimal
Masks, mask shuffling, batch normalization under pruning, parameter efficiency. Each is
checked against the library's own function (the GIMP configuration, TOM's mask trainer,
``shuffle``, torch's BatchNorm, ``efficiency``); :mod:`pruninglab.course.exercises` checks them."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core import efficiency, masking, models, optim, schedules
from ..experiments import gimp, shuffle, tom
from . import basics
from .exercise_checks import (
    CASES,
    Exercise,
    Mistake,
    draw_choice,
    draw_float,
    draw_int,
    generator_for,
    integers_for,
)

__all__ = ["exercises"]


def exercises() -> list[Exercise]:
    """The exercises of notebooks 05-10, in no particular order."""
    return [*_exercises_05(), *_exercises_06(), *_exercises_07(), *_exercises_08(),
            *_exercises_09(), *_exercises_10()]


def _level_densities(K: float, target: float) -> list[float]:
    """Algorithm 5's densities, 1, K, K², ... clamped to ``target`` (05.1)."""
    return gimp.GIMPConfig(1, target, density_multiplier=K).densities()


def _schedule_starts(T: int, rewind_steps_lr: int, levels: int) -> list[int]:
    """The schedule position where each of ``levels`` levels of T steps starts (05.2)."""
    config = gimp.GIMPConfig(T, 0.5, rewind_steps_lr=rewind_steps_lr)
    return [first for _, first, _ in gimp.schedule_trace(config, levels)]


def _exercises_05() -> list[Exercise]:
    def densities_by(K, target, keep_going, clamp=True, dense=True, linear=False):
        """The density list with a student's plausible variations (05.1's mistakes)."""
        out, d, i = [1.0], 1.0, 0
        while keep_going(d, K, target):
            i += 1
            d = 1.0 - i * (1 - K) if linear else d * K
            out.append(max(d, target) if clamp else d)
        return out if dense else out[1:]

    def above(d, K, target):
        return d > target * (1 + 1e-9)

    g = generator_for("05.1")
    level_cases = [{"K": 0.7, "target": 0.1}, {"K": 0.7, "target": 0.04},
                   {"K": 0.8, "target": 0.3}, {"K": 0.5, "target": 0.125},
                   {"K": 0.9, "target": 0.5}, {"K": 0.6, "target": 0.05},
                   # edges: a target at or above K (one level after the dense one); K**n
                   # equal to the target (exactly, in floats: powers of 1/2 and of 3/4);
                   # many levels
                   {"K": 0.6, "target": 0.8}, {"K": 0.9, "target": 0.9},
                   {"K": 0.5, "target": 0.25}, {"K": 0.75, "target": 0.5625},
                   {"K": 0.5, "target": 0.001}]
    while len(level_cases) < CASES:
        K, target = round(draw_float(g, 0.5, 0.95), 2), round(draw_float(g, 0.005, 0.95), 3)
        levels = math.log(target) / math.log(K)
        # K**n within float error of the target: whether that level is clamped would hang
        # on the last bit (the reference allows 1e-9); the exact ties are chosen above
        if abs(levels - round(levels)) > 1e-6:
            level_cases.append({"K": K, "target": target})
    g = generator_for("05.2")
    start_cases = [{"T": 400, "rewind_steps_lr": 0, "levels": 4},
                   {"T": 400, "rewind_steps_lr": 400, "levels": 4},
                   {"T": 72_000, "rewind_steps_lr": 70_000, "levels": 3},
                   {"T": 100, "rewind_steps_lr": 30, "levels": 5},
                   {"T": 100, "rewind_steps_lr": 150, "levels": 3},
                   # edges: one level (only the start, 0), one step per level, an odd T
                   {"T": 400, "rewind_steps_lr": 100, "levels": 1},
                   {"T": 1, "rewind_steps_lr": 0, "levels": 4},
                   {"T": 333, "rewind_steps_lr": 111, "levels": 4}]
    for _ in range(CASES - len(start_cases)):
        T = draw_int(g, 1, 1000)
        rewind = draw_choice(g, (0, T, draw_int(g, 0, 3 * T // 2)))
        start_cases.append({"T": T, "rewind_steps_lr": rewind, "levels": draw_int(g, 1, 6)})
    return [
        Exercise(
            "05.1", "level_densities(K, target)",
            "the density of every level of iterative pruning: 1 (the dense network), then "
            "each level keeps K of the previous density, the last level clamped to `target`.",
            reference=_level_densities,
            cases=tuple(level_cases),
            mistakes=(
                Mistake("not clamped to the target", "The last level would go below the "
                        "target: keep max(density·K, target) there.",
                        lambda K, target: densities_by(K, target, above, clamp=False)),
                Mistake("stopped before the target", "Go on while the density is above the "
                        "target; the last level is the target itself.",
                        lambda K, target: densities_by(
                            K, target, lambda d, K, t: d * K > t * (1 + 1e-9))),
                Mistake("the dense level left out", "Level 0 is the dense network, density 1:"
                        " the list starts with 1.0.",
                        lambda K, target: densities_by(K, target, above, dense=False)),
                Mistake("a share of the original weights, not of the remaining ones", "Each "
                        "level keeps K of the *previous* density (K, K², ...), it does not "
                        "take 1 − K of the original weights away again.",
                        lambda K, target: densities_by(K, target, above, linear=True)),
            )),
        Exercise(
            "05.2", "schedule_starts(T, rewind_steps_lr, levels)",
            "the learning-rate schedule position at which each of the first `levels` levels "
            "starts, when every level trains T steps and the position then moves back by "
            "`rewind_steps_lr` from where the level ended (never below 0).",
            reference=_schedule_starts,
            cases=tuple(start_cases),
            mistakes=(
                Mistake("rewound *to* rewind_steps_lr instead of *by* it", "The position "
                        "moves back by rewind_steps_lr from the end of the level: "
                        "max(0, end − rewind_steps_lr).",
                        lambda T, rewind_steps_lr, levels:
                        [0] + [rewind_steps_lr] * (levels - 1)),
                Mistake("the position does not carry over", "Each level ends T steps after "
                        "it *started*, which need not be 0: fine-tuning reads the schedule "
                        "past its end (0, T, 2T, ...).",
                        lambda T, rewind_steps_lr, levels:
                        [0] + [max(0, T - rewind_steps_lr)] * (levels - 1)),
                Mistake("not clamped at 0", "A rewind longer than the position goes back to "
                        "the start of the schedule, never below 0.",
                        lambda T, rewind_steps_lr, levels:
                        [i * (T - rewind_steps_lr) for i in range(levels)]),
            )),
    ]


def _rewind_point(T: int, percent: float) -> int:
    """sGIMP(percent %): the step of the finished cycle whose state the next level starts
    from (06.1)."""
    return gimp.sgimp(T, 0.5, rewind_fraction=percent / 100).rewind_point(0)


def _first_learning_rate(schedule: schedules.Schedule, rewind_steps_lr: int) -> float:
    """The learning rate of level 1's first step, after level 0 trained ``schedule.steps``
    steps (06.2)."""
    return schedule(_schedule_starts(schedule.steps, rewind_steps_lr, 2)[1])


def _exercises_06() -> list[Exercise]:
    resnet, vgg = schedules.resnet(), schedules.vgg()
    g = generator_for("06.1")
    rewind_cases = [{"T": 400, "percent": 75}, {"T": 72_000, "percent": 25},
                    {"T": 333, "percent": 75}, {"T": 1000, "percent": 98},
                    {"T": 400, "percent": 0}, {"T": 400, "percent": 100},
                    {"T": 90, "percent": 33},
                    # edges: one step per cycle, rewound by all or by less than half a step
                    {"T": 1, "percent": 100}, {"T": 1, "percent": 30}, {"T": 7, "percent": 60}]
    while len(rewind_cases) < CASES:
        T, percent = draw_int(g, 1, 2000), draw_int(g, 0, 100)
        # not a rewind of exactly half a step more than a whole number: there round()
        # rounds to even, and "to the nearest step" does not say which way
        if percent * T % 100 != 50:
            rewind_cases.append({"T": T, "percent": percent})
    g = generator_for("06.2")
    rate_cases = [
        # first a rewind that lands on a boundary, where one step off changes the rate
        {"schedule": resnet, "rewind_steps_lr": 36_000},
        {"schedule": resnet, "rewind_steps_lr": 72_000},
        {"schedule": resnet, "rewind_steps_lr": 0},
        {"schedule": resnet, "rewind_steps_lr": 54_000},
        {"schedule": resnet, "rewind_steps_lr": 18_000},
        {"schedule": vgg, "rewind_steps_lr": 48_000},
        {"schedule": vgg, "rewind_steps_lr": 70_000},
        # edges: a rewind past the start (position 0), short and odd schedules, one step
        # before and on a boundary
        {"schedule": resnet, "rewind_steps_lr": 100_000},
        {"schedule": schedules.resnet(400), "rewind_steps_lr": 100},
        {"schedule": schedules.resnet(333), "rewind_steps_lr": 84},
        {"schedule": schedules.wrn(), "rewind_steps_lr": 16_001}]
    while len(rate_cases) < CASES:
        make = draw_choice(g, (schedules.resnet, schedules.vgg, schedules.wrn))
        schedule = make(draw_int(g, 10, 1000))
        T = schedule.steps
        boundary = schedule.boundaries[draw_int(g, 0, len(schedule.boundaries) - 1)]
        near_a_boundary, anywhere = T - boundary + draw_int(g, -1, 1), draw_int(g, 0, 5 * T // 4)
        rewind = draw_choice(g, (near_a_boundary, anywhere))
        rate_cases.append({"schedule": schedule, "rewind_steps_lr": max(0, rewind)})
    return [
        Exercise(
            "06.1", "rewind_point(T, percent)",
            "sGIMP(percent %) rewinds the weights by percent % of T (rounded to the nearest "
            "step): the step of the T-step cycle that just ended whose weights the next "
            "level starts from.",
            reference=_rewind_point,
            cases=tuple(rewind_cases),
            mistakes=(
                Mistake("rewound *to* X % instead of *by* X %", "sGIMP(75 %) goes back 75 % "
                        "of the cycle: to the state after the first 25 %, step T − 0.75·T.",
                        lambda T, percent: round(percent / 100 * T)),
                Mistake("the percentage used as a fraction", "percent is in [0, 100]: divide"
                        " by 100 before multiplying by T.",
                        lambda T, percent: max(0, T - round(percent * T))),
                Mistake("rounded down instead of to nearest", "The rewind is round(X·T) "
                        "steps, not int(X·T).",
                        lambda T, percent: T - int(percent / 100 * T)),
            )),
        Exercise(
            "06.2", "first_learning_rate(schedule, rewind_steps_lr)",
            "the learning rate of the first retraining step after a level of T = "
            "schedule.steps steps, when the schedule position moves back by rewind_steps_lr "
            "(sGIMP uses rewind_steps_lr = T for every X; fine-tuning 0).",
            reference=_first_learning_rate,
            cases=tuple(rate_cases),
            mistakes=(
                Mistake("read the schedule *at* rewind_steps_lr", "The position moves back "
                        "*by* rewind_steps_lr from where the level ended, T: read the "
                        "schedule at T − rewind_steps_lr.",
                        lambda schedule, rewind_steps_lr: schedule(rewind_steps_lr)),
                Mistake("one step too early", "The level's T steps used positions 0 … T − 1;"
                        " it ended at position T, and the rewind starts from there.",
                        lambda schedule, rewind_steps_lr:
                        schedule(max(0, schedule.steps - rewind_steps_lr - 1))),
                Mistake("the rewind ignored (fine-tuning's rate)", "Only fine-tuning "
                        "(rewind_steps_lr = 0) keeps the final rate; rewinding moves the "
                        "position back.",
                        lambda schedule, rewind_steps_lr: schedule(schedule.steps)),
            )),
    ]


def _logit_step(logits: torch.Tensor, grad_c: torch.Tensor, lr: float, clip: float,
                logit_clip: float) -> torch.Tensor:
    """One SGD step of TOM's mask logits (07.1), as :class:`pruninglab.experiments.tom.MaskTrainer`
    takes it with ``mask_optimizer="sgd"`` and no momentum, without the penalty: the
    gradient reaching the logits is dL/dc through :func:`pruninglab.core.masking.bernoulli_ste`."""
    b = logits.clone().requires_grad_(True)
    c = masking.bernoulli_ste(b, clip, torch.Generator().manual_seed(0))
    (c * grad_c).sum().backward()  # dL/dc = grad_c, handed straight through (clipped)
    optim.SGD([b], lr=lr).step()
    with torch.no_grad():
        b.clamp_(-logit_clip, logit_clip)
    return b.detach()


def _exercises_07() -> list[Exercise]:
    g = generator_for("07.1")
    step_cases = []
    for shape, lr, clip, logit_clip in (((6, 5), 1.0, 0.1, 15.0), ((4, 3, 2), 0.5, 0.1, 15.0),
                                        ((20,), 2.0, 0.05, 3.0)):
        logits = 4 * torch.randn(shape, generator=g)
        logits.view(-1)[:2] = torch.tensor([logit_clip - 0.02, -logit_clip + 0.02])
        grad_c = 0.3 * torch.randn(shape, generator=g)
        grad_c.view(-1)[:2] = torch.tensor([-0.5, 0.5])  # pushes both past the logit clip
        step_cases.append({"logits": logits, "grad_c": grad_c, "lr": lr, "clip": clip,
                           "logit_clip": logit_clip})
    # edges: a gradient no clip bites on, a zero gradient, a zero learning rate (only the
    # logit clip acts, also on logits that start outside it), gradients exactly at ±clip,
    # one logit, odd shapes
    step_cases += [
        {"logits": 2 * torch.randn(3, 5, generator=g), "grad_c": 0.05 * torch.randn(
            3, 5, generator=g), "lr": 1.0, "clip": 1.0, "logit_clip": 15.0},
        {"logits": 4 * torch.randn(7, generator=g), "grad_c": torch.zeros(7), "lr": 1.0,
         "clip": 0.1, "logit_clip": 3.0},
        {"logits": 4 * torch.randn(3, 3, generator=g), "grad_c": torch.randn(3, 3, generator=g),
         "lr": 0.0, "clip": 0.1, "logit_clip": 5.0},
        {"logits": torch.randn(2, 3, generator=g), "grad_c": torch.tensor(
            [[0.1, -0.1, 0.2], [-0.3, 0.1, 0.05]]), "lr": 1.0, "clip": 0.1, "logit_clip": 15.0},
        {"logits": torch.tensor([0.5]), "grad_c": torch.tensor([0.4]), "lr": 2.0, "clip": 0.1,
         "logit_clip": 15.0}]
    for _ in range(CASES - len(step_cases)):
        shape = tuple(draw_int(g, 1, 5) for _ in range(draw_int(g, 1, 3)))
        clip = draw_choice(g, (0.01, 0.05, 0.1, 0.2, 0.5))
        # steps lr·clip of at most 0.5: float32 answers that take the step in another
        # order then agree within the tolerance, even where b − step is near 0
        step_cases.append({
            "logits": draw_float(g, 0.5, 6.0) * torch.randn(shape, generator=g),
            "grad_c": draw_float(g, 0.01, 1.0) * torch.randn(shape, generator=g),
            "lr": min(0.5 / clip, draw_choice(g, (0.1, 0.5, 1.0, 2.0, 5.0))), "clip": clip,
            "logit_clip": draw_choice(g, (1.0, 3.0, 5.0, 15.0))})
    g = generator_for("07.2")
    density_cases = []
    for shapes, means in ((((300, 20), (10, 20)), (-3.0, 2.0)),
                          (((50, 8), (8, 8), (8, 2)), (-1.0, 0.5, 4.0))):
        density_cases.append({"logits": [mean + 2 * torch.randn(shape, generator=g)
                                         for shape, mean in zip(shapes, means)]})
    # edges: one layer; logits all 0 (every weight a coin toss); logits so large or so
    # small that every weight is kept or pruned (density 1 and about 0); odd sizes
    density_cases += [{"logits": [torch.randn(7, 9, generator=g)]},
                      {"logits": [torch.zeros(5, 5), torch.zeros(3)]},
                      {"logits": [torch.full((4, 3), 40.0), torch.full((5,), 30.0)]},
                      {"logits": [torch.full((4, 3), -40.0), torch.full((5,), -30.0)]}]
    while len(density_cases) < CASES:
        density_cases.append({"logits": [
            draw_float(g, -4.0, 4.0) + draw_float(g, 0.5, 3.0) * torch.randn(
                tuple(draw_int(g, 1, 12) for _ in range(draw_int(g, 1, 2))), generator=g)
            for _ in range(draw_int(g, 1, 4))]})

    def sgd(logits, step, logit_clip):
        return (logits - step).clamp(-logit_clip, logit_clip)

    def sigmoid_slope(logits):  # σ'(b) = σ(b)·(1 − σ(b))
        return torch.sigmoid(logits) * (1 - torch.sigmoid(logits))

    return [
        Exercise(
            "07.1", "logit_step(logits, grad_c, lr, clip, logit_clip)",
            "one update of TOM's mask logits b (the thesis's SGD form, without the penalty):"
            " the gradient with respect to the sampled mask, dL/dc = grad_c, clipped to "
            "[−clip, clip], is handed straight to b; then b − lr·(that), clipped to "
            "[−logit_clip, logit_clip]. Same shape as logits.",
            reference=_logit_step,
            cases=tuple(step_cases),
            mistakes=(
                Mistake("dL/dc not clipped", "Clip the gradient to [−clip, clip] before the "
                        "step (thesis: 0.1).",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, lr * grad_c, logit_clip)),
                Mistake("the logits not clipped", "After the step, clip b to "
                        "[−logit_clip, logit_clip] (thesis: ±15).",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        logits - lr * grad_c.clamp(-clip, clip)),
                Mistake("a step up the gradient", "Gradient *descent*: subtract "
                        "lr·clip(dL/dc).",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, -lr * grad_c.clamp(-clip, clip), logit_clip)),
                Mistake("clipped the step, not the gradient", "Clip dL/dc itself, then "
                        "multiply by lr.",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, (lr * grad_c).clamp(-clip, clip), logit_clip)),
                Mistake("through the sigmoid's derivative σ'(b), before the clip", "The "
                        "straight-through estimator hands dL/dc to b *unchanged*: no σ'(b) "
                        "factor; the clip goes on dL/dc itself: b − lr·clip(dL/dc).",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, lr * (grad_c * sigmoid_slope(logits)).clamp(-clip, clip),
                            logit_clip)),
                Mistake("through the sigmoid's derivative σ'(b), after the clip", "The "
                        "straight-through estimator hands the clipped dL/dc to b *unchanged*: "
                        "no σ'(b) factor after the clip either: b − lr·clip(dL/dc).",
                        lambda logits, grad_c, lr, clip, logit_clip:
                        sgd(logits, lr * grad_c.clamp(-clip, clip) * sigmoid_slope(logits),
                            logit_clip)),
            )),
        Exercise(
            "07.2", "expected_density(logits)",
            "the expected density of a mask drawn from the logits (a list of tensors, one "
            "per layer): every weight is kept with probability σ(b).",
            reference=tom.expected_density,
            cases=tuple(density_cases),
            mistakes=(
                Mistake("averaged the layers' expected densities", "A layer of 6,000 "
                        "weights counts far more than one of 200: sum σ(b) over all weights,"
                        " then divide by their number.",
                        lambda logits: sum(float(torch.sigmoid(b).mean()) for b in logits)
                        / len(logits)),
                Mistake("counted the logits above 0", "That is the density of the mask "
                        "that keeps every weight with σ(b) > 0.5; a drawn mask keeps each "
                        "weight with probability σ(b): average σ(b).",
                        lambda logits: sum(int((b > 0).sum()) for b in logits)
                        / sum(b.numel() for b in logits)),
                Mistake("forgot the sigmoid", "A logit is not a probability: σ(b) is.",
                        lambda logits: sum(float(b.sum()) for b in logits)
                        / sum(b.numel() for b in logits)),
            )),
    ]


def _glorot_bound(fan_in: int, fan_out: int) -> float:
    """The bound a of Keras's default initializer for dense layers, Glorot-uniform
    (Glorot & Bengio 2010): weights ~ U(−a, a) with a = √(6 / (fan_in + fan_out)), the
    range ``models.init_layer(layer, "keras")`` draws from (08.1)."""
    return math.sqrt(6.0 / (fan_in + fan_out))


def _kept_per_pixel(mask: torch.Tensor, image_shape: tuple[int, int]) -> torch.Tensor:
    """Kept weights leaving each input pixel of a first Linear layer, as an image (08.2)."""
    return masking.kept_per_input(mask).reshape(image_shape)


def _exercises_08() -> list[Exercise]:
    sizes = list(zip(integers_for("08.1", 5, 2, 2000), integers_for("08.11", 5, 2, 2000)))
    g = generator_for("08.2")
    pixel_cases = []
    for hidden, image_shape, density in ((12, (6, 6), 0.3), (8, (4, 6), 0.5),
                                         (30, (8, 8), 0.1)):
        mask = torch.rand(hidden, image_shape[0] * image_shape[1], generator=g) < density
        pixel_cases.append({"mask": mask, "image_shape": image_shape})
    pixel_rng = g  # 08.2's draws go on below
    g = generator_for("08.3")
    shuffle_cases = []
    for shape, density in (((6, 5), 0.5), ((10, 8), 0.2), ((4, 3, 3), 0.6)):
        mask = torch.rand(shape, generator=g) < density
        weight = torch.randn(shape, generator=g) * mask  # a ticket: pruned weights are 0
        order = torch.randperm(int(mask.sum()), generator=g)
        shuffle_cases.append({"weight": weight, "mask": mask, "order": order})
    # edges: nothing kept (an empty order), everything kept, one weight kept, the identity
    # order, odd sizes
    nothing = torch.zeros(3, 5, dtype=torch.bool)
    everything = torch.ones(3, 3, dtype=torch.bool)
    one = torch.zeros(5, 7, dtype=torch.bool)
    one[2, 3] = True
    some = torch.rand(5, 3, generator=g) < 0.5
    for mask, order in ((nothing, torch.zeros(0, dtype=torch.long)),
                        (everything, torch.randperm(9, generator=g)),
                        (one, torch.zeros(1, dtype=torch.long)),
                        (some, torch.arange(int(some.sum())))):
        shuffle_cases.append({"weight": torch.randn(mask.shape, generator=g) * mask,
                              "mask": mask, "order": order})
    while len(shuffle_cases) < CASES:
        shape = tuple(draw_int(g, 1, 6) for _ in range(draw_int(g, 1, 3)))
        mask = torch.rand(shape, generator=g) < draw_float(g, 0.0, 1.0)
        shuffle_cases.append({"weight": torch.randn(shape, generator=g) * mask, "mask": mask,
                              "order": torch.randperm(int(mask.sum()), generator=g)})
    # edges: nothing kept, everything kept, an image of one row and one of one column, one
    # hidden neuron, odd sizes
    for hidden, image_shape, share in ((5, (3, 3), 0.0), (4, (2, 5), 1.0), (6, (1, 7), 0.5),
                                       (6, (5, 1), 0.5), (1, (3, 5), 0.5)):
        mask = torch.rand(hidden, image_shape[0] * image_shape[1], generator=pixel_rng) < share
        pixel_cases.append({"mask": mask, "image_shape": image_shape})
    while len(pixel_cases) < CASES:
        image_shape = (draw_int(pixel_rng, 1, 8), draw_int(pixel_rng, 1, 8))
        rows, pixels = draw_int(pixel_rng, 1, 20), image_shape[0] * image_shape[1]
        mask = (torch.rand(rows, pixels, generator=pixel_rng)
                < draw_float(pixel_rng, 0.0, 1.0))
        pixel_cases.append({"mask": mask, "image_shape": image_shape})
    g = generator_for("08.19")  # not integers_for's seeds: other draws
    glorot_cases = [{"fan_in": 784, "fan_out": 400}, {"fan_in": 400, "fan_out": 10},
                    *({"fan_in": a, "fan_out": b} for a, b in sizes),
                    {"fan_in": 1, "fan_out": 1}, {"fan_in": 3, "fan_out": 1}]  # edges
    glorot_cases += [{"fan_in": draw_int(g, 1, 5000), "fan_out": draw_int(g, 1, 5000)}
                     for _ in range(CASES - len(glorot_cases))]

    def inverse(weight, mask, order):
        out = weight.clone()
        kept = mask.flatten().nonzero().squeeze(1)
        out.view(-1)[kept[order]] = weight.flatten()[kept]
        return out

    return [
        Exercise(
            "08.1", "glorot_bound(fan_in, fan_out)",
            "the bound a of Keras's default initializer for a dense layer, Glorot-uniform: "
            "weights drawn uniformly from [−a, a] with a = √(6 / (fan_in + fan_out)).",
            reference=_glorot_bound,
            cases=tuple(glorot_cases),
            mistakes=(
                Mistake("PyTorch's default bound", "PyTorch's Linear draws from ±1/√fan_in; "
                        "Glorot-uniform uses both fans: √(6 / (fan_in + fan_out)).",
                        lambda fan_in, fan_out: 1 / math.sqrt(fan_in)),
                Mistake("Glorot-normal's standard deviation", "√(2 / (fan_in + fan_out)) is "
                        "the std of the normal variant; a uniform on [−a, a] has std a/√3, so "
                        "its bound is √(6 / (fan_in + fan_out)).",
                        lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
                Mistake("He's bound (fan_in only)", "Glorot averages the two fans: "
                        "fan_in + fan_out, not fan_in alone.",
                        lambda fan_in, fan_out: math.sqrt(6 / fan_in)),
                Mistake("forgot the square root", "a = √(6 / (fan_in + fan_out)).",
                        lambda fan_in, fan_out: 6 / (fan_in + fan_out)),
            )),
        Exercise(
            "08.2", "kept_per_pixel(mask, image_shape)",
            "how many kept weights leave each input pixel of a first Linear layer, as an "
            "image: mask is its (out_features, H·W) bool mask, image_shape (H, W); integer "
            "counts of shape (H, W).",
            reference=_kept_per_pixel,
            cases=tuple(pixel_cases),
            mistakes=(
                Mistake("counted the pruned connections", "True in the mask means kept: "
                        "count the True entries.",
                        lambda mask, image_shape: (~mask).sum(0).reshape(image_shape)),
                Mistake("a share, not a count", "Sum the kept entries of each column; do not "
                        "average them (the figure counts weights).",
                        lambda mask, image_shape: mask.float().mean(0).reshape(image_shape)),
                Mistake("the image reshaped column by column", "The inputs are the image's "
                        "pixels row by row (torch's flatten): reshape to (H, W) directly.",
                        lambda mask, image_shape:
                        mask.sum(0).reshape(image_shape[::-1]).T.contiguous()),
            )),
        Exercise(
            "08.3", "shuffle_within_mask(weight, mask, order)",
            "modification (A) in one layer: a new tensor shaped like weight whose i-th kept "
            "position (row-major) holds the order[i]-th kept value of weight; pruned positions"
            " keep what they hold.",
            reference=shuffle.permute_kept,
            cases=tuple(shuffle_cases),
            mistakes=(
                Mistake("the inverse permutation", "Position i *receives* value order[i] "
                        "(kept_values[order]); you sent value i to position order[i].",
                        inverse),
                Mistake("returned the kept values only", "Put the shuffled values back into "
                        "a copy of weight, at the kept positions (weight[mask] = ...).",
                        lambda weight, mask, order: weight[mask][order]),
            )),
    ]


def _running_average(mu: float, start: float) -> nn.BatchNorm1d:
    """torch's own BatchNorm1d (one channel, float64) with TensorFlow's momentum ``mu``
    (through ``models.tf_to_torch_momentum``), its running mean set to ``start``."""
    layer = nn.BatchNorm1d(1, momentum=models.tf_to_torch_momentum(mu)).double()
    layer.running_mean.fill_(start)
    return layer


@torch.no_grad()
def _running_mean_after(old: float, new: float, mu: float, steps: int) -> float:
    """A BN layer's running mean after ``steps`` training batches whose mean is ``new``,
    starting from ``old`` (09.1)."""
    layer = _running_average(mu, start=old)
    for _ in range(steps):
        layer(torch.full((2, 1), float(new), dtype=torch.float64))
    return float(layer.running_mean[0])


@torch.no_grad()
def _steps_to_forget(mu: float, fraction: float) -> int:
    """The fewest training steps after which a running average with TensorFlow's momentum
    ``mu`` keeps at most ``fraction`` of its old value (09.2): the layer of 09.1 started at
    1 and fed batches of mean 0 until its running mean is at most ``fraction``."""
    layer, steps = _running_average(mu, start=1.0), 0
    while float(layer.running_mean[0]) > fraction:
        layer(torch.zeros(2, 1, dtype=torch.float64))
        steps += 1
    return steps


def _exercises_09() -> list[Exercise]:
    def closed(old, new, mu, steps):
        return mu ** steps * old + (1 - mu ** steps) * new

    def log_steps(mu, fraction):
        return math.ceil(math.log(fraction) / math.log(mu))

    g = generator_for("09.1")
    mean_cases = [{"old": 2.0, "new": 0.5, "mu": 0.99, "steps": 100},
                  {"old": 1.0, "new": 0.0, "mu": 0.997, "steps": 400},
                  {"old": 0.0, "new": 1.0, "mu": 0.9, "steps": 10},
                  {"old": -1.0, "new": 3.0, "mu": 0.997, "steps": 333},
                  {"old": 0.3, "new": -0.2, "mu": 0.99, "steps": 1},
                  {"old": 1.5, "new": 0.0, "mu": 0.99, "steps": 0},
                  # edges: batches whose mean is the running mean already (it stays), an
                  # odd number of steps with μ = 1/2 (exact in floats)
                  {"old": 0.7, "new": 0.7, "mu": 0.9, "steps": 25},
                  {"old": 4.0, "new": 1.0, "mu": 0.5, "steps": 3}]
    while len(mean_cases) < CASES:  # at most 30 steps: the reference runs a BN layer
        mean_cases.append({"old": round(draw_float(g, -3.0, 3.0), 2),
                           "new": round(draw_float(g, -3.0, 3.0), 2),
                           "mu": draw_choice(g, (0.5, 0.9, 0.95, 0.99, 0.997,
                                                 round(draw_float(g, 0.5, 0.999), 3))),
                           "steps": draw_int(g, 0, 30)})
    g = generator_for("09.2")
    forget_cases = [{"mu": 0.99, "fraction": 0.5}, {"mu": 0.997, "fraction": 0.5},
                    {"mu": 0.99, "fraction": 0.01}, {"mu": 0.997, "fraction": 0.01},
                    {"mu": 0.9, "fraction": 0.1}, {"mu": 0.997, "fraction": math.exp(-1)},
                    # edges: nothing to forget (fraction 1: no step), μⁿ exactly the
                    # fraction (powers of 1/2 are exact in floats), one step
                    {"mu": 0.9, "fraction": 1.0}, {"mu": 0.5, "fraction": 0.25},
                    {"mu": 0.5, "fraction": 0.6}]
    while len(forget_cases) < CASES:  # at most ~200 steps: the reference runs a BN layer
        mu, fraction = round(draw_float(g, 0.5, 0.98), 3), round(draw_float(g, 0.02, 0.95), 3)
        steps = math.log(fraction) / math.log(mu)
        # μⁿ within float error of the fraction: whether n steps suffice would hang on the
        # last bit of the BN layer's arithmetic; the exact ties are chosen above
        if abs(steps - round(steps)) > 1e-6:
            forget_cases.append({"mu": mu, "fraction": fraction})

    return [
        Exercise(
            "09.1", "running_mean_after(old, new, mu, steps)",
            "a BN running mean (TensorFlow's convention: μ is the weight of the old value) "
            "that starts at old, after `steps` training steps whose batch mean is always "
            "new.",
            reference=_running_mean_after,
            cases=tuple(mean_cases),
            mistakes=(
                Mistake("PyTorch's convention", "In the thesis's (TensorFlow's) convention μ "
                        "weighs the *old* value: μ̂ ← μ·μ̂ + (1 − μ)·μ_B.",
                        lambda old, new, mu, steps: closed(old, new, 1 - mu, steps)),
                Mistake("a straight line, not a geometric decay", "Each step moves the average"
                        " (1 − μ) of the *remaining* way: after n steps μⁿ of the old value is "
                        "left.",
                        lambda old, new, mu, steps:
                        old + min(1.0, steps * (1 - mu)) * (new - old)),
                Mistake("old and new swapped", "The average starts at old and moves towards "
                        "new.", lambda old, new, mu, steps: closed(new, old, mu, steps)),
                Mistake("one step too few", "Every one of the `steps` batches updates the "
                        "average once: μ to the power steps.",
                        lambda old, new, mu, steps: closed(old, new, mu, max(0, steps - 1))),
            )),
        Exercise(
            "09.2", "steps_to_forget(mu, fraction)",
            "the fewest steps n after which a running average with TensorFlow momentum μ keeps"
            " at most `fraction` of its old value: the smallest n with μⁿ ≤ fraction.",
            reference=_steps_to_forget,
            cases=tuple(forget_cases),
            mistakes=(
                Mistake("the time constant 1/(1 − μ)", "1/(1 − μ) is how long the memory "
                        "lasts to 1/e; for another fraction solve μⁿ ≤ fraction: "
                        "n = ⌈ln(fraction) / ln(μ)⌉.",
                        lambda mu, fraction: round(1 / (1 - mu))),
                Mistake("PyTorch's convention", "μ is the weight of the *old* value here: "
                        "μⁿ of it is left after n steps, not (1 − μ)ⁿ.",
                        lambda mu, fraction: log_steps(1 - mu, fraction)),
                Mistake("rounded down", "n must be a whole number of steps with μⁿ ≤ "
                        "fraction: round ln(fraction) / ln(μ) *up*.",
                        lambda mu, fraction: math.floor(math.log(fraction) / math.log(mu))),
                Mistake("the share forgotten, not the share kept", "`fraction` is what is "
                        "*left* of the old value: μⁿ ≤ fraction, not 1 − μⁿ ≥ fraction.",
                        lambda mu, fraction: log_steps(mu, 1 - fraction)),
            )),
    ]


def _sparse_conv_macs(mask: torch.Tensor, size: int, stride: int, padding: int) -> int:
    """Multiply-accumulates of a Conv2d whose bool ``mask`` is ``(C_out, C_in, k, k)`` on a
    ``size × size`` input, counted by ``efficiency.macs`` (10.1)."""
    c_out, c_in, k, _ = mask.shape
    net = nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False))
    masking.set_masks(net, {"0": mask})
    return int(efficiency.macs(net, (c_in, size, size)).loc["total", "kept_macs"])


_FLOAT_OF_SIZE = {2: torch.float16, 4: torch.float32, 8: torch.float64}
_INDEX_OF_SIZE = {4: torch.int32, 8: torch.int64}


def _csr_bytes(mask: torch.Tensor, value_bytes: int, index_bytes: int) -> int:
    """Bytes of a ``(rows, cols)`` weight stored as CSR under the bool ``mask``, counted by
    ``efficiency.csr_nbytes`` on ``efficiency.to_csr``'s copy (10.2)."""
    rows, cols = mask.shape
    net = nn.Sequential(nn.Linear(cols, rows, bias=False, dtype=_FLOAT_OF_SIZE[value_bytes]))
    masking.set_masks(net, {"0": mask})
    csr = efficiency.to_csr(net, _INDEX_OF_SIZE[index_bytes])["0"]
    return efficiency.csr_nbytes(csr)


def _break_even_density(rows: int, cols: int, value_bytes: int, index_bytes: int) -> float:
    """The density at which a ``(rows, cols)`` weight costs as many bytes in CSR as dense
    (10.3): CSR's bytes grow by ``value_bytes + index_bytes`` per kept weight from the row
    pointers' ``(rows + 1) · index_bytes``; dense costs ``rows · cols · value_bytes``."""
    pointers = _csr_bytes(torch.zeros(rows, cols, dtype=torch.bool), value_bytes, index_bytes)
    return (rows * cols * value_bytes - pointers) / (value_bytes + index_bytes) / (rows * cols)


def _draw_share(g: torch.Generator) -> float:
    """The share of a drawn mask's entries kept: none, all, or anything in between (twice as
    often), so that empty and full masks come up among the drawn cases too (10.1, 10.2)."""
    return draw_choice(g, (0.0, 1.0, draw_float(g, 0.0, 1.0), draw_float(g, 0.0, 1.0)))


def _exercises_10() -> list[Exercise]:
    g = generator_for("10.1")
    conv_cases = []
    for (c_out, c_in, k), size, stride, padding, density in (
            ((8, 3, 3), 12, 1, 1, 0.3), ((6, 4, 5), 16, 2, 0, 0.2), ((4, 2, 3), 9, 2, 1, 0.5),
            ((16, 8, 1), 7, 1, 0, 0.1)):
        conv_cases.append({"mask": torch.rand(c_out, c_in, k, k, generator=g) < density,
                           "size": size, "stride": stride, "padding": padding})
    csr_rng = generator_for("10.2")
    csr_cases = []
    for (rows, cols), density, value_bytes, index_bytes in (
            ((20, 30), 0.1, 4, 4), ((400, 784), 0.05, 4, 8), ((10, 10), 0.5, 2, 4),
            ((16, 9), 0.3, 8, 8)):
        csr_cases.append({"mask": torch.rand(rows, cols, generator=csr_rng) < density,
                          "value_bytes": value_bytes, "index_bytes": index_bytes})

    # edges: nothing kept, everything kept, a window that fills the padded input (one
    # output position), a 1×1 window, odd sizes
    for (c_out, c_in, k), size, stride, padding, share in (
            ((3, 2, 3), 7, 1, 1, 0.0), ((2, 3, 3), 5, 2, 1, 1.0), ((4, 3, 5), 3, 1, 1, 0.5),
            ((5, 3, 1), 9, 3, 0, 0.5)):
        conv_cases.append({"mask": torch.rand(c_out, c_in, k, k, generator=g) < share,
                           "size": size, "stride": stride, "padding": padding})
    while len(conv_cases) < CASES:
        k, padding = draw_int(g, 1, 5), draw_int(g, 0, 2)
        size = draw_int(g, max(1, k - 2 * padding), 16)  # the window fits
        share = _draw_share(g)
        conv_cases.append({"mask": torch.rand(draw_int(g, 1, 6), draw_int(g, 1, 4), k, k,
                                              generator=g) < share,
                           "size": size, "stride": draw_int(g, 1, 3), "padding": padding})
    # edges: nothing kept (only the row pointers), everything kept, one row, one column
    for (rows, cols), share, value_bytes, index_bytes in (
            ((5, 7), 0.0, 4, 4), ((3, 9), 1.0, 4, 8), ((1, 25), 0.4, 4, 4),
            ((11, 1), 0.5, 2, 4)):
        csr_cases.append({"mask": torch.rand(rows, cols, generator=csr_rng) < share,
                          "value_bytes": value_bytes, "index_bytes": index_bytes})
    while len(csr_cases) < CASES:
        share = _draw_share(csr_rng)
        csr_cases.append({"mask": torch.rand(draw_int(csr_rng, 1, 30), draw_int(csr_rng, 1, 30),
                                             generator=csr_rng) < share,
                          "value_bytes": draw_choice(csr_rng, (2, 4, 8)),
                          "index_bytes": draw_choice(csr_rng, (4, 8))})
    g = generator_for("10.3")
    even_cases = [{"rows": 400, "cols": 784, "value_bytes": 4, "index_bytes": 4},
                  {"rows": 400, "cols": 784, "value_bytes": 4, "index_bytes": 8},
                  {"rows": 10, "cols": 10, "value_bytes": 4, "index_bytes": 4},
                  {"rows": 64, "cols": 9, "value_bytes": 2, "index_bytes": 4},
                  {"rows": 3, "cols": 100, "value_bytes": 8, "index_bytes": 8},
                  # edges: one row, one column, odd sizes
                  {"rows": 1, "cols": 50, "value_bytes": 4, "index_bytes": 4},
                  {"rows": 7, "cols": 1, "value_bytes": 8, "index_bytes": 4},
                  {"rows": 9, "cols": 13, "value_bytes": 2, "index_bytes": 8}]
    while len(even_cases) < CASES:
        case = {"rows": draw_int(g, 1, 300), "cols": draw_int(g, 1, 300),
                "value_bytes": draw_choice(g, (2, 4, 8)),
                "index_bytes": draw_choice(g, (4, 8))}
        # only where CSR can pay off: a tiny weight whose row pointers alone cost more than
        # the dense copy has a negative "break-even density", which no mask has
        if _break_even_density(**case) > 0:
            even_cases.append(case)

    def positions(mask, size, stride, padding):
        return basics.conv_output_size(size, mask.shape[-1], stride, padding) ** 2

    def conv_macs(mask, size, stride, padding, count=lambda m: int(m.sum()), uses=None):
        return count(mask) * (uses or positions(mask, size, stride, padding))

    return [
        Exercise(
            "10.1", "sparse_conv_macs(mask, size, stride, padding)",
            "the multiply-accumulates of a pruned Conv2d on one size × size input: mask is "
            "its (C_out, C_in, k, k) bool mask; every kept weight is used once per output "
            "position.",
            reference=_sparse_conv_macs,
            cases=tuple(conv_cases),
            mistakes=(
                Mistake("counted the pruned weights too", "A pruned weight multiplies "
                        "nothing: count the kept ones (mask.sum()).",
                        lambda mask, size, stride, padding:
                        conv_macs(mask, size, stride, padding, count=lambda m: m.numel())),
                Mistake("once per input position", "A weight is used once per *output* "
                        "position: (size + 2·padding − k) // stride + 1 on each side.",
                        lambda mask, size, stride, padding:
                        conv_macs(mask, size, stride, padding, uses=size * size)),
                Mistake("as if it were a Linear layer", "A convolution uses each weight at "
                        "every output position, H_out × W_out times.",
                        lambda mask, size, stride, padding: int(mask.sum())),
                Mistake("the padding left out", "The output side is (size + 2·padding − k) "
                        "// stride + 1.",
                        lambda mask, size, stride, padding: conv_macs(
                            mask, size, stride, padding,
                            uses=positions(mask, size, stride, 0))),
            )),
        Exercise(
            "10.2", "csr_bytes(mask, value_bytes, index_bytes)",
            "the bytes of a (rows, cols) weight stored in CSR under its bool mask: a value "
            "and a column index per kept weight, and rows + 1 row pointers (indices).",
            reference=_csr_bytes,
            cases=tuple(csr_cases),
            mistakes=(
                Mistake("forgot the row pointers", "CSR also stores rows + 1 row pointers, "
                        "index_bytes each.",
                        lambda mask, value_bytes, index_bytes:
                        int(mask.sum()) * (value_bytes + index_bytes)),
                Mistake("one row pointer per row", "There are rows + 1 of them: pointer i and"
                        " i + 1 bracket row i's entries.",
                        lambda mask, value_bytes, index_bytes:
                        int(mask.sum()) * (value_bytes + index_bytes)
                        + mask.shape[0] * index_bytes),
                Mistake("forgot the column indices", "Each kept value needs its column index "
                        "too: value_bytes + index_bytes per kept weight.",
                        lambda mask, value_bytes, index_bytes:
                        int(mask.sum()) * value_bytes + (mask.shape[0] + 1) * index_bytes),
                Mistake("pointers per column", "CSR compresses rows: one pointer per row "
                        "(plus one), one column index per kept weight.",
                        lambda mask, value_bytes, index_bytes:
                        int(mask.sum()) * (value_bytes + index_bytes)
                        + (mask.shape[1] + 1) * index_bytes),
            )),
        Exercise(
            "10.3", "break_even_density(rows, cols, value_bytes, index_bytes)",
            "the density at which the CSR copy of a (rows, cols) weight takes exactly as "
            "many bytes as the dense one (below it CSR is smaller); use your csr_bytes count.",
            reference=_break_even_density,
            cases=tuple(even_cases),
            mistakes=(
                Mistake("forgot the row pointers", "value/(value + index) is the limit for a "
                        "large matrix; the rows + 1 pointers cost bytes too, so the break-even"
                        " density is a little lower.",
                        lambda rows, cols, value_bytes, index_bytes:
                        value_bytes / (value_bytes + index_bytes)),
                Mistake("one row pointer per row", "There are rows + 1 row pointers.",
                        lambda rows, cols, value_bytes, index_bytes:
                        (rows * cols * value_bytes - rows * index_bytes)
                        / (value_bytes + index_bytes) / (rows * cols)),
            )),
    ]

