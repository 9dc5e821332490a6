"""Occlusion (Zeiler & Fergus 2014): slide a grey square over the image and watch the class score fall.

The occluded copies of an image are built by broadcasting window masks and evaluated in batches under
``torch.inference_mode`` (large images in channels-last layout, faster on CPUs); windows that would change no
pixel (already equal to the baseline, e.g. black background under a black window) are not evaluated, their drop
being exactly 0. The per-window drops are painted back onto the pixels with a transposed convolution, which gives
each pixel the mean drop over the windows that covered it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import as_image_batch, check_targets, restore_batch
from .hooks import model_device, preserved

__all__ = ["occlusion", "window_starts"]

_BATCH_ELEMENTS = 1 << 21  # pixels x channels per forward pass by default (8 MiB of float32 inputs)
_CHANNELS_LAST_PIXELS = 96 * 96  # images at least this large use the channels-last layout


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, (tuple, list)):
        pair = tuple(value)
    else:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of positive ints, got {value!r}")
    return pair


def window_starts(size: int, window: int, stride: int) -> torch.Tensor:
    """Top (or left) edges of the occluding windows along one side, as Captum's ``Occlusion`` places them:
    every ``stride`` pixels from 0, and one more window (cut at the border) when the stride does not divide
    ``size - window``."""
    return torch.arange(math.ceil((size - window) / stride) + 1) * stride


def occlusion(model: nn.Module, x: torch.Tensor, target, *, window, stride=None, baseline=0.0, score: str = "prob",
              batch_size: int | None = None) -> torch.Tensor:
    """How much the target class's score drops when a window of the image is replaced by ``baseline``.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] and returning scores (N, classes).
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1].
        target: a class index, or one per image.
        window: the occluding square's side in pixels, or (height, width); it covers all channels.
        stride: the step between windows (int or pair; default: half the window, rounded up), at most the window.
        baseline: what the window shows: a number in [0, 1] (0 = black, 0.5 = grey) or an image tensor that
            broadcasts to (C, H, W) (e.g. a blurred copy).
        score: ``"prob"`` (softmax probability of the target) or ``"logit"`` (the raw score).
        batch_size: occluded copies per forward pass (default: as many as fit in about 8 MiB of input).

    Returns a tensor shaped like ``x`` (on ``x``'s device): at each pixel, the mean over the windows covering it
    of ``score(original) - score(occluded)`` -- positive where hiding the pixels lowers the class score; equal in
    every channel. This is Captum's ``Occlusion`` with ``sliding_window_shapes=(C, h, w)``, ``strides=(C, sh, sw)``
    and ``baselines=baseline`` (on ``softmax(model(x))`` for ``score="prob"``), computed in batches.
    """
    batch, single = as_image_batch(x, "x")
    n, channels, height, width = batch.shape
    wh, ww = _pair(window, "window")
    if wh > height or ww > width:
        raise ValueError(f"window {(wh, ww)} is larger than the images ({height} x {width} pixels)")
    sh, sw = _pair(stride, "stride") if stride is not None else ((wh + 1) // 2, (ww + 1) // 2)
    if (sh > wh and wh < height) or (sw > ww and ww < width):
        raise ValueError(f"stride {(sh, sw)} is larger than the window {(wh, ww)}: some pixels would never be "
                         f"occluded")
    if score not in ("prob", "logit"):
        raise ValueError(f"score must be 'prob' or 'logit', got {score!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")

    device = model_device(model)
    images = batch.detach().to(device)
    fill = _baseline(baseline, images)
    tops, lefts = window_starts(height, wh, sh).to(device), window_starts(width, ww, sw).to(device)
    rows = _covers(tops, wh, height)  # (nh, H): which rows each window row covers
    cols = _covers(lefts, ww, width)  # (nw, W)
    masks = (rows[:, None, :, None] & cols[None, :, None, :]).reshape(-1, 1, height, width)  # (P, 1, H, W)
    per_pass = batch_size or max(1, min(len(masks), _BATCH_ELEMENTS // (channels * height * width)))

    drops = torch.zeros(n, len(masks), device=device)
    with preserved(model), torch.inference_mode():
        layout = _Layout(images)
        scores = _scores(model, layout(images), score, layout)
        t = check_targets(target, n, scores.shape[1]).to(device)
        reference = scores.gather(1, t[:, None])[:, 0]
        for i in range(n):
            # a window that covers only pixels already equal to the baseline changes nothing: its drop is 0
            differs = (images[i] != fill[i]).any(0)  # (H, W)
            changed = torch.nonzero((masks[:, 0] & differs).flatten(1).any(1))[:, 0]
            for start in range(0, len(changed), per_pass):
                which = changed[start:start + per_pass]
                occluded = torch.where(masks[which], fill[i], images[i])  # (p, C, H, W)
                drops[i, which] = reference[i] - _scores(model, layout(occluded), score, layout)[:, t[i]]
    # paint every window's drop onto its pixels, and count the windows covering each pixel
    grid = drops.reshape(n, 1, len(tops), len(lefts))
    grid = torch.cat([grid, torch.ones_like(grid)], 1).reshape(2 * n, 1, len(tops), len(lefts))
    box = torch.ones(1, 1, wh, ww, device=device)
    painted = F.conv_transpose2d(grid, box, stride=(sh, sw))[..., :height, :width].reshape(n, 2, height, width)
    result = (painted[:, 0] / painted[:, 1])[:, None].expand(n, channels, height, width).contiguous()
    return restore_batch(result.to(x.device), single)


def _covers(starts: torch.Tensor, window: int, size: int) -> torch.Tensor:
    pixels = torch.arange(size, device=starts.device)
    return (pixels >= starts[:, None]) & (pixels < starts[:, None] + window)


def _baseline(baseline, images: torch.Tensor) -> torch.Tensor:
    n, channels, height, width = images.shape
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if not 0.0 <= baseline <= 1.0:
            raise ValueError(f"baseline must be a value in [0, 1] (0.5 is grey), got {baseline}")
        return torch.full((n, 1, 1, 1), float(baseline), dtype=images.dtype, device=images.device)
    if isinstance(baseline, torch.Tensor):
        try:
            fill = torch.broadcast_to(baseline.detach().to(images), images.shape)
        except RuntimeError:
            raise ValueError(f"a baseline tensor must broadcast to the images' shape {tuple(images.shape)}, got "
                             f"{tuple(baseline.shape)}") from None
        if not bool(torch.isfinite(fill).all()) or float(fill.min()) < 0 or float(fill.max()) > 1:
            raise ValueError(f"a baseline image must have values in [0, 1] like the images, got values in "
                             f"[{float(fill.min()):.3g}, {float(fill.max()):.3g}]")
        return fill
    raise TypeError(f"baseline must be a number in [0, 1] or a tensor, got {type(baseline).__name__}")


class _Layout:
    """Large images go through the model in channels-last memory layout, which CPU convolutions run faster; a
    model that cannot take it (e.g. one calling ``.view`` on its feature maps) gets the usual layout instead."""

    def __init__(self, images: torch.Tensor):
        self.channels_last = images.shape[-1] * images.shape[-2] >= _CHANNELS_LAST_PIXELS

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


def _scores(model: nn.Module, images: torch.Tensor, score: str, layout: _Layout | None = None) -> torch.Tensor:
    try:
        out = model(images)
    except RuntimeError:
        if layout is None or not layout.channels_last:
            raise
        layout.channels_last = False
        out = model(images.contiguous())
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{type(model).__name__} must return class scores of shape (N, classes); got {shape}")
    return out.softmax(dim=1) if score == "prob" else out
