"""The explorers build and redraw headless when a control's value is set programmatically."""

from __future__ import annotations

from pruninglab import basics, gimp, models, schedules, widgets
from pruninglab import data as data_module
from pruninglab.core.train import TrainConfig
from pruninglab.experiments.config import Setup

import json

import ipywidgets
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def running_mean_line(explorer: widgets.Explorer) -> np.ndarray:
    ax = explorer.figure.axes[0]
    (line,) = [line for line in ax.get_lines() if line.get_label() == "running mean"]
    return np.asarray(line.get_ydata(), dtype=float)


@pytest.fixture(scope="module")
def explorer():
    return widgets.batchnorm_explorer(steps=60, batch_size=16, tf_momentum=0.99)


def test_batchnorm_explorer_is_a_widget_with_the_three_controls(explorer):
    assert isinstance(explorer, ipywidgets.VBox)
    assert set(explorer.controls) == {"momentum", "eps", "std"}
    assert explorer.image in explorer.children
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [label for label, _ in explorer.controls["momentum"].options]
    assert "0.99" in labels  # short enough for the slider's readout
    assert caption_of(explorer, "momentum") == "= PyTorch 0.01"


def caption_of(explorer: widgets.Explorer, name: str) -> str:
    """The text shown right of the control ``name``."""
    row = next(child for child in explorer.children if isinstance(child, ipywidgets.HBox))
    index = row.children.index(explorer.controls[name])
    return row.children[index + 1].value


def test_moving_the_momentum_slider_redraws_in_pytorchs_convention(explorer):
    before_png, before_line = explorer.image.value, running_mean_line(explorer)
    redraws = explorer.redraws
    explorer.controls["momentum"].value = 0.9
    assert explorer.redraws == redraws + 1
    assert explorer.image.value != before_png
    after = running_mean_line(explorer)
    assert not np.allclose(after, before_line)
    # the plotted running mean is PyTorch's EMA with momentum 1 - 0.9 of the batch means
    batches, _ = basics.drifting_batches(60, 16, 1.0, 3.0, explorer.controls["std"].value, 0)
    expected = basics.running_average(batches.mean(1), models.tf_to_torch_momentum(0.9), "torch")
    np.testing.assert_allclose(after, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert "PyTorch momentum 0.1" in explorer.figure.texts[0].get_text()
    assert caption_of(explorer, "momentum") == "= PyTorch 0.1"


@pytest.mark.parametrize("name, value", [("eps", 1e-1), ("std", 0.1)])
def test_eps_and_std_sliders_redraw_the_figure(explorer, name, value):
    before = explorer.image.value
    explorer.controls[name].value = value
    assert explorer.image.value != before
    assert explorer.values()[name] == pytest.approx(value)


def test_batchnorm_explorer_rejects_a_momentum_it_does_not_offer():
    with pytest.raises(ValueError, match="tf_momentum"):
        widgets.batchnorm_explorer(tf_momentum=0.42)


def test_an_explorer_passes_control_values_to_draw():
    seen = []

    def draw(figure, slope):
        seen.append(slope)
        figure.clear()
        figure.subplots().plot([0, 1], [0, slope])

    slider = ipywidgets.IntSlider(value=1, min=0, max=5)
    explorer = widgets.Explorer({"slope": slider}, draw, Figure(figsize=(2, 2)))
    slider.value = 4
    assert seen == [1, 4]
    assert list(explorer.figure.axes[0].get_lines()[0].get_ydata()) == [0, 4]


def png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")  # the IHDR chunk's width


def test_a_figure_is_rendered_at_twice_the_pixels_it_is_shown_at():
    explorer = widgets.Explorer({"slope": ipywidgets.IntSlider(value=1)},
                                lambda figure, slope: figure.clear(), Figure(figsize=(5, 2)))
    shown = 5 * widgets.PIXELS_PER_INCH
    assert explorer.image.layout.width == f"{shown}px"
    assert explorer.image.layout.max_width == "100%"  # never wider than the output area
    assert png_width(explorer.image.value) == widgets.RENDER_SCALE * shown


def test_a_pending_redraw_disables_the_controls_and_veils_the_figure_while_it_runs():
    seen = []
    slider = ipywidgets.IntSlider(value=1, min=0, max=5, description="slope")
    other = ipywidgets.Dropdown(options=["a", "b"], disabled=True)

    def draw(figure, slope, other):
        if explorer_box:  # not during construction
            explorer = explorer_box[0]
            seen.append({"busy": explorer.busy, "slider": slider.disabled,
                         "class": widgets.Explorer.BUSY_CLASS in explorer._dom_classes,
                         "status": explorer.status.value, "image": explorer.image.value})
        figure.clear()
        figure.subplots().plot([0, 1], [0, slope])

    explorer_box = []
    explorer = widgets.Explorer({"slope": slider, "other": other}, draw, Figure(figsize=(3, 2)),
                                pending=lambda slope, other: f"training {slope}" if slope > 2
                                else None)
    explorer_box.append(explorer)
    first = explorer.image.value

    slider.value = 2  # quick: no busy state
    assert seen[-1]["busy"] is False and seen[-1]["status"] == ""
    quick = explorer.image.value
    assert quick != first

    slider.value = 4  # pending: busy while it draws
    during = seen[-1]
    assert during["busy"] and during["slider"] and during["class"]
    assert "training 4" in during["status"] and "previous setting" in during["status"]
    assert during["image"] not in (quick, explorer.image.value)  # the old figure, veiled
    # and afterwards all of it is gone; a control disabled before stays disabled
    assert not explorer.busy and not slider.disabled and other.disabled
    assert widgets.Explorer.BUSY_CLASS not in explorer._dom_classes
    assert explorer.status.value == "" and explorer.redraws == 3


def test_a_redraw_that_raises_outside_a_kernel_raises_and_leaves_the_controls_usable():
    def draw(figure, slope):
        if slope == 3:
            raise RuntimeError("broken on purpose")
        figure.clear()

    slider = ipywidgets.IntSlider(value=1)
    explorer = widgets.Explorer({"slope": slider}, draw, Figure(figsize=(2, 2)),
                                pending=lambda slope: "slow")
    with pytest.raises(RuntimeError, match="broken on purpose"):
        slider.value = 3
    assert not slider.disabled and not explorer.busy and explorer.redraws == 1


def test_captions_must_name_a_control():
    with pytest.raises(ValueError, match="captions names controls that do not exist"):
        widgets.Explorer({"slope": ipywidgets.IntSlider()}, lambda figure, slope: None,
                         Figure(figsize=(2, 2)), captions={"slop": str})


# --------------------------------------------------------------------------------------
# bn_pruning_explorer (notebook 09)
# --------------------------------------------------------------------------------------


def _gimp_runs(store):
    # runs that trained at least one level (a fetch that finds nothing leaves an empty folder)
    return [json.loads((path / "config.json").read_text())
            for path in sorted(store.glob("gimp-*")) if (path / "record_000.json").is_file()]


def test_bn_pruning_explorer_trains_each_bn_setting_once_and_redraws(tmp_path):
    digits = data_module.load("digits")
    setup = Setup("mlp-bn", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    config = gimp.lr_rewinding(10, 0.5)
    explorer = widgets.bn_pruning_explorer(setup, digits, config, store=tmp_path)
    assert set(explorer.controls) == {"momentum", "eps"}
    assert list(explorer.runs) == [(0.99, 1e-3)]
    stored = _gimp_runs(tmp_path)
    assert [(c["setup"]["bn_momentum"], c["setup"]["bn_eps"]) for c in stored] == [(0.01, 1e-3)]

    before = explorer.image.value
    explorer.controls["momentum"].value = 0.997
    explorer.controls["eps"].value = 1e-5  # now both of the thesis's settings are stored
    assert set(explorer.runs) == {(0.99, 1e-3), (0.997, 1e-3), (0.997, 1e-5)}
    assert explorer.image.value != before
    ax = explorer.figure.axes[0]
    assert "PyTorch 0.003" in ax.get_title()
    assert len(explorer.runs[(0.997, 1e-5)]) == len(config.densities())
    assert sum(line.get_label().startswith("thesis setting") for line in ax.get_lines()) == 2

    # without compute, a setting that is not stored is reported, not trained
    fetch_only = widgets.bn_pruning_explorer(setup, digits, config, tf_momentum=0.9, eps=1e-2,
                                             compute=False, store=tmp_path)
    assert "not in the run store" in fetch_only.figure.axes[0].get_title()
    assert fetch_only.runs == {} and len(_gimp_runs(tmp_path)) == 3
    fetch_only.controls["momentum"].value = 0.99
    fetch_only.controls["eps"].value = 1e-3  # stored: drawn at once
    assert list(fetch_only.runs) == [(0.99, 1e-3)]
    assert fetch_only.runs[(0.99, 1e-3)]["test_accuracy"].tolist() == \
        explorer.runs[(0.99, 1e-3)]["test_accuracy"].tolist()


def test_bn_pruning_explorer_needs_a_model_with_bn_and_offered_values(digits):
    setup = Setup("mlp", "digits", TrainConfig(schedules.resnet(10), batch_size=32))
    with pytest.raises(ValueError, match="BatchNorm"):
        widgets.bn_pruning_explorer(setup, digits, gimp.lr_rewinding(10, 0.5), compute=False)
    with pytest.raises(ValueError, match="eps"):
        widgets.bn_pruning_explorer(setup.replace(model="mlp-bn"), digits,
                                    gimp.lr_rewinding(10, 0.5), eps=0.5, compute=False)


# --------------------------------------------------------------------------------------
# rewind_explorer (notebook 06)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("percent, expected", [
    (25, "sGIMP(25%)\nweights back to step 300 of T=400, learning rate from the start"),
    (0, "sGIMP(0%) = LR rewinding (Alg. 4)\nweights back to step 400 of T=400"),
    (100, "sGIMP(100%) = weight rewinding (Alg. 2)\nweights back to step 0 of T=400"),
])
def test_the_rewind_title_names_the_label_once_and_the_preset_it_equals(percent, expected):
    title = widgets.rewind_title(percent, gimp.sgimp(400, 0.1, rewind_fraction=percent / 100))
    assert title.startswith(expected)
    assert title.count("sGIMP") == 1 and "sgimp" not in title


def test_the_rewind_explorer_titles_a_stored_run_without_repeating_its_label(tmp_path, digits):
    setup = Setup("mlp", "digits", TrainConfig(schedules.resnet(8), batch_size=32))
    explorer = widgets.rewind_explorer(setup, digits, 0.5, percents=(0, 50), K=0.7,
                                       store=tmp_path)
    assert list(explorer.runs) == [50]
    title = explorer.figure.axes[0].get_title()
    assert title.startswith("sGIMP(50%)\nweights back to step 4 of T=8")
    explorer.controls["percent"].value = 0
    assert explorer.figure.axes[0].get_title().startswith("sGIMP(0%) = LR rewinding (Alg. 4)")


def test_the_rewind_explorer_announces_a_training_only_when_the_run_is_not_stored(tmp_path,
                                                                                 digits):
    setup = Setup("mlp", "digits", TrainConfig(schedules.resnet(8), batch_size=32))
    explorer = widgets.rewind_explorer(setup, digits, 0.5, percents=(0, 50), K=0.7,
                                       store=tmp_path)
    statuses = []
    explorer.status.observe(lambda change: statuses.append(change["new"]), names="value")
    explorer.controls["percent"].value = 0  # not stored: trained, with a busy state
    assert any("training sGIMP(0%)" in s for s in statuses)
    statuses.clear()
    explorer.controls["percent"].value = 50  # stored: no busy state
    assert statuses == [] and explorer.redraws == 3


def test_the_rewind_explorer_names_its_baselines_in_the_margin_without_overlaps(tmp_path,
                                                                               digits):
    setup = Setup("mlp", "digits", TrainConfig(schedules.resnet(8), batch_size=32))
    config = gimp.sgimp(8, 0.5, rewind_fraction=0.5, K=0.7)
    run = gimp.run(setup, config, data=digits, store=tmp_path, progress=False)
    baselines = pd.concat([run.assign(method=f"copy {i}") for i in range(4)])  # one end
    explorer = widgets.rewind_explorer(setup, digits, 0.5, percents=(50,), K=0.7,
                                       baselines=baselines, store=tmp_path)
    ax = explorer.figure.axes[0]
    labels = [t for t in ax.texts if t.get_text().startswith("copy")]
    assert len(labels) == 4
    heights = sorted(t.get_position()[1] for t in labels)  # axes fractions
    assert all(b - a >= 0.07 - 1e-9 for a, b in zip(heights, heights[1:]))
    assert all(t.get_position()[0] > 1 for t in labels)  # right of the axes
    canvas = FigureCanvasAgg(explorer.figure)
    canvas.draw()  # lays the figure out as render_png does
    renderer = canvas.get_renderer()
    figure_box = explorer.figure.bbox
    for t in labels:  # the labels fit in the figure
        box = t.get_window_extent(renderer)
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1
