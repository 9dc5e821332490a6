"""The notebook explorers build, draw a static figure without a front end, and redraw when a control moves."""
import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from dlviz import widgets
from dlviz.course import explorers
from dlviz.widgets import Explorer
from dlviz.course.explorers import init_explorer, linear_boundary, optimizer_explorer, perceptron_explorer


def _png_bytes(fig: Figure) -> int:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return len(buffer.getvalue())


def _toy_perceptron_data():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(30, 2))
    y = np.where(X[:, 0] - X[:, 1] > 0, 1, -1)
    return X, y


def _toy_train(X, y, lr, passes):
    w, b, mistakes = np.array([0.5, 0.5]), 0.0, []
    for _ in range(passes):
        count = 0
        for xi, yi in zip(X, y):
            if yi * (xi @ w + b) <= 0:
                w, b, count = w + lr * yi * xi, b + lr * yi, count + 1
        mistakes.append(count)
    return w, b, mistakes


def test_perceptron_explorer_draws_static_figure_and_passes_values_to_train():
    X, y = _toy_perceptron_data()
    calls = []

    def train(X_, y_, lr, passes):
        calls.append((lr, passes))
        return _toy_train(X_, y_, lr, passes)

    explorer = perceptron_explorer(X, y, train, lr=0.5, passes=3)
    assert isinstance(explorer.figure, Figure)
    assert len(explorer.figure.axes) == 2
    assert calls == [(0.5, 3)]
    assert _png_bytes(explorer.figure) > 1000
    assert "training error" in explorer.figure.axes[0].get_title()


def test_redraw_changes_values_and_figure():
    X, y = _toy_perceptron_data()
    explorer = perceptron_explorer(X, y, _toy_train, passes=1)
    first = explorer.figure
    second = explorer.redraw(passes=5)
    assert second is explorer.figure and second is not first
    assert explorer.values == {"lr": 1.0, "passes": 5}
    assert "5 passes" in second.axes[0].get_title()
    with pytest.raises(ValueError, match="unknown value"):
        explorer.redraw(momentum=0.9)


def test_widget_controls_trigger_redraw():
    pytest.importorskip("ipywidgets")
    explorer = optimizer_explorer(steps=10)
    box = explorer.widget()
    assert [c.description for c in box.children] == ["lr", "momentum", "steps"]
    before = explorer.figure
    box.children[2].value = 25          # what a student moving the slider does
    assert explorer.values["steps"] == 25
    assert explorer.figure is not before
    assert "after 25 steps" in explorer.figure.axes[1].get_title()


def test_ipython_display_shows_figure_then_controls(monkeypatch):
    pytest.importorskip("IPython")
    import IPython.display

    shown, updated = [], []

    class Handle:
        def update(self, obj):
            updated.append(obj)

    def fake_display(obj, display_id=False):
        shown.append(obj)
        return Handle() if display_id else None

    monkeypatch.setattr(IPython.display, "display", fake_display)
    explorer = init_explorer(depth=4)
    explorer._ipython_display_()
    assert shown[0] is explorer.figure
    assert type(shown[1]).__name__ == "VBox"
    explorer.redraw(activation="relu")
    assert updated == [explorer.figure]       # the displayed figure is replaced in place


def test_explorer_rejects_controls_without_defaults():
    with pytest.raises(ValueError, match="without a default"):
        Explorer(lambda a: Figure(), {"a": 1}, {"b": ("int", 0, 3)})


@pytest.mark.parametrize("activation, init", [("sigmoid", "N(0, 0.01)"), ("tanh", "Xavier"), ("relu", "He")])
def test_init_explorer_draws(activation, init):
    explorer = init_explorer(activation=activation, init=init, depth=6, width=64, n=100)
    assert len(explorer.figure.axes) == 4
    assert _png_bytes(explorer.figure) > 1000


def test_init_explorer_statistics_follow_the_theory():
    small = [h.std() for h in explorers._activations_through(10, 128, "relu", "N(0, 0.01)", 200, 0)]
    he = [h.std() for h in explorers._activations_through(10, 128, "relu", "He", 200, 0)]
    assert small[-1] < 1e-8 * small[0]                 # collapses
    assert 0.5 < he[-1] / he[0] < 2                     # preserved


def test_optimizer_explorer_momentum_beats_plain_descent_at_defaults():
    _, plain = explorers._descend(0.03, 0.0, 40, (1.0, 25.0), (-4.0, 1.5))
    _, heavy = explorers._descend(0.03, 0.8, 40, (1.0, 25.0), (-4.0, 1.5))
    assert heavy[-1] < 0.1 * plain[-1]
    explorer = optimizer_explorer()
    assert len(explorer.figure.axes) == 2


def test_optimizer_explorer_survives_divergence():
    explorer = optimizer_explorer(lr=0.2, momentum=0.99, steps=200)   # plain descent diverges above 0.08
    assert _png_bytes(explorer.figure) > 1000


def test_linear_boundary_counts_wrong_points():
    import matplotlib.pyplot as plt

    X = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0]])
    y = np.array([1, -1, -1])
    fig, ax = plt.subplots()
    try:
        assert linear_boundary(ax, X, y, np.array([1.0, 0.0]), 0.0) == 1
        assert linear_boundary(ax, X, y, np.zeros(2), 0.0) == 3      # no line yet: every point is "wrong"
    finally:
        plt.close(fig)


def test_bad_inputs_give_clear_errors():
    X, y = _toy_perceptron_data()
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        perceptron_explorer(np.zeros((5, 3)), np.ones(5), _toy_train)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        perceptron_explorer(X, (y > 0).astype(int), _toy_train)
    with pytest.raises(ValueError, match="passes"):
        perceptron_explorer(X, y, _toy_train, passes=0)
    with pytest.raises(ValueError, match="activation"):
        init_explorer(activation="gelu")
    with pytest.raises(ValueError, match="init"):
        init_explorer(init="orthogonal")
    with pytest.raises(ValueError, match="curvature"):
        optimizer_explorer(curvature=(1.0, -1.0))


# --- controls that depend on each other stay in step with the figure ---------------------------------------------

def _two_layer_model():
    import torch
    from torch import nn

    torch.manual_seed(0)
    # "1": 8 channels, "3": 3 channels
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 3, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 8 * 8, 4)).eval()


def _drawn_channel(explorer, axes_index: int) -> tuple[int, int]:
    """(channel, channel count) as the figure's title says: '<layer> ch <c>/<count>...'."""
    import re

    title = explorer.figure.axes[axes_index].get_title()
    found = re.search(r"ch (\d+)/(\d+)", title)
    assert found, title
    return int(found.group(1)), int(found.group(2))


def test_feature_explorer_channel_slider_shows_the_channel_drawn():
    pytest.importorskip("ipywidgets")
    import torch

    explorer = widgets.feature_explorer(_two_layer_model(), torch.rand(2, 1, 12, 12), ["1", "3"], channel=7)
    image, layer, channel = explorer.widget().children
    assert channel.value == explorer.values["channel"] == _drawn_channel(explorer, 1)[0] == 7
    assert (channel.min, channel.max) == (0, 7)

    layer.value = "3"                          # 3 channels: channel 7 wraps around to 1
    drawn, count = _drawn_channel(explorer, 1)
    assert (drawn, count) == (1, 3)
    assert channel.value == explorer.values["channel"] == drawn
    assert (channel.min, channel.max) == (0, count - 1)   # no slider position beyond the layer's channels

    channel.value = 2
    assert _drawn_channel(explorer, 1)[0] == channel.value == 2
    layer.value = "1"                          # back to 8 channels: the range grows again, the channel stays
    assert (channel.max, channel.value, _drawn_channel(explorer, 1)) == (7, 2, (2, 8))
    channel.value = 6
    explorer.redraw(layer="3")                 # a redraw from code moves the controls too
    assert channel.value == explorer.values["channel"] == _drawn_channel(explorer, 1)[0] == 0
    explorer.redraw(channel=23)                # 23 on a 3-channel layer: channel 2
    assert channel.value == explorer.values["channel"] == _drawn_channel(explorer, 1)[0] == 2


def test_feature_explorer_moving_a_control_draws_once():
    pytest.importorskip("ipywidgets")
    import torch

    explorer = widgets.feature_explorer(_two_layer_model(), torch.rand(2, 1, 12, 12), ["1", "3"], channel=7)
    draws = []
    draw = explorer._draw
    explorer._draw = lambda **values: draws.append(values) or draw(**values)
    _, layer, channel = explorer.widget().children
    layer.value = "3"                          # moving the channel slider to what is drawn must not redraw again
    assert draws == [{"image": 0, "layer": "3", "channel": 1}]


def test_dream_explorer_channel_slider_shows_the_channel_drawn():
    pytest.importorskip("ipywidgets")
    import torch

    explorer = widgets.dream_explorer(_two_layer_model(), torch.rand(1, 12, 12), ["1", "3"], channel=5,
                                      octaves=1, steps=1)
    layer, channel, octaves = explorer.widget().children
    assert channel.value == _drawn_channel(explorer, 1)[0] == 5 and (channel.min, channel.max) == (-1, 7)
    layer.value = "3"
    drawn, count = _drawn_channel(explorer, 1)
    assert (drawn, count) == (2, 3) and channel.value == explorer.values["channel"] == drawn
    assert (channel.min, channel.max) == (-1, 2)
    channel.value = -1                         # the whole layer: no channel in the title
    assert explorer.values["channel"] == -1 and "ch " not in explorer.figure.axes[1].get_title()


def test_explorer_settle_and_ranges_keep_values_and_sliders_together():
    pytest.importorskip("ipywidgets")

    def draw(n, k):
        fig = Figure(figsize=(2, 1))
        fig.subplots().set_title(f"k = {k} of {n}")
        return fig

    # k must stay below n; asking for more clamps it (no settle: the range alone keeps it in)
    explorer = Explorer(draw, {"n": 10, "k": 9}, {"n": ("int", 1, 10), "k": ("int", 0, 9)},
                        ranges=lambda values: {"k": (0, values["n"] - 1)})
    n, k = explorer.widget().children
    n.value = 4
    assert explorer.values == {"n": 4, "k": 3} and (k.value, k.max) == (3, 3)
    assert explorer.figure.axes[0].get_title() == "k = 3 of 4"
    second = explorer.widget()                 # every view of the controls is kept in step
    n.value = 2
    assert [c.value for c in second.children] == [2, 1] and second.children[1].max == 1
