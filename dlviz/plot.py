"""Figures for the course: image grids with labels and training curves, sized to keep notebooks small."""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["to_numpy_image", "image_grid", "training_curves"]


def to_numpy_image(image) -> np.ndarray:
    """A (C, H, W) or (H, W) tensor/array, or a PIL image, as an (H, W) or (H, W, 3) float array for ``imshow``.

    Tensors with C = 1 become (H, W); C = 3 becomes (H, W, 3). Values are not rescaled.

    Example:
        >>> import torch
        >>> from dlviz.plot import to_numpy_image
        >>> to_numpy_image(torch.rand(3, 4, 5)).shape, to_numpy_image(torch.rand(1, 4, 5)).shape
        ((4, 5, 3), (4, 5))
    """
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL image
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    array = (image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor)
             else np.asarray(image, dtype=np.float32))
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"expected an image of shape (C, H, W) with C in (1, 3), or (H, W); got {tuple(array.shape)}")
    return array


def image_grid(images, labels=None, *, ncols: int | None = None, cmap: str = "gray", size: float = 1.1,
               title: str | None = None, vmin: float | None = 0.0, vmax: float | None = 1.0, axes=None):
    """Show images in a grid, each with an optional label underneath; returns the figure.

    Args:
        images: a tensor (N, C, H, W) with C in (1, 3), a sequence of (C, H, W)/(H, W) images, or PIL images.
        labels: N strings or numbers shown under the images (or None).
        ncols: columns (default: up to 10).
        size: inches per image; the defaults keep a 40-image grid well under 100 kB.
        vmin, vmax: the value range mapped to black and white (None: each image's own range). An image with values
            outside that range raises ValueError rather than being shown clipped (a 0..255 image would look white).
        axes: draw into these Axes (one per image or more) instead of a new figure.

    Example:
        >>> import matplotlib.pyplot as plt, torch
        >>> from dlviz.plot import image_grid
        >>> fig = image_grid(torch.rand(6, 1, 28, 28), labels=list("abcdef"), ncols=3)
        >>> len(fig.axes), fig.axes[0].get_title()
        (6, 'a')
        >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    images = list(images)
    if not images:
        raise ValueError("image_grid needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels")
    n = len(images)
    ncols = ncols or min(n, 10)
    nrows = math.ceil(n / ncols)
    if axes is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15 + (0.3 if title else 0)),
                                 squeeze=False)
        axes = axes.ravel()
    else:
        axes = np.ravel(axes)
        fig = axes[0].figure
    arrays = [to_numpy_image(image) for image in images]
    _check_range(arrays, vmin, vmax)
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(arrays[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _check_range(arrays, vmin, vmax) -> None:
    """Values outside [vmin, vmax] would be drawn clipped, silently: say so instead."""
    slack = 1e-3 * ((vmax if vmax is not None else 1.0) - (vmin if vmin is not None else 0.0))
    for i, array in enumerate(arrays):
        lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
        if (vmin is not None and lo < vmin - slack) or (vmax is not None and hi > vmax + slack):
            raise ValueError(f"image {i} has values in [{lo:.3g}, {hi:.3g}], outside the displayed range "
                             f"[{vmin}, {vmax}]; scale images to [0, 1] (uint8: x.float() / 255) or pass "
                             f"vmin=None, vmax=None to stretch each image to its own range")


def training_curves(history, axes=None, title: str | None = None):
    """Loss (left) and accuracy (right) per epoch of a :class:`dlviz.train.History`, training and validation.

    Args:
        history: a :class:`dlviz.train.History` (as :func:`dlviz.fit` returns).
        axes: two matplotlib Axes to draw into (default: a new figure).
        title: a title over both panels.

    Returns the figure.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> from dlviz.plot import training_curves
        >>> from dlviz.train import History
        >>> history = History(train_loss=[0.9, 0.4], train_accuracy=[0.6, 0.9], val_loss=[0.8, 0.5],
        ...                   val_accuracy=[0.7, 0.85])
        >>> fig = training_curves(history)
        >>> [ax.get_ylabel() for ax in fig.axes], len(fig.axes[0].lines)
        (['loss', 'accuracy'], 2)
        >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(7, 2.6))
    else:
        fig = axes[0].figure
    epochs = np.arange(1, history.epochs + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = getattr(history, f"{split}_{metric}")
            if values and not all(math.isnan(v) for v in values):
                ax.plot(epochs[:len(values)], values, style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --- what a network sees: heatmaps, filters, attributions side by side ------------------------------------------

__all__ += ["attribution_map", "heatmap_overlay", "filter_mosaic", "attribution_grid"]


def attribution_map(attribution, signed: bool = False) -> np.ndarray:
    """An attribution (C, H, W) or (H, W) as one (H, W) array: the channels' sum (``signed``) or the sum of their
    absolute values (default), as Captum's visualization does.

    Example:
        >>> import torch
        >>> from dlviz.plot import attribution_map
        >>> attribution = torch.tensor([[[1.0, -2.0]], [[3.0, 1.0]]])   # (C=2, H=1, W=2)
        >>> attribution_map(attribution), attribution_map(attribution, signed=True)
        (array([[4., 3.]], dtype=float32), array([[ 4., -1.]], dtype=float32))
    """
    a = attribution.detach().cpu().float() if isinstance(attribution, torch.Tensor) else torch.as_tensor(attribution)
    if a.dim() == 3:
        a = a.sum(0) if signed else a.abs().sum(0)
    elif a.dim() != 2:
        raise ValueError(f"expected an attribution of shape (C, H, W) or (H, W), got {tuple(a.shape)}")
    elif not signed:
        a = a.abs()
    return a.numpy()


def heatmap_overlay(image, attribution, *, ax=None, signed: bool = False, alpha: float = 0.6,
                    cmap: str | None = None, title: str | None = None):
    """Show ``image`` (C, H, W) in [0, 1] in grey with ``attribution`` (C, H, W) or (H, W) as a heatmap on top.

    Unsigned maps (default) run from transparent-dark to bright (``inferno``) from 0 to their maximum; signed maps
    use a blue-white-red scale symmetric around 0. Returns the Axes.

    Example:
        >>> import matplotlib.pyplot as plt, torch
        >>> from dlviz.plot import heatmap_overlay
        >>> ax = heatmap_overlay(torch.rand(1, 28, 28), torch.randn(1, 28, 28), signed=True, title="saliency")
        >>> len(ax.images), ax.get_title()
        (2, 'saliency')
        >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(2, 2))
    picture = to_numpy_image(image)
    grey = picture.mean(-1) if picture.ndim == 3 else picture
    heat = attribution_map(attribution, signed)
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    limit = float(np.abs(heat).max()) or 1.0
    if signed:
        ax.imshow(heat, cmap=cmap or "RdBu_r", vmin=-limit, vmax=limit, alpha=alpha, interpolation="nearest")
    else:
        ax.imshow(heat, cmap=cmap or "inferno", vmin=0, vmax=limit, alpha=alpha, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8, pad=2)
    return ax


def filter_mosaic(weight, *, ncols: int | None = None, size: float = 0.55, title: str | None = None):
    """The filters of a convolution, one tile each; returns the figure.

    ``weight`` is a conv layer's weight (out, in, kh, kw) (or the layer itself). Filters with 3 input channels are
    shown in colour, others by their first input channel in grey; each tile is scaled on its own, with 0 mid-grey.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> from torch import nn
        >>> from dlviz.plot import filter_mosaic
        >>> fig = filter_mosaic(nn.Conv2d(1, 20, 5), ncols=10)
        >>> len(fig.axes), sum(len(ax.images) for ax in fig.axes)
        (20, 20)
        >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    if hasattr(weight, "weight"):
        weight = weight.weight
    w = weight.detach().cpu().float()
    if w.dim() != 4:
        raise ValueError(f"expected a conv weight of shape (out, in, kh, kw), got {tuple(w.shape)}")
    w = w if w.shape[1] == 3 else w[:, :1]
    scale = w.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    tiles = 0.5 + 0.5 * w / scale
    n = len(tiles)
    ncols = ncols or min(n, 10)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(to_numpy_image(tiles[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    return fig


def attribution_grid(images, maps: dict, *, labels=None, signed=False, size: float = 1.25, overlay: bool = False,
                     title: str | None = None):
    """Images in the first column, then one column per method: ``maps`` is ``{"saliency": (N, C, H, W), ...}``.

    Each map is scaled on its own (unsigned: 0 to its maximum, ``gray_r`` so that important pixels are dark;
    signed: blue-white-red around 0). ``signed`` may be a bool or a set of method names; ``overlay=True`` draws
    the maps over the image. ``labels``: one string per image (row). Returns the figure.

    Example:
        >>> import matplotlib.pyplot as plt, torch
        >>> from dlviz.plot import attribution_grid
        >>> images = torch.rand(2, 1, 28, 28)
        >>> maps = {"saliency": torch.rand(2, 1, 28, 28), "gradient": torch.randn(2, 1, 28, 28)}
        >>> fig = attribution_grid(images, maps, labels=["7", "2"], signed={"gradient"})
        >>> len(fig.axes), [ax.get_title() for ax in fig.axes[:3]]
        (6, ['7', 'saliency', 'gradient'])
        >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    images = list(images)
    names = list(maps)
    n = len(images)
    for name in names:
        if len(maps[name]) != n:
            raise ValueError(f"maps[{name!r}] has {len(maps[name])} entries for {n} images")
    fig, axes = plt.subplots(n, 1 + len(names),
                             figsize=(size * (1 + len(names)), size * n + 0.25 + (0.3 if title else 0)),
                             squeeze=False)
    for row in range(n):
        axes[row, 0].imshow(to_numpy_image(images[row]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[row, 0].axis("off")
        if labels is not None:
            axes[row, 0].set_title(str(labels[row]), fontsize=8, pad=2)
        for col, name in enumerate(names, start=1):
            ax = axes[row, col]
            is_signed = signed if isinstance(signed, bool) else name in signed
            if overlay:
                heatmap_overlay(images[row], maps[name][row], ax=ax, signed=is_signed)
            else:
                heat = attribution_map(maps[name][row], is_signed)
                limit = float(np.abs(heat).max()) or 1.0
                if is_signed:
                    ax.imshow(heat, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
                else:
                    ax.imshow(heat, cmap="gray_r", vmin=0, vmax=limit, interpolation="nearest")
                ax.axis("off")
            if row == 0:
                ax.set_title(name, fontsize=8, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3)
    return fig
