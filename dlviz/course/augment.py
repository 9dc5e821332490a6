"""Data augmentation for a whole batch at once: a random affine map and an elastic warp, one resampling per batch.

:func:`distort` gives every image of a (N, C, H, W) batch its own small random rotation, shift and zoom, and its own
random warp: the "elastic distortions" of Simard, Steinkraus and Platt (2003), a field of random displacements in
[-1, 1] pixels, smoothed by a Gaussian of standard deviation ``sigma`` and scaled by ``alpha``. Both are folded into
one sampling grid, so the batch is resampled once, by one ``F.grid_sample`` call: no Python loop over images, which
makes it fast enough to run inside a ``DataLoader``'s ``collate_fn`` at every step (:func:`collate`).

torchvision's ``v2.RandomAffine`` and ``v2.ElasticTransform`` make the same kinds of distortion, one image at a time
(or one set of parameters for a whole batch).
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .._validate import as_image_batch, check_generator, check_number, restore_batch

__all__ = ["distort", "gaussian_blur", "collate"]


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur every channel of (N, C, H, W) maps with a Gaussian of standard deviation ``sigma`` pixels.

    A separable blur (one row pass, one column pass) truncated at 3 ``sigma``, with zeros beyond the border; the
    kernel sums to 1. Any real values (not only images in [0, 1]); the input is not modified.

    Args:
        maps: a float tensor (N, C, H, W).
        sigma: the Gaussian's standard deviation in pixels (a positive number).

    Returns:
        A tensor of the same shape, dtype and device.

    Example:
        >>> import torch
        >>> from dlviz.course.augment import gaussian_blur
        >>> spike = torch.zeros(1, 1, 9, 9); spike[0, 0, 4, 4] = 1
        >>> blurred = gaussian_blur(spike, 1.0)
        >>> blurred.shape, round(float(blurred.sum()), 4), bool(blurred[0, 0, 4, 4] < 1)
        (torch.Size([1, 1, 9, 9]), 1.0, True)
    """
    if not isinstance(maps, torch.Tensor) or not maps.is_floating_point() or maps.dim() != 4:
        raise ValueError("maps must be a float tensor of shape (N, C, H, W), got "
                         + (f"shape {tuple(maps.shape)}, dtype {maps.dtype}" if isinstance(maps, torch.Tensor)
                            else type(maps).__name__))
    check_number(sigma, "sigma")
    radius = max(1, int(3 * sigma))
    kernel = torch.exp(-torch.arange(-radius, radius + 1.0, dtype=maps.dtype, device=maps.device) ** 2
                       / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = maps.shape[1]
    maps = F.conv2d(maps, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), padding=(0, radius), groups=channels)
    return F.conv2d(maps, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), padding=(radius, 0), groups=channels)


def distort(x: torch.Tensor, *, degrees: float = 12.0, shift: float = 0.1, zoom: float = 0.15, alpha: float = 34.0,
            sigma: float = 4.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random affine map and elastic warp, different for every image, applied to the whole batch at once.

    Every image gets a rotation by an angle drawn uniformly in [-``degrees``, ``degrees``], a zoom by a factor in
    [1 - ``zoom``, 1 + ``zoom``], a shift in each direction by up to ``shift`` times the image's size, and an elastic
    warp: uniform random displacements in [-1, 1] pixels at every pixel, blurred by a Gaussian of ``sigma`` pixels
    (:func:`gaussian_blur`) and multiplied by ``alpha``. The two maps are combined into one sampling grid and the
    batch is resampled once (bilinear, zeros outside the image). Random numbers are drawn in this order: angles (N),
    zooms (N), shifts (N, 2), displacements (N, 2, H, W), as float32 on the CPU from ``generator`` (default: torch's
    global generator, so ``dlviz.seed`` makes it repeatable).

    Args:
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1]; never modified.
        degrees: the largest rotation in degrees (0 to 180).
        shift: the largest shift as a fraction of the image's width and height (0 to 1).
        zoom: the largest relative change of scale (0 to less than 1).
        alpha: the strength of the elastic warp (0: none).
        sigma: the smoothness of the warp in pixels (positive): larger values move larger regions together.
        generator: a CPU ``torch.Generator`` for repeatable draws independent of the global seed.

    Returns:
        Distorted images of ``x``'s shape, dtype and device, in [0, 1]. With every strength 0 (``degrees``,
        ``shift``, ``zoom`` and ``alpha``) an exact copy of ``x``, and nothing is drawn.

    Raises:
        TypeError: ``x`` not a float tensor, ``generator`` not a ``torch.Generator``.
        ValueError: ``x`` of another shape, outside [0, 1] or not finite; a strength out of its range.

    Example:
        >>> import torch
        >>> from dlviz.course.augment import distort
        >>> x = torch.rand(8, 1, 28, 28)
        >>> out = distort(x, generator=torch.Generator().manual_seed(0))
        >>> out.shape, bool(out.min() >= 0) and bool(out.max() <= 1)
        (torch.Size([8, 1, 28, 28]), True)
        >>> torch.equal(out, distort(x, generator=torch.Generator().manual_seed(0)))   # same generator state
        True
        >>> torch.equal(distort(x, degrees=0, shift=0, zoom=0, alpha=0), x)            # zero strength: a copy
        True
    """
    check_generator(generator)
    batch, single = as_image_batch(x, "x")
    check_number(degrees, "degrees", allow_zero=True)
    check_number(shift, "shift", allow_zero=True)
    check_number(zoom, "zoom", allow_zero=True)
    check_number(alpha, "alpha", allow_zero=True)
    check_number(sigma, "sigma")
    if degrees > 180:
        raise ValueError(f"degrees must be at most 180, got {degrees!r}")
    if shift > 1:
        raise ValueError(f"shift is a fraction of the image's size, at most 1; got {shift!r}")
    if zoom >= 1:
        raise ValueError(f"zoom must be below 1 (a scale of 1 - zoom must stay positive), got {zoom!r}")
    if degrees == shift == zoom == alpha == 0:
        return restore_batch(batch.detach().clone(), single)

    n, _, h, w = batch.shape
    draw = dict(generator=generator)
    angle = (torch.rand(n, **draw) * 2 - 1) * math.radians(degrees)
    scale = 1 + (torch.rand(n, **draw) * 2 - 1) * zoom
    move = (torch.rand(n, 2, **draw) * 2 - 1) * shift * 2                 # grid coordinates run from -1 to 1
    displacement = torch.rand(n, 2, h, w, **draw) * 2 - 1
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1), torch.stack([sin, cos, move[:, 1]], 1)], 1)
    dtype, device = batch.dtype, batch.device
    grid = F.affine_grid(theta.to(device, dtype), list(batch.shape), align_corners=False)
    if alpha > 0:
        field = gaussian_blur(displacement.to(device, dtype), sigma) * alpha            # in pixels
        grid = grid + field.permute(0, 2, 3, 1) * torch.tensor([2 / w, 2 / h], dtype=dtype, device=device)
    out = F.grid_sample(batch.detach(), grid, align_corners=False).clamp_(0, 1)
    return restore_batch(out, single)


def collate(batch, **strengths):
    """A ``DataLoader`` ``collate_fn``: stack (image, label) pairs as usual, then :func:`distort` the images.

    Args:
        batch: the list of (image, label) samples the ``DataLoader`` gives.
        **strengths: keyword arguments for :func:`distort` (bind them with ``functools.partial``).

    Returns:
        ``(images, labels)``: the distorted (N, C, H, W) images and the labels as ``default_collate`` stacks them.

    Example:
        >>> import functools, torch
        >>> from dlviz.course.augment import collate
        >>> data = torch.utils.data.TensorDataset(torch.rand(10, 1, 28, 28), torch.arange(10))
        >>> loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=functools.partial(collate, degrees=5))
        >>> images, labels = next(iter(loader))
        >>> images.shape, labels.tolist()
        (torch.Size([4, 1, 28, 28]), [0, 1, 2, 3])
    """
    images, labels = torch.utils.data.default_collate(batch)
    return distort(images, **strengths), labels
