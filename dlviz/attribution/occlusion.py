"""Occlusion (Zeiler & Fergus 2014): slide a grey square over the image and watch the class score fall.

The occluded copies of an image are built a batch at a time -- each batch's window masks made on the fly, so
memory is bounded by ``batch_size`` whatever the image size and stride -- and evaluated under
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

from .. import _precision
from .._model import model_input, preserved, select_scores, to_caller
from .._progress import progress_bar
from .._validate import check_count, check_targets

__all__ = ["occlusion", "window_starts"]

_BATCH_ELEMENTS = 1 << 21  # pixels x channels per forward pass by default (8 MiB of float32 inputs)


def _pair(value, name: str) -> tuple[int, int]:
    what = "a positive int or a pair (height, width) of positive ints"
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    try:
        return tuple(check_count(v, name, what=what) for v in pair)
    except ValueError:
        raise ValueError(f"{name} must be {what}, got {value!r}") from None


def window_starts(size: int, window: int, stride: int) -> torch.Tensor:
    """Top (or left) edges of the occluding windows along one side, as Captum's ``Occlusion`` places them:
    every ``stride`` pixels from 0, and one more window (cut at the border) when the stride does not divide
    ``size - window``.

    Example:
        >>> from dlviz.attribution.occlusion import window_starts
        >>> window_starts(10, 4, 4).tolist()         # the last window is cut at the border
        [0, 4, 8]
    """
    return torch.arange(math.ceil((size - window) / stride) + 1) * stride


def occlusion(model: nn.Module, x: torch.Tensor, target, *, window, stride=None, baseline=0.0, score: str = "prob",
              batch_size: int | None = None, output=None, progress: bool = True,
              precision: str = "fp32") -> torch.Tensor:
    """How much the target class's score drops when a window of the image is replaced by ``baseline``.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] and returning scores (N, classes).
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1].
        target: a class index, or one per image (ints in [0, classes)).
        window: the occluding square's side in pixels, or (height, width); it covers all channels. Ints (numpy
            ints too); floats such as 4.0 are refused.
        stride: the step between windows (int or pair; default: half the window, rounded up), at most the window.
        baseline: what the window shows: a number in [0, 1] (0 = black, 0.5 = grey) or an image tensor in [0, 1]
            that broadcasts to (C, H, W) (e.g. a blurred copy).
        score: ``"prob"`` (softmax probability of the target; the model needs at least 2 classes) or ``"logit"``
            (the raw score).
        batch_size: occluded copies per forward pass (default: as many as fit in about 8 MiB of input); memory use
            is bounded by it whatever the image size and stride.
        output: how to get the class scores from a non-tensor model output (int index, str key or attribute, or
            callable); see :func:`dlviz.saliency`.
        progress: show a progress bar over the forward passes.
        precision: "fp32" (default: the model's own arithmetic, equal to Captum's), "bf16" (the forward passes under
            bfloat16 autocast; scores, softmax and differences in float32) or "auto" (bf16 for float32 conv nets and
            MLPs on a device with native bfloat16, else fp32); see :func:`dlviz.fit`. bfloat16 keeps about 3
            significant digits of each score, so drops smaller than about 1% of the score are noise.

    Returns:
        A tensor shaped like ``x``, in ``x``'s dtype and on ``x``'s device: at each pixel, the mean over the
        windows covering it of ``score(original) - score(occluded)`` -- positive where hiding the pixels lowers the
        class score (in [-1, 1] for ``"prob"``); equal in every channel. This is Captum's ``Occlusion`` with
        ``sliding_window_shapes=(C, h, w)``, ``strides=(C, sh, sw)`` and ``baselines=baseline`` (on
        ``softmax(model(x))`` for ``score="prob"``), computed in batches. The model runs in its own dtype
        (float64 and bfloat16 models too) and on its own device.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz import occlusion
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> with torch.no_grad():                      # class 0's score is the top-left 2 x 2 pixels' sum
        ...     _ = net[1].weight.zero_()
        ...     _ = net[1].bias.zero_()
        ...     _ = net[1].weight[0].view(4, 4)[:2, :2].fill_(1.0)
        >>> occlusion(net, torch.ones(1, 4, 4), 0, window=2, stride=2, score="logit", progress=False)
        tensor([[[4., 4., 0., 0.],
                 [4., 4., 0., 0.],
                 [0., 0., 0., 0.],
                 [0., 0., 0., 0.]]])
    """
    batch, single = model_input(model, x)
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
    if batch_size is not None:
        batch_size = check_count(batch_size, "batch_size", what="a positive int or None")

    windows = _Windows(batch, (wh, ww), (sh, sw))
    fill = _baseline(baseline, batch)
    per_pass = batch_size or max(1, min(windows.count, _BATCH_ELEMENTS // (channels * height * width)))
    plan = _precision.plan(precision, model, batch.device, channels_last=False)
    evaluate = _Scores(model, batch, score, output, plan)
    # made outside inference mode so that the result is an ordinary tensor
    drops = torch.zeros(n, windows.count, device=batch.device, dtype=_paint_dtype(batch.dtype))
    with preserved(model), torch.inference_mode():
        scores = evaluate(batch.clone())  # a model that changes its input in place must not change `batch`
        t = check_targets(target, n, scores.shape[1]).to(scores.device)
        reference = scores.gather(1, t[:, None])[:, 0]
        # a window that covers only pixels already equal to the baseline changes nothing: its drop is 0
        changed = [windows.changing(batch[i] != fill[i]) for i in range(n)]
        passes = sum(math.ceil(len(c) / per_pass) for c in changed)
        with progress_bar(passes, "occlusion", enabled=progress, unit="pass") as bar:
            for i in range(n):
                for start in range(0, len(changed[i]), per_pass):
                    which = changed[i][start:start + per_pass]
                    occluded = torch.where(windows.masks(which), fill[i], batch[i])  # (p, C, H, W)
                    drops[i, which] = (reference[i] - evaluate(occluded)[:, t[i]]).to(drops.dtype)
                    bar.update()
    result = windows.paint(drops).expand(n, channels, height, width).contiguous()
    return to_caller(result, x, single)


def _paint_dtype(dtype: torch.dtype) -> torch.dtype:
    """Drops are averaged in at least float32 (a bfloat16 model's drops would lose the mean's precision)."""
    return torch.promote_types(dtype, torch.float32)


class _Windows:
    """The occluding windows of one image size: their masks, a batch at a time, and painting drops back."""

    def __init__(self, images: torch.Tensor, window: tuple[int, int], stride: tuple[int, int]):
        self.height, self.width = images.shape[-2:]
        self.window, self.stride = window, stride
        device = images.device
        self.tops = window_starts(self.height, window[0], stride[0]).to(device)
        self.lefts = window_starts(self.width, window[1], stride[1]).to(device)
        self.count = len(self.tops) * len(self.lefts)

    def masks(self, which: torch.Tensor) -> torch.Tensor:
        """(p, 1, H, W) bool masks of the windows ``which`` (flat indices, row-major over the window grid)."""
        rows = _covers(self.tops[which // len(self.lefts)], self.window[0], self.height)  # (p, H)
        cols = _covers(self.lefts[which % len(self.lefts)], self.window[1], self.width)  # (p, W)
        return (rows[:, :, None] & cols[:, None, :])[:, None]

    def changing(self, differs: torch.Tensor) -> torch.Tensor:
        """Flat indices of the windows that cover at least one pixel where ``differs`` (C, H, W) is true."""
        any_channel = differs.any(0).to(torch.float32)[None, None]  # (1, 1, H, W)
        # the last window of a row or column may reach past the border: pad so that max-pooling sees it
        beyond_h = int(self.tops[-1]) + self.window[0] - self.height
        beyond_w = int(self.lefts[-1]) + self.window[1] - self.width
        padded = F.pad(any_channel, (0, max(0, beyond_w), 0, max(0, beyond_h)))
        hit = F.max_pool2d(padded, self.window, self.stride)[0, 0, :len(self.tops), :len(self.lefts)]
        return torch.nonzero(hit.flatten() > 0)[:, 0]

    def paint(self, drops: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W): each pixel's mean drop over the windows covering it."""
        n = drops.shape[0]
        grid = drops.reshape(n, 1, len(self.tops), len(self.lefts))
        grid = torch.cat([grid, torch.ones_like(grid)], 1).reshape(2 * n, 1, len(self.tops), len(self.lefts))
        box = torch.ones(1, 1, *self.window, device=drops.device, dtype=drops.dtype)
        painted = F.conv_transpose2d(grid, box, stride=self.stride)[..., :self.height, :self.width]
        painted = painted.reshape(n, 2, self.height, self.width)
        return (painted[:, 0] / painted[:, 1])[:, None]


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


class _Scores:
    """The class scores (probabilities for ``score="prob"``) of a batch of images. Large images go through the model
    in channels-last memory layout, which CPU convolutions run faster (:func:`dlviz._precision.input_layout`); a
    model that cannot take it (e.g. one calling ``.view`` on its feature maps) gets the usual layout instead."""

    def __init__(self, model: nn.Module, images: torch.Tensor, score: str, output, plan: _precision.Plan):
        self.model, self.score, self.output, self.plan = model, score, output, plan
        self.layout = _precision.input_layout(images)

    def _forward(self, images: torch.Tensor):
        with _precision.autocast(self.plan):
            return self.model(images)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = self.layout.run(self._forward, images)
        scores = _precision.as_float32(select_scores(out, self.output, model=self.model, n=images.shape[0],
                                                     need_classes=self.score == "prob"))
        return scores.softmax(dim=1) if self.score == "prob" else scores
