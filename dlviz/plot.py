"""Figures for the course: image grids with labels and training curves, sized to keep notebooks small."""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["to_numpy_image", "image_grid", "training_curves"]


def to_numpy_image(image) -> np.ndarray:
    """A (C, H, W) or (H, W) tensor/array, or a PIL image, as an (H, W) or (H, W, 3) float array for ``imshow``.

    Tensors with C = 1 become (H, W); C = 3 becomes (H, W, 3). Values are not rescaled.
    """
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL image
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    array = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, dtype=np.float32)
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
        vmin, vmax: the value range mapped to black and white (None: each image's own range).
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
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(to_numpy_image(images[i]), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_curves(history, axes=None, title: str | None = None):
    """Loss (left) and accuracy (right) per epoch of a :class:`dlviz.train.History`, training and validation."""
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
