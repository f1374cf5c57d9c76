"""ipywidgets explorers built on the library: move a slider, watch a figure change.

Every explorer is a plain function that returns an :class:`Explorer`, an ``ipywidgets.VBox``
holding its controls above the figure. The figure is a matplotlib ``Figure`` that is not
registered with pyplot and is rendered to PNG into an ``ipywidgets.Image`` on every change,
so explorers need no interactive matplotlib backend, work with ``MPLBACKEND=Agg``, and can
be built and driven headless (set a control's ``value`` and the figure redraws).

In a notebook::

    explorer = pl.widgets.batchnorm_explorer()
    if INTERACTIVE:
        display(explorer)

To write a new explorer, build the controls and a ``draw(figure, **values)`` function that
clears and redraws the figure, and return ``Explorer(controls, draw, figure)``. Give it
``pending`` when a draw may train a model: while such a draw runs, the explorer disables
its controls, veils the old figure and shows the training's progress bars inside itself.
Figures are shown :data:`PIXELS_PER_INCH` CSS pixels per inch of figure and rendered at
twice that, so that they stay sharp.

Explorers:

* :func:`batchnorm_explorer` -- BN momentum (TensorFlow's convention with PyTorch's value
  beside it) and eps: running statistics tracking a drifting signal, train vs eval output
  (thesis Section 2.3).
* :func:`pruning_playground` -- density, saliency and scope: one-shot pruning of a trained
  model, its test accuracy against density and each layer's density (Section 2.4).
* :func:`rewind_explorer` -- sGIMP's rewind percentage: fetch or run sGIMP(X%) and redraw
  its accuracy-compression curve (Section 3.2).
* :func:`bn_pruning_explorer` -- BN momentum and eps of an iteratively pruned network: fetch
  or run its GIMP run and redraw it beside the thesis's two settings (Section 3.3.3).
"""

from __future__ import annotations

import copy
import html
import io
import warnings
from collections.abc import Callable, Mapping

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..core import masking, models, pruning
from ..core import saliency as saliency_module
from ..core.train import evaluate
from ..experiments import bn, comparisons, gimp, gimp_runs
from . import basics, plots

__all__ = [
    "PIXELS_PER_INCH",
    "RENDER_SCALE",
    "BN_TF_MOMENTA",
    "BN_EPS_VALUES",
    "PLAYGROUND_DENSITIES",
    "Explorer",
    "render_png",
    "stale_png",
    "batchnorm_explorer",
    "pruning_playground",
    "rewind_explorer",
    "rewind_title",
    "bn_pruning_explorer",
]


# CSS pixels per inch of figure: CSS's own inch, so that a figure's text in points shows at
# that size beside the notebook's text. A figure ``w`` inches wide shows ``w * 96`` pixels
# wide (never wider than the output area, which then scales it down) and is rendered at
# twice that resolution, so that it stays sharp on a high-density screen.
PIXELS_PER_INCH = 96
RENDER_SCALE = 2


def render_png(figure: Figure, dpi: int = RENDER_SCALE * PIXELS_PER_INCH) -> bytes:
    """The figure as PNG bytes, ``dpi`` pixels per inch of figure."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def stale_png(figure: Figure, note: str) -> bytes:
    """The figure as PNG bytes, veiled in white with ``note`` across it: what an explorer
    shows while it computes the next figure (the figure itself is left unchanged)."""
    veil = figure.add_artist(Rectangle((0, 0), 1, 1, transform=figure.transFigure,
                                       facecolor="white", alpha=0.65, zorder=10))
    text = figure.text(0.5, 0.5, note, ha="center", va="center", fontsize=13, zorder=11,
                       wrap=True)
    veil.set_in_layout(False)
    text.set_in_layout(False)
    try:
        return render_png(figure)
    finally:
        veil.remove()
        text.remove()


class Explorer(widgets.VBox):
    """Controls above a figure that redraws whenever a control's value changes.

    Layout, top to bottom: ``header``; the controls on one row (each followed by its
    caption); a status line; an output area; the figure (an ``ipywidgets.Image``,
    ``figure``'s width in inches times :data:`PIXELS_PER_INCH` CSS pixels wide, at most the
    output area's width).

    A redraw that takes a while -- one for which ``pending`` returns a message -- shows
    that it is working: the controls are disabled, the old figure is veiled with the
    message across it, the status line says what is computed, and the progress bars the
    draw shows (tqdm) appear in the output area. When the draw ends, all of that goes
    away. If a redraw raises in a live notebook (after the first draw), the traceback shows
    in the output area and the old figure stays; outside a kernel, and in the first draw,
    it raises.

    Args:
        controls: ``{name: widget}``; each widget's ``value`` is passed to ``draw`` as
            the keyword ``name``.
        draw: ``draw(figure, **values)``; clears and redraws ``figure``.
        figure: a ``matplotlib.figure.Figure`` (not a pyplot one, so that a notebook does
            not show it a second time).
        header: an optional widget above the controls (e.g. an explanation).
        captions: ``{name: caption(value) -> str}``: a short text shown right of the
            control ``name`` and updated with it (e.g. PyTorch's momentum beside
            TensorFlow's).
        pending: ``pending(**values) -> str | None``: what the draw for ``values`` must
            compute (e.g. ``"training sGIMP(25%)"``), or ``None`` when it is quick.

    Attributes:
        controls, figure: as given.
        image: the ``ipywidgets.Image`` that shows the rendered figure.
        status: the ``ipywidgets.HTML`` line that says what is being computed.
        output: the ``ipywidgets.Output`` that holds progress bars and errors of a redraw.
        redraws: how many times the figure was drawn (1 after construction).
        busy: whether a redraw is computing.
    """

    BUSY_CLASS = "pruninglab-busy"  # on the explorer's element while a redraw computes

    def __init__(self, controls: Mapping[str, widgets.Widget], draw: Callable[..., None],
                 figure: Figure, header: widgets.Widget | None = None, *,
                 captions: Mapping[str, Callable[[object], str]] | None = None,
                 pending: Callable[..., str | None] | None = None) -> None:
        captions = dict(captions or {})
        unknown = sorted(set(captions) - set(controls))
        if unknown:
            raise ValueError(f"captions names controls that do not exist: {unknown}; the "
                             f"controls are {sorted(controls)}")
        width = round(figure.get_figwidth() * PIXELS_PER_INCH)
        image = widgets.Image(format="png", layout=widgets.Layout(
            width=f"{width}px", max_width="100%", height="auto"))
        row: list[widgets.Widget] = []
        self._captions: dict[str, tuple[widgets.Label, Callable[[object], str]]] = {}
        for name, control in controls.items():
            row.append(control)
            if name in captions:
                label = widgets.Label(captions[name](control.value),
                                      layout=widgets.Layout(margin="0 1.5em 0 0"))
                self._captions[name] = (label, captions[name])
                row.append(label)
        self.status = widgets.HTML("")
        self.output = widgets.Output()
        rows: list[widgets.Widget] = [] if header is None else [header]
        rows += [widgets.HBox(row, layout=widgets.Layout(flex_flow="row wrap",
                                                         align_items="center")),
                 self.status, self.output, image]
        super().__init__(children=rows)
        self.controls = dict(controls)
        self.figure = figure
        self.image = image
        self.redraws = 0
        self.busy = False
        self._disabled: dict[str, bool] = {}  # each control's own state while busy
        self._draw = draw
        self._pending = pending
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self._draw(self.figure, **self.values())  # a broken explorer fails in its cell
        self._show()

    def values(self) -> dict:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def redraw(self) -> None:
        """Draw the figure for the current values and show it; while a draw that
        ``pending`` announces runs, show that it is busy (see the class)."""
        values = self.values()
        for name, (label, caption) in self._captions.items():
            label.value = caption(values[name])
        message = self._pending(**values) if self._pending is not None else None
        self.output.clear_output()
        drawn = False
        if message:
            self._set_busy(message)
        try:
            with self.output:  # in a kernel: progress bars and a traceback show here
                self._draw(self.figure, **values)
                drawn = True
        finally:
            if message:
                self._set_idle()
        if drawn:
            self.output.clear_output()
            self.status.value = ""  # also after a setting that could not be drawn
            self._show()
        else:
            self.status.value = ("<b>This setting could not be drawn</b> (the error is "
                                 "below); the figure shows the previous setting.")

    def _show(self) -> None:
        self.image.value = render_png(self.figure)
        self.redraws += 1

    def _set_busy(self, message: str) -> None:
        self.busy = True
        self._disabled = {name: c.disabled for name, c in self.controls.items()}
        for control in self.controls.values():
            control.disabled = True
        self.add_class(self.BUSY_CLASS)
        self.status.value = (f"<b>Computing:</b> {html.escape(message)}. The figure below "
                             f"is the previous setting's.")
        self.image.value = stale_png(self.figure, f"{message} …")

    def _set_idle(self) -> None:
        for name, control in self.controls.items():
            control.disabled = self._disabled[name]
        self.remove_class(self.BUSY_CLASS)
        self.status.value = ""
        self.busy = False

    def _on_change(self, change) -> None:
        self.redraw()


# --------------------------------------------------------------------------------------
# Batch normalization (thesis Section 2.3)
# --------------------------------------------------------------------------------------

# TensorFlow momenta offered by the explorer; the thesis uses 0.99 (WRN, VGG) and 0.997
# (ResNets), Section 3.4.
BN_TF_MOMENTA = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.997, 0.999)


def _momentum_slider(momenta, value: float) -> widgets.SelectionSlider:
    """A slider over TensorFlow momenta; :func:`_pytorch_momentum` is its caption."""
    return widgets.SelectionSlider(
        options=[(f"{m:g}", m) for m in momenta], value=value, description="TF momentum μ",
        style={"description_width": "initial"}, layout=widgets.Layout(width="270px"),
        continuous_update=False)


def _pytorch_momentum(tf_momentum: float) -> str:
    """PyTorch's momentum for a TensorFlow one (shown beside the momentum slider)."""
    return f"= PyTorch {models.tf_to_torch_momentum(tf_momentum):g}"


def batchnorm_explorer(steps: int = 300, batch_size: int = 32, mean_start: float = 1.0,
                       mean_end: float = 3.0, std: float = 0.5, seed: int = 0,
                       tf_momentum: float = 0.99, eps: float = 1e-3) -> Explorer:
    """BN's running statistics and its train/eval gap, with sliders for momentum and eps.

    One channel sees ``steps`` batches whose true mean drifts from ``mean_start`` to
    ``mean_end`` (:func:`pruninglab.course.basics.drifting_batches`). The running mean and variance
    start at PyTorch's 0 and 1 and follow :func:`pruninglab.course.basics.batch_norm_by_hand`.

    Panels: (1) batch means, the true mean and the running mean; (2) batch variances and
    the running variance; (3) the last batch normalized in training mode (its own
    statistics) and in evaluation mode (the running ones).

    Controls: ``momentum`` (a selection of TensorFlow values, each labelled with PyTorch's
    equivalent), ``eps`` (log slider) and ``std`` (the channel's standard deviation, log
    slider: eps matters once ``std**2`` comes near it).

    Args:
        steps, batch_size, mean_start, mean_end, seed: the drifting signal.
        std, tf_momentum, eps: the controls' starting values.
    """
    if tf_momentum not in BN_TF_MOMENTA:
        raise ValueError(f"tf_momentum must be one of {BN_TF_MOMENTA}, got {tf_momentum!r}")
    basics.drifting_batches(steps, batch_size, mean_start, mean_end, std, seed)  # validates

    def draw(figure: Figure, momentum: float, eps: float, std: float) -> None:
        # the same seed every time: only the scale of the noise changes with ``std``
        batches, means = basics.drifting_batches(steps, batch_size, mean_start, mean_end,
                                                 std, seed)
        torch_momentum = models.tf_to_torch_momentum(momentum)
        running_mean, running_var = torch.zeros(1), torch.ones(1)
        track_mean, track_var = [], []
        for batch in batches:
            _, running_mean, running_var = basics.batch_norm_by_hand(
                batch[:, None], running_mean, running_var, training=True,
                momentum=torch_momentum, eps=eps)
            track_mean.append(float(running_mean))
            track_var.append(float(running_var))
        last = batches[-1][:, None]
        y_train, _, _ = basics.batch_norm_by_hand(last, running_mean, running_var,
                                                  training=True, eps=eps)
        y_eval, _, _ = basics.batch_norm_by_hand(last, running_mean, running_var,
                                                 training=False, eps=eps)

        figure.clear()
        ax_mean, ax_var, ax_out = figure.subplots(1, 3)
        t = np.arange(1, steps + 1)
        ax_mean.plot(t, batches.mean(1).numpy(), ".", ms=2, color="0.6", label="batch mean")
        ax_mean.plot(t, means.numpy(), "--", color="k", lw=1, label="true mean")
        ax_mean.plot(t, track_mean, color="C0", lw=2, label="running mean")
        ax_mean.set(xlabel="step", title="running mean")
        ax_mean.legend(fontsize=8)
        ax_var.plot(t, batches.var(1).numpy(), ".", ms=2, color="0.6", label="batch variance")
        ax_var.axhline(std**2, ls="--", color="k", lw=1, label="true variance")
        ax_var.plot(t, track_var, color="C1", lw=2, label="running variance")
        ax_var.set(xlabel="step", yscale="log", title="running variance (log)")
        ax_var.legend(fontsize=8)
        bins = np.linspace(-4, 4, 33)
        for y, label, color in ((y_train, "train mode", "C2"), (y_eval, "eval mode", "C3")):
            values = y.flatten().clamp(-4, 4).numpy()
            ax_out.hist(values, bins=bins, alpha=0.5, color=color,
                        label=f"{label}: mean {float(y.mean()):+.2f}, std {float(y.std()):.2f}")
        ax_out.set(xlabel="BN output of the last batch", title="train vs eval")
        ax_out.legend(fontsize=8)
        figure.suptitle(f"TF momentum {momentum:g} = PyTorch momentum {torch_momentum:g}, "
                        f"eps {eps:.1e}, channel std {std:g}", fontsize=10)

    style = {"description_width": "initial"}
    controls = {
        "momentum": _momentum_slider(BN_TF_MOMENTA, tf_momentum),
        "eps": widgets.FloatLogSlider(value=eps, base=10, min=-6, max=0, step=0.5,
                                      description="eps", readout_format=".0e", style=style,
                                      layout=widgets.Layout(width="180px"),
                                      continuous_update=False),
        "std": widgets.FloatLogSlider(value=std, base=10, min=-2.5, max=0.5, step=0.25,
                                      description="channel std", style=style,
                                      layout=widgets.Layout(width="220px"),
                                      continuous_update=False),
    }
    header = widgets.HTML(
        "Batch normalization (thesis Section 2.3): the running averages follow "
        "<i>x' = μx + (1 − μ)y</i> in TensorFlow's convention; PyTorch's momentum is 1 − μ.")
    figure = Figure(figsize=(11, 3.6), layout="constrained")
    return Explorer(controls, draw, figure, header, captions={"momentum": _pytorch_momentum})


# --------------------------------------------------------------------------------------
# Pruning playground (thesis Section 2.4)
# --------------------------------------------------------------------------------------

# Densities at which the playground draws its accuracy curve (the slider adds its own point).
PLAYGROUND_DENSITIES = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)


def pruning_playground(model: torch.nn.Module, data, density: float = 0.1,
                       saliency: str = "magnitude", scope: str = "global",
                       snip_batches: int = 4, batch_size: int = 128,
                       curve: tuple[float, ...] = PLAYGROUND_DENSITIES) -> Explorer:
    """One-shot pruning of a trained model, live: a density slider, a saliency dropdown and
    a scope toggle re-prune a copy of ``model`` (never ``model`` itself) and redraw.

    Panels: (1) test accuracy against density (log axis) for the chosen saliency and scope,
    the curve at ``curve``'s densities (computed once per saliency and scope) and the
    slider's density marked; (2) each layer's density after pruning (Figure 2.9: global
    pruning spreads the density unevenly, layerwise keeps it equal). A layer that global
    pruning empties is named in the title.

    Args:
        model: a trained model on ``data``'s device (masked or not; an already pruned model
            can only be pruned further, so the slider stops at its density).
        data: a :class:`~pruninglab.core.data.Dataset`; accuracy is measured on its test split,
            SNIP's gradient on its first ``snip_batches * batch_size`` training images.
        density, saliency, scope: the controls' starting values; saliency is one of
            :data:`pruninglab.core.saliency.NAMES`, scope ``"global"`` or ``"layerwise"``.

    The explorer's ``result`` dict holds the last draw's ``density``, ``saliency``,
    ``scope``, ``accuracy``, ``layers`` (``{layer: density}``) and ``emptied`` (layer names).
    """
    base = copy.deepcopy(model).eval()
    masking.add_masks(base)
    top = masking.density(base)
    density = pruning.check_density(density)
    if density > top:
        raise ValueError(f"density must not exceed the model's density {top:g}, got {density!r}")
    if saliency not in saliency_module.NAMES:
        raise ValueError(f"saliency must be one of {saliency_module.NAMES}, got {saliency!r}")
    if scope not in pruning.SCOPES:
        raise ValueError(f"scope must be one of {pruning.SCOPES}, got {scope!r}")
    n = min(snip_batches, max(1, len(data.x_train) // batch_size))
    size = min(batch_size, len(data.x_train))
    criteria = {
        "magnitude": saliency_module.magnitude,
        "snip": saliency_module.snip(data.x_train, data.y_train, n_batches=n, batch_size=size),
        "random": saliency_module.random(0),
    }
    layers = masking.masked_layers(base)
    scores: dict[str, dict] = {}  # saliency -> scores of the unpruned model, computed once
    curves: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (saliency, scope) -> points
    dense_accuracy = evaluate(base, data.x_test, data.y_test)["accuracy"]
    result: dict = {}

    def pruned(density: float, saliency: str, scope: str) -> tuple[torch.nn.Module, list[str]]:
        if saliency not in scores:
            scores[saliency] = criteria[saliency](base, layers)
        net = copy.deepcopy(base)
        with warnings.catch_warnings():  # an emptied layer is named in the title instead
            warnings.simplefilter("ignore", pruning.EmptyLayerWarning)
            pruning.prune(net, density, scope=scope,
                          saliency=lambda model, layers: scores[saliency])
        return net, [n for n, m in masking.get_masks(net).items() if not m.any()]

    def draw(figure: Figure, density: float, saliency: str, scope: str) -> None:
        density = min(float(density), top)
        key = (saliency, scope)
        if key not in curves:
            curves[key] = [(d, evaluate(pruned(d, saliency, scope)[0], data.x_test,
                                        data.y_test)["accuracy"])
                           for d in curve if d <= top]
        net, emptied = pruned(density, saliency, scope)
        accuracy = evaluate(net, data.x_test, data.y_test)["accuracy"]
        result.update(density=density, saliency=saliency, scope=scope, accuracy=accuracy,
                      layers=masking.layer_densities(net), emptied=emptied)

        figure.clear()
        ax_acc, ax_layers = figure.subplots(1, 2)
        xs, ys = zip(*curves[key]) if curves[key] else ((), ())
        ax_acc.plot(xs, [100 * y for y in ys], "o-", color="C0", ms=4, label=f"{saliency}, {scope}")
        ax_acc.plot([density], [100 * accuracy], "*", color="C3", ms=14,
                    label=f"density {density:.3g}")
        ax_acc.axhline(100 * dense_accuracy, color="k", lw=0.8, ls=":", label="unpruned")
        ax_acc.set(xscale="log", xlabel="density (kept / prunable weights)",
                   ylabel="test accuracy (%)", ylim=(0, 100),
                   title="one-shot pruning, no retraining")
        ax_acc.invert_xaxis()
        ax_acc.grid(True, which="both", alpha=0.3)
        ax_acc.legend(fontsize=8)
        plots.layer_densities(net, ax=ax_layers)
        ax_layers.axhline(100 * density, color="C3", lw=1, ls="--", label="overall density")
        highest = max([density, *result["layers"].values()])
        ax_layers.set_ylim(0, min(100.0, 130 * highest))
        ax_layers.legend(fontsize=8)
        title = f"{saliency}, {scope}: accuracy {100 * accuracy:.1f}% at density {density:.3g}"
        if emptied:
            title += f"; EMPTIED: {', '.join(emptied)} (Figure 2.9)"
        figure.suptitle(title, fontsize=10, color="C3" if emptied else "k")

    style = {"description_width": "initial"}
    controls = {
        "density": widgets.FloatLogSlider(value=density, base=10, min=-3, max=float(np.log10(top)),
                                          step=0.05, description="density", readout_format=".3f",
                                          style=style, layout=widgets.Layout(width="290px"),
                                          continuous_update=False),
        "saliency": widgets.Dropdown(options=list(saliency_module.NAMES), value=saliency,
                                     description="saliency", style=style,
                                     layout=widgets.Layout(width="190px")),
        "scope": widgets.ToggleButtons(options=list(pruning.SCOPES), value=scope,
                                       description="scope",
                                       # its label left of the buttons, not above them
                                       layout=widgets.Layout(display="flex",
                                                             align_items="center"),
                                       style={**style, "button_width": "100px"}),
    }
    header = widgets.HTML(
        "Pruning (thesis Section 2.4): keep the weights with the largest saliency — "
        "magnitude |w|, SNIP |w·g| or random — with one global threshold (automatic) or "
        "the same density in every layer (predefined). A copy of the model is pruned.")
    figure = Figure(figsize=(10.5, 3.8), layout="constrained")
    explorer = Explorer(controls, draw, figure, header)
    explorer.result = result
    return explorer



# --------------------------------------------------------------------------------------
# Explorers over GIMP runs: each setting is fetched from the run store or trained once
# --------------------------------------------------------------------------------------


def _training_message(setup, config: gimp.GIMPConfig, data, store, compute: bool,
                      label: str) -> str | None:
    """An explorer's ``pending`` answer for one GIMP run: what it must train (``label``,
    its levels and steps) when ``compute`` is on and the store lacks the run, else
    ``None``."""
    if not compute or gimp_runs.run(setup, config, data=data, store=store, progress=False,
                                    fetch_only=True) is not None:
        return None
    return (f"training {label}: {len(config.densities())} levels of "
            f"{setup.train.steps} steps")


# --------------------------------------------------------------------------------------
# sGIMP's rewind percentage (thesis Section 3.2, Algorithm 6; notebook 06)
# --------------------------------------------------------------------------------------


def rewind_explorer(setup, data, target_density: float, percents=(0, 25, 50, 75, 100),
                    K: float = 0.7, baselines=None, by: str = "method", compute: bool = True,
                    store=None, progress: bool = False) -> Explorer:
    """A slider over sGIMP's rewind percentage that fetches the run from the run store --
    or, with ``compute``, trains it once when missing -- and redraws test accuracy against
    compression beside ``baselines``. A stored run redraws in well under a second.

    Args:
        setup: a :class:`~pruninglab.experiments.config.Setup`; its schedule's length is T.
        data: the loaded data set for ``setup``.
        target_density: where pruning stops.
        percents: the slider's values, rewind % of T (0 = LR rewinding, 100 = weight
            rewinding).
        K: the density multiplier per level.
        baselines: other runs drawn in grey, one line per value of their column ``by``.
        compute: train a run that is not in the store (else the figure says it is missing).
        store: run-store root (``None``: the default).
        progress: progress bars while training.

    Attributes of the returned explorer: ``runs`` (``{percent: DataFrame}`` fetched so far).
    """
    percents = list(percents)
    if not percents or any(not 0 <= p <= 100 for p in percents):
        raise ValueError(f"percents must be rewind percentages in [0, 100], got {percents!r}")
    slider = widgets.SelectionSlider(options=percents, value=percents[len(percents) // 2],
                                     description="rewind %", continuous_update=False)
    fetched: dict = {}

    def configured(percent: float) -> gimp.GIMPConfig:
        return gimp.sgimp(setup.train.steps, target_density, rewind_fraction=percent / 100, K=K)

    def pending(percent: float) -> str | None:
        return _training_message(setup, configured(percent), data, store, compute,
                                 f"sGIMP({percent:g}%)")

    def draw(figure: Figure, percent: float) -> None:
        config = configured(percent)
        run = gimp_runs.run(setup, config, data=data, store=store, progress=progress,
                            fetch_only=not compute)
        figure.clear()
        ax = figure.add_subplot()
        ends = {}
        if baselines is not None and len(baselines):
            for label, part in baselines.groupby(by):
                g = part.groupby("level")
                x, y = g["compression"].median(), 100 * g["test_accuracy"].median()
                ax.plot(x, y, color="0.75", lw=1)
                ends[str(label)] = (x.iloc[-1], y.iloc[-1])
        if run is None:
            ax.set_title(f"sGIMP({percent}%) is not in the run store")
        else:
            fetched[percent] = run
            plots.accuracy_vs_compression(run.assign(method=f"sGIMP({percent}%)"), ax=ax,
                                          title=rewind_title(percent, config))
        plots.label_line_ends(ax, ends)

    explorer = Explorer({"percent": slider}, draw, Figure(figsize=(8, 4.2), layout="constrained"),
                        pending=pending)
    explorer.runs = fetched
    return explorer


def rewind_title(percent: float, config: gimp.GIMPConfig) -> str:
    """The rewind explorer's title: sGIMP(X%), the algorithm of notebook 05 it is when it
    is one (0 % is LR rewinding, 100 % weight rewinding), and below it where its levels
    restart."""
    algorithms = comparisons.algorithms(config.train_steps, config.target_density)
    same_as = {c.method: f" = {label}" for label, c in algorithms.items()}
    return (f"sGIMP({percent:g}%){same_as.get(config.method, '')}\nweights back to step "
            f"{config.rewind_point(0)} of T={config.train_steps}, learning rate from the start")


# --------------------------------------------------------------------------------------
# BN settings and iterative pruning (thesis Section 3.3.3, Figure 3.12; notebook 09)
# --------------------------------------------------------------------------------------

# eps values the explorer offers: the thesis's two (1e-5, 1e-3) and their neighbours.
BN_EPS_VALUES = (1e-5, 1e-4, 1e-3, 1e-2)


def bn_pruning_explorer(setup, data, config, tf_momentum: float = 0.99, eps: float = 1e-3,
                        momenta=BN_TF_MOMENTA, eps_values=BN_EPS_VALUES,
                        settings: Mapping[str, tuple[float, float]] | None = None,
                        compute: bool = True, store=None,
                        progress: bool = False) -> Explorer:
    """Controls for BN's momentum (TensorFlow's convention, PyTorch's value beside it) and
    eps that fetch the GIMP run with that setting from the run store -- or, with
    ``compute``, train it once when missing -- and redraw its test accuracy against
    compression beside the thesis's two settings (Figure 3.12: mu=0.99, eps=1e-3 and
    mu=0.997, eps=1e-5), drawn dashed when the store holds them.

    Args:
        setup: a :class:`~pruninglab.experiments.config.Setup` whose model has BN layers; its
            ``bn_momentum``/``bn_eps`` are replaced by the controls' values.
        data: the loaded data set for ``setup``.
        config: the GIMP config (iterative pruning to high sparsity).
        tf_momentum, eps: the controls' starting values (one of ``momenta`` /
            ``eps_values``).
        settings: the reference settings ``{label: (tf_momentum, eps)}`` (default
            :data:`pruninglab.experiments.bn.THESIS_SETTINGS`).
        compute: train a run that is not in the store (else the figure says it is missing).
        store: run-store root (``None``: the default).
        progress: progress bars while training.

    Attributes of the returned explorer: ``runs`` (``{(tf_momentum, eps): DataFrame}``
    fetched or trained so far).
    """
    momenta, eps_values = tuple(momenta), tuple(eps_values)
    if tf_momentum not in momenta:
        raise ValueError(f"tf_momentum must be one of {momenta}, got {tf_momentum!r}")
    if eps not in eps_values:
        raise ValueError(f"eps must be one of {eps_values}, got {eps!r}")
    if not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))
               for m in setup.build_model(data).modules()):
        raise ValueError(f"setup's model {setup.model!r} has no BatchNorm layers")
    settings = dict(settings or bn.THESIS_SETTINGS)
    fetched: dict = {}

    def variant(momentum: float, eps: float):
        return setup.replace(bn_momentum=models.tf_to_torch_momentum(momentum), bn_eps=eps)

    def pending(momentum: float, eps: float) -> str | None:
        return _training_message(variant(momentum, eps), config, data, store, compute,
                                 f"{config.method} with μ={momentum:g}, eps={eps:.0e}")

    def draw(figure: Figure, momentum: float, eps: float) -> None:
        torch_momentum = models.tf_to_torch_momentum(momentum)
        chosen = f"μ={momentum:g} (PyTorch {torch_momentum:g}), eps={eps:.0e}"
        run = gimp_runs.run(variant(momentum, eps), config, data=data, store=store,
                            progress=progress, fetch_only=not compute)
        figure.clear()
        ax = figure.add_subplot()
        for i, (label, (m, e)) in enumerate(settings.items()):  # after training: may be it
            ref = gimp_runs.run(variant(m, e), config, data=data, store=store,
                                progress=False, fetch_only=True)
            if ref is not None:
                ax.plot(ref["compression"], 100 * ref["test_accuracy"], ls="--", marker="x",
                        ms=4, color=f"{0.25 + 0.35 * i:.2f}",
                        label=f"thesis setting {label}")
        if run is None:
            ax.set_title(f"{chosen}: not in the run store", fontsize="medium")
            if ax.get_lines():
                ax.legend(fontsize="small")
            return
        fetched[(momentum, eps)] = run
        title = f"{config.method}, {setup.model}: {chosen}"
        plots.accuracy_vs_compression(run.assign(method=chosen), ax=ax, title=title)

    controls = {
        "momentum": _momentum_slider(momenta, tf_momentum),
        "eps": widgets.SelectionSlider(options=[(f"{e:.0e}", e) for e in eps_values], value=eps,
                                       description="eps",
                                       style={"description_width": "initial"},
                                       layout=widgets.Layout(width="220px"),
                                       continuous_update=False),
    }
    header = widgets.HTML(
        "BN settings and iterative pruning (thesis Section 3.3.3, Figure 3.12). μ in "
        "TensorFlow's convention (the weight of the old running value); PyTorch's momentum "
        "is 1 − μ. eps is added to the variance in training and in evaluation.")
    figure = Figure(figsize=(8, 4.2), layout="constrained")
    explorer = Explorer(controls, draw, figure, header,
                        captions={"momentum": _pytorch_momentum}, pending=pending)
    explorer.runs = fetched
    return explorer
