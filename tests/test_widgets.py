"""The explorers build and redraw headless when a control's value is set programmatically."""

from __future__ import annotations

import ipywidgets
import numpy as np
import pytest
from matplotlib.figure import Figure

from pruninglab import basics, models, widgets


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
    assert "0.99 (PyTorch 0.01)" in labels


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
