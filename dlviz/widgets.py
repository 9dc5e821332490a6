"""Interactive explorers for the course notebooks, each also a plain static figure.

Every explorer is an :class:`Explorer`: a figure drawn for the default values of its controls. Displayed in
Jupyter (as the last line of a cell, or with ``display``), it shows that figure and, under it, sliders and menus;
moving one redraws the figure in place. Without a front end -- a script, a test, a notebook executed headless
for CI -- the figure for the defaults is all there is (``explorer.figure``), so a stored notebook still shows it.

Figures are built with :class:`matplotlib.figure.Figure` directly (not ``pyplot``), so they are never shown
twice by the inline backend and are freed like any Python object. ``ipywidgets`` is imported only when the
controls are built.
"""
from __future__ import annotations

import math
from typing import Callable


__all__ = ["Explorer", "feature_explorer", "dream_explorer", "adversarial_explorer"]


def _described(value) -> str:
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else type(value).__name__


# --- the common part --------------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height))


def _control(name: str, spec: tuple, value):
    """An ipywidgets control from a spec: ("log", lo, hi) | ("float", lo, hi, step) | ("int", lo, hi) |
    ("choice", options)."""
    import ipywidgets as w

    kind, *args = spec
    style, layout = {"description_width": "initial"}, w.Layout(width="330px")
    common = dict(value=value, description=name, continuous_update=False, style=style, layout=layout)
    if kind == "log":
        lo, hi = args
        return w.FloatLogSlider(min=math.log10(lo), max=math.log10(hi), step=0.1, base=10, readout_format=".3g",
                                **common)
    if kind == "float":
        lo, hi, step = args
        return w.FloatSlider(min=lo, max=hi, step=step, readout_format=".2f", **common)
    if kind == "int":
        lo, hi = args
        return w.IntSlider(min=lo, max=hi, step=1, **common)
    if kind == "choice":
        (options,) = args
        return w.Dropdown(options=list(options), value=value, description=name, style=style,
                          layout=w.Layout(width="250px"))
    raise ValueError(f"unknown control kind {kind!r}")


class Explorer:
    """A figure ``draw(**values)`` and the controls that redraw it.

    Args:
        draw: a function of keyword arguments returning a matplotlib ``Figure``.
        values: the default value of every keyword ``draw`` takes.
        specs: for each name in ``values`` that gets a control, its spec: ``("log", lo, hi)`` (log slider),
            ``("float", lo, hi, step)``, ``("int", lo, hi)`` or ``("choice", options)``.
        settle: optional ``settle(values) -> values``: the values the figure is actually drawn for, given those
            asked for (e.g. a channel number wrapped around the chosen layer's channel count). Applied before every
            draw; the controls are then moved to the settled values, so a slider always shows what is drawn.
        ranges: optional ``ranges(values) -> {name: (lo, hi)}``: the range of a slider that depends on other values
            (e.g. the channels of the chosen layer); the sliders are updated after every draw.

    Attributes:
        figure: the figure for the current values (the defaults until :meth:`redraw` or a control changes them).
        values: the values the current figure is drawn for, a dict (after ``settle``).
        controls_text: None (default), or a line shown in place of the controls' raw repr (``VBox(children=...``)
            where no widget front end draws them: a notebook stored after a headless run, read on GitHub.

    Example:
        >>> import numpy as np
        >>> from matplotlib.figure import Figure
        >>> from dlviz.widgets import Explorer
        >>> def draw(freq):
        ...     fig = Figure(figsize=(3, 2))
        ...     fig.subplots().plot(np.sin(freq * np.linspace(0, 6.3, 100)))
        ...     return fig
        >>> explorer = Explorer(draw, {"freq": 1.0}, {"freq": ("float", 0.5, 5.0, 0.5)})
        >>> type(explorer.figure).__name__   # the static figure; in Jupyter, ``explorer`` also shows a slider
        'Figure'
        >>> _ = explorer.redraw(freq=2.0)
        >>> explorer
        Explorer(freq=2.0)
    """

    controls_text: str | None = None

    def __init__(self, draw: Callable, values: dict, specs: dict, *, settle: Callable | None = None,
                 ranges: Callable | None = None):
        unknown = set(specs) - set(values)
        if unknown:
            raise ValueError(f"controls without a default value: {sorted(unknown)}")
        self._draw, self._specs = draw, dict(specs)
        self._settle, self._ranges = settle, ranges
        self.values = self._settled(dict(values))
        self._handles, self._controls, self._syncing = [], [], False
        self.figure = draw(**self.values)

    def _settled(self, values: dict) -> dict:
        """The values to draw: ``settle``'s, then kept inside the ranges that depend on other values."""
        values = dict(self._settle(dict(values))) if self._settle is not None else dict(values)
        for name, (lo, hi) in (self._ranges(dict(values)) if self._ranges is not None else {}).items():
            if name in self._specs and self._specs[name][0] in ("int", "float"):
                values[name] = min(max(values[name], lo), hi)
        return values

    def _spec(self, name: str) -> tuple:
        """A control's spec, with its range for the current values where that range depends on them."""
        spec = self._specs[name]
        bounds = self._ranges(dict(self.values)) if self._ranges is not None else {}
        if name in bounds and spec[0] in ("int", "float"):
            spec = (spec[0], *bounds[name], *spec[3:])
        return spec

    def redraw(self, **changes):
        """Draw again with some values changed (e.g. ``redraw(lr=0.1)``); returns the new figure.

        Every place where this explorer is displayed is updated, and its controls are moved to the values drawn."""
        unknown = set(changes) - set(self.values)
        if unknown:
            raise ValueError(f"unknown value(s) {sorted(unknown)}; this explorer takes {sorted(self.values)}")
        self.values = self._settled({**self.values, **changes})
        self.figure = self._draw(**self.values)
        for handle in self._handles:
            handle.update(self.figure)
        self._sync_controls()
        return self.figure

    def _sync_controls(self):
        """Move every control built by :meth:`widget` to the values drawn, and its range to theirs."""
        self._syncing = True   # the changes made here are not a student's: they must not redraw
        try:
            for controls in self._controls:
                for name, control in controls.items():
                    spec, value = self._spec(name), self.values[name]
                    if spec[0] in ("int", "float"):
                        lo, hi = spec[1], spec[2]
                        # widen first, so that neither the value nor a bound is clipped on the way
                        control.min, control.max = min(control.min, lo), max(control.max, hi)
                        control.value = value
                        control.min, control.max = lo, hi
                    elif control.value != value:
                        control.value = value
        finally:
            self._syncing = False

    def widget(self):
        """The controls as an ipywidgets ``VBox``; changing one calls :meth:`redraw`."""
        import ipywidgets as w

        controls = {}
        for name in self._specs:
            control = _control(name, self._spec(name), self.values[name])
            control.observe(lambda change, name=name: self._changed(name, change["new"]), names="value")
            controls[name] = control
        self._controls.append(controls)
        return w.VBox(list(controls.values()))

    def _changed(self, name: str, value):
        if not self._syncing:
            self.redraw(**{name: value})

    def _ipython_display_(self):
        from IPython.display import display

        handle = display(self.figure, display_id=True)
        if handle is not None:
            self._handles.append(handle)
        if self._specs:
            controls = self.widget()
            bundle = controls._repr_mimebundle_() if self.controls_text is not None else None
            if bundle is None:
                display(controls)
            else:   # the same widget view, with a readable line as its plain-text form
                bundle["text/plain"] = self.controls_text
                display(bundle, raw=True)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"Explorer({values})"


# --- the perceptron ---------------------------------------------------------------------------------------------

def _offered_layers(layers, layer: str | None) -> tuple[list[str], str]:
    """The layer names an explorer offers, and the one drawn first (default: the first offered)."""
    layers = list(layers)
    if not layers:
        raise ValueError("give at least one layer name")
    layer = layer or layers[0]
    if layer not in layers:
        raise ValueError(f"layer {layer!r} is not among the layers offered: {layers}")
    return layers, layer


def feature_explorer(model, x, layers, *, labels=None, image: int = 0, layer: str | None = None,
                     channel: int = 0, size: float = 1.9, colorbar: bool = False) -> Explorer:
    """Pick an image, a layer and a channel; see the channel's activation map and its deconvnet projection.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1].
        x: the images to choose from, a tensor (N, C, H, W) in [0, 1].
        layers: the layer names offered (each must output a map (N, C, h, w) and run once per forward pass).
        labels: one caption per image (optional).
        image, layer, channel: the values drawn first (``layer`` defaults to the first of ``layers``).

    Panels: the image; the channel's activation map at the layer (with its maximum); the deconvnet projection of
    that channel (:func:`dlviz.deconvnet` with ``layer`` and ``channel``) over the image; and the projection of
    its strongest activation only. A channel number beyond the layer's channel count wraps around; the channel
    drawn is what ``explorer.values`` and the channel slider then show, and the slider's range follows the layer.
    ``colorbar=True`` adds a colour bar to each of the three maps.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 3))
        >>> images = torch.rand(2, 1, 12, 12)
        >>> from dlviz.widgets import feature_explorer
        >>> explorer = feature_explorer(model, images, ["0", "1"], labels=["first", "second"])
        >>> explorer, len(explorer.figure.axes)
        (Explorer(image=0, layer='0', channel=0), 4)
        >>> _ = explorer.redraw(channel=6)   # the layer has 4 channels: channel 6 is channel 2
        >>> explorer.values["channel"]
        2
    """
    from .attribution.saliency import deconvnet
    from .hooks import activations
    from .plot import heatmap_overlay, to_numpy_image

    layers, layer = _offered_layers(layers, layer)
    first = activations(model, x[:1], layers)
    counts = {name: first[name].shape[1] for name in layers}
    for name, act in first.items():
        if act.dim() != 4:
            raise ValueError(f"layer {name!r} outputs shape {tuple(act.shape[1:])} per image; the explorer shows "
                             f"feature maps (C, h, w)")

    def draw(image, layer, channel):
        picked = x[image]
        act = activations(model, picked, layer)[layer][channel]
        projection = deconvnet(model, picked, layer=layer, channel=channel)
        strongest = deconvnet(model, picked, layer=layer, channel=channel, max_only=True)
        fig = _figure(4 * size + (1.2 if colorbar else 0.0), size + 0.35)
        axes = fig.subplots(1, 4)
        caption = f"image {image}" + (f": {labels[image]}" if labels is not None else "")
        axes[0].imshow(to_numpy_image(picked), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0].set_title(caption, fontsize=8)
        axes[1].imshow(act.cpu().numpy(), cmap="viridis", interpolation="nearest")
        axes[1].set_title(f"{layer} ch {channel}/{counts[layer]}: max {float(act.max()):.2f}", fontsize=8)
        heatmap_overlay(picked, projection, ax=axes[2], title="deconvnet: whole map")
        heatmap_overlay(picked, strongest, ax=axes[3], title="deconvnet: strongest unit")
        for ax in axes:
            ax.axis("off")
        if colorbar:
            for ax in axes[1:]:
                fig.colorbar(ax.images[-1], ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=8)
        fig.tight_layout(pad=0.3)
        return fig

    if not 0 <= image < len(x):
        raise ValueError(f"image must be in [0, {len(x) - 1}], got {image}")
    def settle(values):   # the channel drawn: the number asked for, wrapped around the layer's channel count
        return {**values, "channel": values["channel"] % counts[values["layer"]]}

    return Explorer(draw, {"image": int(image), "layer": layer, "channel": int(channel)},
                    {"image": ("int", 0, len(x) - 1), "layer": ("choice", layers),
                     "channel": ("int", 0, max(counts.values()) - 1)},
                    settle=settle, ranges=lambda values: {"channel": (0, counts[values["layer"]] - 1)})


# --- DeepDream: a layer and a channel -------------------------------------------------------------------------

def dream_explorer(model, x, layers, *, layer: str | None = None, channel: int = -1, octaves: int = 2,
                   steps: int = 10, lr: float = 0.02, jitter: int = 2, seed: int = 0, size: float = 2.0,
                   colorbar: bool = False) -> Explorer:
    """Pick a layer, a channel (-1: the whole layer) and a number of octaves; see what DeepDream makes of an image.

    Args:
        model: a module taking (N, C, H, W) images in [0, 1].
        x: one image (C, H, W) in [0, 1].
        layers: the layer names offered; layer, channel, octaves: the values drawn first.
        steps, lr, jitter: passed to :func:`dlviz.synthesis.dream.deepdream` (octave scale 1.4); seed: for the jitter.

    Panels: the image, the dream, and the change (dream - image, grey = none). A channel number beyond the layer's
    channel count wraps around (``explorer.values`` and the channel slider show the channel drawn, and the slider's
    range follows the layer); octaves too small for the model are left out (the title says how many ran).
    ``colorbar=True`` draws the change in pixel units on a diverging colour map (blue darker, red brighter) with a
    colour bar.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 3))
        >>> images = torch.rand(2, 1, 12, 12)
        >>> from dlviz.widgets import dream_explorer
        >>> explorer = dream_explorer(model, images[0], ["1"], octaves=1, steps=2)
        >>> explorer, len(explorer.figure.axes)   # image, dream, change
        (Explorer(layer='1', channel=-1, octaves=1), 3)
    """
    import re
    import warnings

    import torch

    from .synthesis.dream import deepdream, layer_objective
    from .hooks import activations
    from .plot import to_numpy_image

    layers, layer = _offered_layers(layers, layer)
    if not (isinstance(x, torch.Tensor) and x.dim() == 3):
        raise ValueError(f"x must be one image, a (C, H, W) tensor in [0, 1], got {_described(x)}")
    first = activations(model, x, layers)
    counts = {name: first[name].shape[0] for name in layers}

    def draw(layer, channel, octaves):
        picked = None if channel < 0 else channel
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dream = deepdream(model, x, layer=layer, channel=picked, octaves=octaves, steps=steps, lr=lr,
                              jitter=jitter, generator=torch.Generator().manual_seed(seed), progress=False)
        ran = octaves
        for w in caught:  # deepdream says "using N of M octaves" when the smallest scales are too small
            used = re.search(r"using (\d+) of \d+ octaves", str(w.message))
            ran = int(used.group(1)) if used else ran
        before = float(layer_objective(activations(model, x[None], layer)[layer], picked))
        after = float(layer_objective(activations(model, dream[None], layer)[layer], picked))
        fig = _figure(3 * size + (0.6 if colorbar else 0.0), size + 0.5)
        axes = fig.subplots(1, 3)
        what = f"{layer}" + ("" if picked is None else f" ch {picked}/{counts[layer]}")
        axes[0].imshow(to_numpy_image(x), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0].set_title("image", fontsize=8)
        axes[1].imshow(to_numpy_image(dream), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[1].set_title(f"{what}, {ran} octave{'s' if ran != 1 else ''}", fontsize=8)
        change = (dream - x).cpu()
        if colorbar:
            largest = max(float(change.abs().max()), 1e-8)
            shown = axes[2].imshow(change.mean(0).numpy(), cmap="RdBu_r", vmin=-largest, vmax=largest,
                                   interpolation="nearest")
        else:
            axes[2].imshow(to_numpy_image(change * 0.5 / max(float(change.abs().max()), 1e-8) + 0.5), cmap="gray",
                           vmin=0, vmax=1, interpolation="nearest")
        axes[2].set_title(f"change; objective {before:.2g} -> {after:.2g}", fontsize=8)
        for ax in axes:
            ax.axis("off")
        if colorbar:
            fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.03).ax.tick_params(labelsize=8)
        fig.tight_layout(pad=0.3)
        return fig

    def settle(values):   # -1: the whole layer; any other number wraps around the layer's channel count
        return {**values, "channel": -1 if values["channel"] < 0 else values["channel"] % counts[values["layer"]]}

    return Explorer(draw, {"layer": layer, "channel": int(channel), "octaves": int(octaves)},
                    {"layer": ("choice", layers), "channel": ("int", -1, max(counts.values()) - 1),
                     "octaves": ("int", 1, 4)},
                    settle=settle, ranges=lambda values: {"channel": (-1, counts[values["layer"]] - 1)})


# --- adversarial images: the size of the perturbation --------------------------------------------------------

def adversarial_explorer(model, x, labels, *, eps: float = 0.1, method: str = "fgsm", steps: int = 10,
                         class_names=None, max_eps: float = 0.4, size: float = 1.1) -> Explorer:
    """A slider for eps (in pixel units) and a menu for the attack; see the adversarial images and what they do.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1].
        x: a few images (N, C, H, W) in [0, 1] (up to about 10 fit in a row); labels: their classes (N,).
        eps, method: the values drawn first (``"fgsm"`` or ``"pgd"``; PGD takes ``steps`` steps of
            ``2.5 eps / steps`` from the image itself, so the figure is the same every time).
        class_names: names for the classes (default: their numbers).

    Top row: the adversarial images with the model's answer and its confidence (red when wrong); bottom row: the
    perturbations, magnified so that +-eps spans black to white.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 3))
        >>> images = torch.rand(2, 1, 12, 12)
        >>> from dlviz.widgets import adversarial_explorer
        >>> explorer = adversarial_explorer(model, images, torch.tensor([0, 1]), eps=0.05)
        >>> len(explorer.figure.axes)   # 2 adversarial images over their 2 perturbations
        4
        >>> _ = explorer.redraw(method="pgd")
        >>> explorer
        Explorer(eps=0.05, method='pgd')
    """
    import torch

    from .adversarial.attacks import fgsm, pgd
    from ._model import preserved
    from .plot import to_numpy_image

    methods = ("fgsm", "pgd")
    if method not in methods:
        raise ValueError(f"method must be one of {methods}, got {method!r}")
    labels = torch.as_tensor(labels)
    names = class_names or [str(i) for i in range(1000)]

    def draw(eps, method):
        if method == "fgsm":
            adv = fgsm(model, x, labels, eps)
        else:
            adv = pgd(model, x, labels, eps, steps=steps, random_start=False, progress=False)
        with preserved(model), torch.no_grad():
            probs = torch.softmax(model(adv), 1).cpu()
        confidence, predicted = probs.max(1)
        n = len(x)
        fig = _figure(size * n, 2 * size + 0.8)
        fig.set_layout_engine("constrained", w_pad=0.02, h_pad=0.04)   # keeps the titles apart
        axes = fig.subplots(2, n, squeeze=False)
        for i in range(n):
            axes[0, i].imshow(to_numpy_image(adv[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            wrong = int(predicted[i]) != int(labels[i])
            axes[0, i].set_title(f"{names[int(predicted[i])]} {float(confidence[i]):.0%}", fontsize=8,
                                 color="red" if wrong else "black")
            delta = (adv[i] - x[i]).cpu()
            axes[1, i].imshow(to_numpy_image(delta * 0.5 / max(eps, 1e-8) + 0.5), cmap="gray", vmin=0, vmax=1,
                              interpolation="nearest")
            for ax in axes[:, i]:
                ax.axis("off")
        accuracy = float((predicted == labels.cpu()).float().mean())
        fig.suptitle(f"{method.upper()}, eps = {eps:.3f} ({eps * 255:.0f}/255): accuracy {accuracy:.0%} "
                     f"on these {n}", fontsize=9)
        fig.supxlabel("bottom row: the perturbation (black = -eps, grey = no change, white = +eps)", fontsize=8)
        return fig

    return Explorer(draw, {"eps": float(eps), "method": method},
                    {"eps": ("float", 0.0, float(max_eps), 0.01), "method": ("choice", methods)})
