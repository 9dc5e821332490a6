"""The lessons' own explorers: a perceptron's boundary, an optimizer on a valley, activations through depth.

They build on :class:`dlviz.widgets.Explorer` (sliders that redraw one figure); the explorers that work on any
model stay in :mod:`dlviz.widgets`.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..widgets import Explorer, _figure

__all__ = ["linear_boundary", "perceptron_explorer", "optimizer_explorer", "init_explorer"]


def linear_boundary(ax, X, y, w, b, title: str | None = None) -> int:
    """Draw 2-D points of two classes, the half-planes w.x + b > 0 (blue) and < 0 (orange), and the line between.

    Args:
        ax: a matplotlib Axes.
        X: points, array (n, 2); y: labels (n,) in {-1, +1}; w: weights (2,); b: bias (float).

    Points on the wrong side (or on the line) are circled in red; returns how many there are.

    Example:
        >>> import numpy as np
        >>> from matplotlib.figure import Figure
        >>> from dlviz.course.explorers import linear_boundary
        >>> ax = Figure().subplots()
        >>> X, y = np.array([[0, 0], [1, 1], [0, 1], [1, 0]]), np.array([1, 1, -1, -1])   # XOR: no line fits
        >>> linear_boundary(ax, X, y, w=[1.0, 0.0], b=-0.5)
        2
    """
    X, y, w, b = np.asarray(X, dtype=float), np.asarray(y), np.asarray(w, dtype=float), float(b)
    pad = 0.3
    (x0, y0), (x1, y1) = X.min(0) - pad, X.max(0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, 120), np.linspace(y0, y1, 120))
    score = w[0] * gx + w[1] * gy + b
    ax.contourf(gx, gy, np.sign(score), levels=[-2, 0, 2], colors=["#fdd9b5", "#c6dbef"], alpha=0.8)
    if np.any(score > 0) and np.any(score < 0):
        ax.contour(gx, gy, score, levels=[0], colors="k", linewidths=1.5)
    wrong = y * (X @ w + b) <= 0
    ax.scatter(*X[y > 0].T, c="tab:blue", s=14, marker="o", label="+1")
    ax.scatter(*X[y < 0].T, c="tab:orange", s=14, marker="s", label="-1")
    if wrong.any():
        ax.scatter(*X[wrong].T, s=70, facecolors="none", edgecolors="red", linewidths=1.2, label="wrong side")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return int(wrong.sum())


def perceptron_explorer(X, y, train: Callable, *, lr: float = 1.0, passes: int = 1,
                        lr_range: tuple[float, float] = (0.01, 10.0), max_passes: int = 20) -> Explorer:
    """Sliders for a perceptron's learning rate and number of passes; the decision boundary is redrawn.

    Args:
        X: points, array of shape (n, 2).
        y: labels, array of shape (n,) with values -1 or +1.
        train: ``train(X, y, lr, passes) -> (w, b, mistakes)``: weights (2,), bias (float), and the number of
            updates made in each pass (a list of ``passes`` ints). The notebook passes its own perceptron.
        lr, passes: the values drawn first.

    The left panel shows the points, the two half-planes and the boundary w.x + b = 0 after ``passes`` passes,
    with points on the wrong side circled; the right panel shows the mistakes made in each pass.

    Example:
        >>> import numpy as np
        >>> from dlviz.course.explorers import perceptron_explorer
        >>> def train(X, y, lr, passes):
        ...     w, b, mistakes = np.zeros(2), 0.0, []
        ...     for _ in range(passes):
        ...         wrong = 0
        ...         for xi, yi in zip(X, y):
        ...             if yi * (xi @ w + b) <= 0:
        ...                 w, b, wrong = w + lr * yi * xi, b + lr * yi, wrong + 1
        ...         mistakes.append(wrong)
        ...     return w, b, mistakes
        >>> X, y = np.array([[0, 0], [0, 1], [2, 2], [2, 3]]), np.array([-1, -1, 1, 1])
        >>> explorer = perceptron_explorer(X, y, train, passes=3)
        >>> explorer, len(explorer.figure.axes)
        (Explorer(lr=1.0, passes=3), 2)
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (n, 2), got {X.shape}")
    if y.shape != (len(X),) or not np.isin(y, (-1, 1)).all():
        raise ValueError(f"y must have shape ({len(X)},) with values -1 or +1")
    if not 1 <= passes <= max_passes:
        raise ValueError(f"passes must be in 1..{max_passes}, got {passes}")

    def draw(lr, passes):
        w, b, mistakes = train(X, y, lr, passes)
        w = np.asarray(w, dtype=float)
        fig = _figure(7.5, 3.2)
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
        errors = linear_boundary(left, X, y, w, float(b))
        left.set_title(f"lr = {lr:.3g}, after {passes} pass{'es' if passes > 1 else ''}: "
                       f"{errors} training error{'s' if errors != 1 else ''}", fontsize=9)
        right.bar(np.arange(1, len(mistakes) + 1), mistakes, color="tab:gray")
        right.set_xlabel("pass over the data")
        right.set_ylabel("updates (mistakes)")
        right.set_xlim(0.3, max(len(mistakes), 1) + 0.7)
        right.xaxis.get_major_locator().set_params(integer=True)
        right.set_title(f"{int(np.sum(mistakes))} updates in all", fontsize=9)
        fig.tight_layout()
        return fig

    return Explorer(draw, {"lr": float(lr), "passes": int(passes)},
                    {"lr": ("log", *lr_range), "passes": ("int", 1, max_passes)})


# --- gradient descent with momentum on a narrow valley ----------------------------------------------------------

def _descend(lr: float, momentum: float, steps: int, curvature: tuple[float, float], start: tuple[float, float]):
    """Heavy-ball descent on f(x) = (a x0^2 + c x1^2) / 2; returns the path (steps + 1, 2) and f along it."""
    a = np.asarray(curvature, dtype=float)
    x, v = np.asarray(start, dtype=float), np.zeros(2)
    path = [x.copy()]
    for _ in range(steps):
        v = momentum * v - lr * a * x
        x = x + v
        path.append(x.copy())
        if not np.all(np.isfinite(x)) or np.abs(x).max() > 1e6:
            break
    path = np.array(path)
    return path, 0.5 * (a * path ** 2).sum(1)


def optimizer_explorer(*, lr: float = 0.03, momentum: float = 0.8, steps: int = 40,
                       curvature: tuple[float, float] = (1.0, 25.0), start: tuple[float, float] = (-4.0, 1.5),
                       equal_step: bool = False) -> Explorer:
    """Gradient descent with and without momentum on a narrow quadratic valley, with sliders.

    The loss is f(x) = (a x0^2 + c x1^2) / 2 with ``curvature = (a, c)``: steep across the valley (c), shallow
    along it (a). Plain gradient descent (grey) is limited by the steep direction -- it diverges for
    lr > 2 / c -- and crawls along the shallow one; heavy-ball momentum (``v <- momentum v - lr grad``,
    ``x <- x + v``; red) builds up speed along the valley. Left: the paths on the contours; right: f per step
    (log scale). ``equal_step=True`` gives plain descent momentum's effective step, lr / (1 - momentum), instead
    of the same lr, so that the two are compared at equal speed on a constant slope.

    Example:
        >>> from dlviz.course.explorers import optimizer_explorer
        >>> explorer = optimizer_explorer(steps=20)
        >>> explorer, len(explorer.figure.axes)
        (Explorer(lr=0.03, momentum=0.8, steps=20), 2)
    """
    if len(curvature) != 2 or min(curvature) <= 0:
        raise ValueError(f"curvature must be two positive numbers, got {curvature}")

    def draw(lr, momentum, steps):
        plain_lr = lr / (1.0 - momentum) if equal_step and momentum < 1 else lr
        plain, f_plain = _descend(plain_lr, 0.0, steps, curvature, start)
        heavy, f_heavy = _descend(lr, momentum, steps, curvature, start)
        fig = _figure(8, 3.0)
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
        r = 1.15 * max(abs(start[0]), abs(start[1]) * 2, 1.0)
        gx, gy = np.meshgrid(np.linspace(-r, r, 150), np.linspace(-r / 2, r / 2, 80))
        left.contour(gx, gy, 0.5 * (curvature[0] * gx ** 2 + curvature[1] * gy ** 2), levels=12,
                     colors="0.75", linewidths=0.7)
        left.plot(*plain.T, "-o", color="0.35", ms=2, lw=1,
                  label=f"gradient descent, lr {plain_lr:.3g}" if equal_step else "gradient descent")
        left.plot(*heavy.T, "-o", color="tab:red", ms=2, lw=1, label=f"momentum {momentum:.2f}")
        left.plot(0, 0, "k*", ms=8)
        left.set_xlim(-r, r)
        left.set_ylim(-r / 2, r / 2)
        left.set_aspect("equal")
        left.legend(fontsize=8, loc="upper right")
        left.set_title(f"lr = {lr:.3g} (plain GD diverges above {2 / max(curvature):.3g})", fontsize=9)
        right.semilogy(f_plain, color="0.35", label="gradient descent")
        right.semilogy(f_heavy, color="tab:red", label="momentum")
        right.set_xlabel("step")
        right.set_ylabel("loss f")
        right.set_title(f"after {steps} steps: GD {f_plain[-1]:.2g}, momentum {f_heavy[-1]:.2g}", fontsize=8)
        right.legend(fontsize=8)
        fig.tight_layout()
        return fig

    return Explorer(draw, {"lr": float(lr), "momentum": float(momentum), "steps": int(steps)},
                    {"lr": ("log", 0.001, 0.2), "momentum": ("float", 0.0, 0.99, 0.01), "steps": ("int", 5, 200)})


# --- initialization and activations in a deep network -----------------------------------------------------------

_INITS = ("N(0, 0.01)", "Xavier", "He")
_ACTIVATIONS = ("sigmoid", "tanh", "relu")


def _activations_through(depth: int, width: int, activation: str, init: str, n: int, seed: int):
    """Push n standard-normal inputs through ``depth`` random layers; returns each layer's output (n, width)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation]
    std = {"N(0, 0.01)": 0.01, "Xavier": math.sqrt(2.0 / (width + width)), "He": math.sqrt(2.0 / width)}[init]
    h = torch.randn(n, width, generator=generator)
    outputs = []
    with torch.no_grad():
        for _ in range(depth):
            h = f(h @ (torch.randn(width, width, generator=generator) * std))
            outputs.append(h.numpy())
    return outputs


def init_explorer(*, activation: str = "tanh", init: str = "Xavier", depth: int = 10, width: int = 256,
                  n: int = 500, seed: int = 0) -> Explorer:
    """Menus for the activation and the weight initialization of a deep network, and a slider for its depth.

    ``n`` standard-normal inputs go through ``depth`` fully connected layers of ``width`` units (no biases) with
    weights drawn from N(0, 0.01^2) ("N(0, 0.01)"), Xavier/Glorot's N(0, 2 / (fan_in + fan_out)) or He's
    N(0, 2 / fan_in). Left: the standard deviation of each layer's activations (log scale); right: histograms
    of the activations of the first, middle and last layer (for ReLU, the exact zeros are counted, not drawn).

    Example:
        >>> from dlviz.course.explorers import init_explorer
        >>> explorer = init_explorer(activation="relu", init="He", depth=4, width=32, n=50)
        >>> explorer, len(explorer.figure.axes)   # the std per layer, and 3 histograms
        (Explorer(activation='relu', init='He', depth=4), 4)
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    if init not in _INITS:
        raise ValueError(f"init must be one of {_INITS}, got {init!r}")

    from matplotlib.ticker import MaxNLocator

    def draw(activation, init, depth):
        outputs = _activations_through(depth, width, activation, init, n, seed)
        stds = [float(h.std()) for h in outputs]
        fig = _figure(9, 2.6)
        grid = fig.add_gridspec(1, 4, width_ratios=[1.6, 1, 1, 1])
        left = fig.add_subplot(grid[0])
        left.semilogy(np.arange(1, depth + 1), np.maximum(stds, 1e-30), "-o", ms=3)
        left.set_xlabel("layer")
        left.set_ylabel("std of activations")
        left.set_title(f"{activation}, {init}: last std {stds[-1]:.2g}", fontsize=9)
        left.grid(alpha=0.3)
        for slot, layer in enumerate(sorted({1, (depth + 1) // 2, depth})):
            ax = fig.add_subplot(grid[slot + 1])
            values = outputs[layer - 1].ravel()
            zeros = float(np.mean(values == 0))
            ax.hist(values[values != 0] if activation == "relu" else values, bins=40, color="tab:blue")
            ax.set_yticks([])
            ax.tick_params(labelsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            ax.xaxis.get_offset_text().set_fontsize(8)
            ax.set_title(f"layer {layer}" + (f" ({zeros:.0%} zeros)" if activation == "relu" else ""), fontsize=8)
        fig.tight_layout()
        return fig

    return Explorer(draw, {"activation": activation, "init": init, "depth": int(depth)},
                    {"activation": ("choice", _ACTIVATIONS), "init": ("choice", _INITS), "depth": ("int", 2, 20)})


# --- inside a trained network: one feature map of one image ------------------------------------------------------
