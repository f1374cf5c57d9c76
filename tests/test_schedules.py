"""Learning-rate schedules: the thesis presets at their boundary iterations (Section 3.4),
scaling, and validation."""

from __future__ import annotations

from pruninglab import schedules
from pruninglab.core.schedules import Schedule

import pytest


@pytest.mark.parametrize(
    "position, lr",
    [(0, 0.1), (35_999, 0.1), (36_000, 0.01), (53_999, 0.01), (54_000, 0.001),
     (71_999, 0.001), (72_000, 0.001), (10**7, 0.001)],
)
def test_resnet_schedule_divides_by_10_at_36k_and_54k(position, lr):
    s = schedules.resnet()
    assert s.steps == 72_000
    assert s(position) == pytest.approx(lr)


@pytest.mark.parametrize(
    "position, lr",
    [(0, 0.1), (31_999, 0.1), (32_000, 0.02), (47_999, 0.02), (48_000, 0.004),
     (63_999, 0.004), (64_000, 0.0008), (80_000, 0.0008), (10**7, 0.0008)],
)
def test_vgg_schedule_divides_by_5_at_32k_48k_64k(position, lr):
    s = schedules.vgg()
    assert s.steps == 80_000
    assert s(position) == pytest.approx(lr)


@pytest.mark.parametrize(
    "position, lr",
    [(0, 0.2), (31_999, 0.2), (32_000, 0.04), (47_999, 0.04), (48_000, 0.008),
     (63_999, 0.008), (64_000, 0.0016), (10**7, 0.0016)],
)
def test_wrn_schedule_starts_at_0_2_and_divides_by_5(position, lr):
    s = schedules.wrn()
    assert s.steps == 80_000
    assert s(position) == pytest.approx(lr)


def test_presets_by_name_and_scaled_presets_keep_their_fractions():
    assert schedules.preset("vgg") == schedules.vgg()
    assert schedules.preset("resnet", 400).boundaries == (200, 300)
    assert schedules.preset("wrn", 1000).boundaries == (400, 600, 800)
    assert schedules.resnet(400) == schedules.resnet().scaled(400)


@pytest.mark.parametrize("steps", [100, 400, 1000, 72_000 * 2])
def test_scaled_keeps_boundary_fractions_and_values(steps):
    base = schedules.vgg()
    s = base.scaled(steps)
    assert s.steps == steps and s.values == base.values
    for b_scaled, b in zip(s.boundaries, base.boundaries):
        assert b_scaled / steps == pytest.approx(b / base.steps, abs=1 / steps)


def test_scaled_lr_multiplies_every_rate():
    s = schedules.resnet().scaled_lr(0.5)
    assert s.boundaries == (36_000, 54_000)
    assert s.values == pytest.approx((0.05, 0.005, 0.0005))


def test_constant_schedule_holds_one_rate_forever():
    s = schedules.constant(0.03, 10)
    assert s(0) == s(9) == s(10**6) == 0.03


def test_schedule_uses_half_open_intervals():
    s = Schedule(10, (3, 7), (1.0, 2.0, 3.0))
    assert [s(i) for i in range(11)] == [1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]


@pytest.mark.parametrize(
    "kwargs, field",
    [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"),
     ({"boundaries": (5,)}, "values"), ({"values": (0.1, 0.01)}, "values"),
     ({"boundaries": (7, 3)}, "boundaries"), ({"boundaries": (3, 3)}, "boundaries"),
     ({"boundaries": (0, 5)}, "boundaries"), ({"boundaries": (3, 11)}, "boundaries"),
     ({"values": (0.1, -0.01, 0.001)}, "values"),
     ({"values": (0.1, float("nan"), 0.001)}, "values")],
)
def test_bad_schedules_raise_value_error_naming_the_field(kwargs, field):
    args = {"steps": 10, "boundaries": (3, 7), "values": (0.1, 0.01, 0.001), **kwargs}
    with pytest.raises(ValueError, match=field):
        Schedule(**args)


def test_negative_position_and_unknown_preset_raise():
    with pytest.raises(ValueError, match="position"):
        schedules.resnet()(-1)
    with pytest.raises(ValueError, match="unknown schedule preset") as info:
        schedules.preset("cosine")
    assert "resnet" in str(info.value)
