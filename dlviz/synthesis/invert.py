"""Reconstruction of an image from one layer's representation (Mahendran & Vedaldi 2015).

What does a layer keep of its input? :func:`invert` looks for images ``x'`` whose representation ``phi(x')`` at a
layer matches that of the original ``x``, by minimizing over the pixels, for each image,

    ``|phi(x') - phi(x)|^2 / |phi(x)|^2  +  alpha_weight * R_alpha(x')  +  tv_weight * R_TV(x')``

* the data term is the normalized (relative) squared distance of the representations, as in the paper, so that one
  set of weights works for every layer: 0 is a perfect match, 1 is as far as an all-zero representation;
* ``R_alpha`` is the paper's alpha-norm prior, on the image centred at mid-grey and scaled by the largest deviation
  ``B = 0.5`` that an image in [0, 1] allows: the mean over channels and pixels of ``|(x' - 0.5) / B|^alpha``
  (between 0 and 1). With ``alpha = 6`` it is nearly flat inside the range and keeps pixels from drifting to the
  extremes where the representation does not say where they should be;
* ``R_TV`` is the paper's total-variation prior ``((dx)^2 + (dy)^2)^(beta/2) / V^beta``, averaged over pixels and
  channels, with ``dx``, ``dy`` the differences to the right and lower neighbours and ``V = B / 6.5`` (the paper's
  typical gradient size relative to the range). ``beta = 2`` (default) prefers smooth images, ``beta = 1`` allows
  sharp edges.

The optimizer is Adam on the pixels with a projection onto [0, 1] after each step, and a learning rate that decays
(cosine) to a hundredth of ``lr`` over the run. Why Adam and not L-BFGS: the box [0, 1] is part of the problem, and
projected Adam keeps every pixel free to move, 0 and 1 included (a pixel at 0 whose gradient points into the range
leaves it at the next step), with no penalty term and no clamp inside the objective (``torch.clamp`` gives no
gradient to a value exactly at a bound, so black or white pixels would freeze). Adam scales each pixel's step by its
own gradient history, so one learning rate suits every layer, whose gradients differ by orders of magnitude, and
each image of a batch is reconstructed as if it were alone (nothing couples the images). L-BFGS needs the
projection folded into its line search; Mahendran & Vedaldi themselves used plain gradient descent with momentum.
The decaying rate lets the last steps settle instead of hopping around the minimum.

The layer must run once per forward pass (a module called several times, like torchvision's ResNet's shared
``relu``, has no single representation to match): such a layer is refused with a ValueError.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from .._model import gradients_on, model_dtype, model_input, preserved, to_caller
from .._progress import progress_bar
from .._validate import as_image_batch, as_int, check_count, check_generator, check_number
from ..hooks import capture, resolve_layer, single_output

__all__ = ["invert", "InversionInfo", "alpha_prior", "tv_prior"]

RANGE = 0.5            # B: the largest deviation from mid-grey of a pixel in [0, 1]
TV_SCALE = RANGE / 6.5  # V: the paper's typical pixel difference, B / 6.5


@dataclass(frozen=True)
class InversionInfo:
    """What an :func:`invert` run reached (``return_info=True``).

    Attributes:
        layer: the name of the inverted layer.
        feature_error: (N,) the relative feature error ``|phi(x') - phi(x)|^2 / |phi(x)|^2`` of each returned image
            (0 is a perfect match), in ``x``'s dtype, on ``x``'s device.
        loss: the objective at every step, averaged over the images (floats).
        seconds: the wall-clock time of the run.
    """
    layer: str
    feature_error: torch.Tensor
    loss: list[float]
    seconds: float


def _check_steps(steps) -> int:
    if as_int(steps) is None:
        raise TypeError(f"steps must be an int >= 1, got {steps!r} ({type(steps).__name__})")
    return check_count(steps, "steps")


def _check_at_least(value, name: str, low: float) -> float:
    value = check_number(value, name)
    if value < low:
        raise ValueError(f"{name} must be a number >= {low:g}, got {value!r}")
    return float(value)


def _flat_norm2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).pow(2).sum(1)


def alpha_prior(x: torch.Tensor, alpha: float = 6) -> torch.Tensor:
    """Mahendran & Vedaldi's alpha-norm prior for images in [0, 1], one value per image.

    The mean over channels and pixels of ``|(x - 0.5) / 0.5|^alpha``: 0 for a mid-grey image, 1 for an image whose
    pixels are all black or white.

    Args:
        x: images (N, C, H, W).
        alpha: the exponent (>= 1); large values penalize little inside the range and much near its ends.

    Returns:
        (N,) values in [0, 1] for images in [0, 1].

    Example:
        >>> import torch
        >>> from dlviz.synthesis.invert import alpha_prior
        >>> alpha_prior(torch.stack([torch.full((1, 4, 4), 0.5), torch.ones(1, 4, 4), torch.full((1, 4, 4), 0.25)]))
        tensor([0.0000, 1.0000, 0.0156])
    """
    return ((x - 0.5) / RANGE).abs().pow(alpha).flatten(1).mean(1)


def tv_prior(x: torch.Tensor, beta: float = 2) -> torch.Tensor:
    """Mahendran & Vedaldi's total-variation prior, one value per image.

    The mean over channels and pixels of ``((dx)^2 + (dy)^2)^(beta/2) / V^beta``, where ``dx`` and ``dy`` are the
    differences to the right and lower neighbours (the last row and column, which lack one, are left out) and
    ``V = 0.5 / 6.5`` is the paper's typical pixel difference. 0 for a flat image; a single-row or single-column
    image has no differences and gets 0.

    Args:
        x: images (N, C, H, W).
        beta: the exponent (>= 1): 2 (default) penalizes strong edges most, 1 allows sharp edges.

    Returns:
        (N,) non-negative values.

    Example:
        >>> import torch
        >>> from dlviz.synthesis.invert import tv_prior
        >>> flat, ramp = torch.zeros(1, 1, 4, 4), torch.arange(4.0).div(26).expand(1, 1, 4, 4)  # steps of V / 2
        >>> tv_prior(torch.cat([flat, ramp]))
        tensor([0.0000, 0.2500])
    """
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        return x.new_zeros(x.shape[0])
    corner = x[..., :-1, :-1]
    squared = (x[..., :-1, 1:] - corner).pow(2) + (x[..., 1:, :-1] - corner).pow(2)
    squared = squared / TV_SCALE ** 2
    if beta != 2:  # the gradient of a power below 1 is infinite at 0: keep it finite on flat patches
        squared = squared + torch.finfo(squared.dtype).eps
    return squared.pow(beta / 2).flatten(1).mean(1)


def _representation(cap, name: str, n: int) -> torch.Tensor:
    """The layer's output recorded by ``cap`` in the last pass, checked to be the single output (the layer ran
    once) and a floating tensor (N, ...)."""
    return single_output(cap, name, n, floating=True, who="invert", expected="a floating-point tensor (N, ...)")


def _start(init, batch: torch.Tensor, generator, dtype) -> torch.Tensor:
    """The starting images (N, C, H, W) in ``dtype`` on ``batch``'s device."""
    if init is None:
        check_generator(generator)
        where = generator.device if generator is not None else torch.device("cpu")
        noise = torch.rand(batch.shape, generator=generator, device=where, dtype=torch.float32)
        return (0.5 + 0.1 * (noise - 0.5)).to(device=batch.device, dtype=dtype)
    start, _ = as_image_batch(init, "init")
    if start.shape[1:] != batch.shape[1:] or start.shape[0] not in (1, batch.shape[0]):
        raise ValueError(f"init must be images of x's shape {tuple(batch.shape)} (or one {tuple(batch.shape[1:])} "
                         f"image for all), got shape {tuple(init.shape)}")
    return start.detach().to(device=batch.device, dtype=dtype).expand_as(batch).clone()


def invert(model: nn.Module, x: torch.Tensor, *, layer, steps: int = 200, lr: float = 0.1, alpha: float = 6,
           alpha_weight: float = 0.01, tv_beta: float = 2, tv_weight: float = 0.005, init=None,
           generator: torch.Generator | None = None, progress: bool = True, return_info: bool = False):
    """Images whose representation at ``layer`` matches that of ``x`` (Mahendran & Vedaldi's inversion).

    Minimizes, for each image, ``|phi(x') - phi(x)|^2 / |phi(x)|^2 + alpha_weight * R_alpha(x') + tv_weight *
    R_TV(x')`` over the pixels of ``x'`` in [0, 1], with ``phi`` the layer's output, :func:`alpha_prior` and
    :func:`tv_prior` (see the module's documentation for the objective and the optimizer). How close the result comes
    to ``x`` shows what the layer keeps; what differs (and is filled in by the priors) is what it discards.

    Args:
        model: any ``nn.Module`` taking (N, C, H, W) images in [0, 1] (normalization inside the model); it runs in
            eval mode, and its modes, flags and hooks are as before afterwards, also on error. Its output is not
            used, so it need not be a classifier.
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1]; never modified.
        layer: a name from ``model.named_modules()`` (``"features.3"``) or a module of ``model``, whose output is a
            floating-point tensor (N, ...) and which runs once per forward pass (otherwise ValueError).
        steps: Adam steps (an int >= 1). 200 (default) bring the relative feature error below 0.1 (mostly to
            about 1%) at every layer of the course's LeNet, in about a second for 8 digits on one CPU thread; a
            wide fully connected first layer (the course's MLP) can need more (600 reach about 1% there).
        lr: Adam's learning rate in pixel units (decayed to ``lr / 100`` along a cosine over the run).
        alpha: the exponent of the alpha-norm prior (>= 1; the paper's 6 by default).
        alpha_weight: the weight of the alpha-norm prior (>= 0).
        tv_beta: the exponent of the total-variation prior (>= 1; 2 by default, as in the paper).
        tv_weight: the weight of the total-variation prior (>= 0). Raise it for smoother reconstructions from
            layers that keep little (deep layers); 0 turns the prior off.
        init: where to start: None (default) for faint noise around mid-grey (``0.5 + U(-0.05, 0.05)``) drawn from
            ``generator``, or images of ``x``'s shape (or one image for all) in [0, 1].
        generator: a torch.Generator for the starting noise (default: torch's global generator); a seeded one gives
            the same images on every call.
        progress: show a progress bar (tqdm) with the mean relative feature error.
        return_info: also return an :class:`InversionInfo` with the relative feature error reached per image, the
            loss history and the seconds.

    Returns:
        The reconstructions, of ``x``'s shape ((N, C, H, W) or (C, H, W)), dtype and device, values in [0, 1];
        with ``return_info=True``, ``(images, info)``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.synthesis.invert import invert
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 2))
        >>> x = torch.rand(2, 1, 6, 6)
        >>> images, info = invert(model, x, layer="1", steps=100, tv_weight=0,
        ...                       generator=torch.Generator().manual_seed(0),
        ...                       progress=False, return_info=True)   # without the smoothness prior: x is noise
        >>> images.shape, bool(images.min() >= 0 and images.max() <= 1), len(info.loss)
        (torch.Size([2, 1, 6, 6]), True, 100)
        >>> bool((info.feature_error < 0.01).all()), bool((images - x).abs().max() < 0.1)  # 8 maps keep the image
        (True, True)
    """
    start_time = time.perf_counter()
    steps = _check_steps(steps)
    lr = float(check_number(lr, "lr"))
    alpha = _check_at_least(alpha, "alpha", 1)
    tv_beta = _check_at_least(tv_beta, "tv_beta", 1)
    alpha_weight = float(check_number(alpha_weight, "alpha_weight", allow_zero=True))
    tv_weight = float(check_number(tv_weight, "tv_weight", allow_zero=True))
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    name, _ = resolve_layer(model, layer)
    dtype = model_dtype(model)
    work = torch.float64 if dtype == torch.float64 else torch.float32  # Adam's moments need at least float32

    with gradients_on():
        batch, single = model_input(model, x)
        n = batch.shape[0]
        pixels = _start(init, batch, generator, work).requires_grad_(True)
        with preserved(model):
            with torch.no_grad(), capture(model, name) as cap:   # the whole pass: is the layer used only once?
                cap(batch)
                target = _representation(cap, name, n)
            target = target.to(work)
            scale = _flat_norm2(target)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero representation: absolute

            def objective(images):
                with capture(model, name, detach=False, stop=True) as run:
                    run(images.to(dtype, copy=True))   # a copy: a model that normalizes in place cannot reach pixels
                    features = _representation(run, name, n)
                error = _flat_norm2(features.to(work) - target) / scale
                total = error
                if alpha_weight:
                    total = total + alpha_weight * alpha_prior(images, alpha)
                if tv_weight:
                    total = total + tv_weight * tv_prior(images, tv_beta)
                return total, error

            optimizer = torch.optim.Adam([pixels], lr=lr)
            history = []
            with progress_bar(steps, f"inverting {name}", enabled=progress) as bar:
                for step in range(steps):
                    for group in optimizer.param_groups:   # cosine decay from lr to lr / 100
                        group["lr"] = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / steps)))
                    total, error = objective(pixels)
                    if not total.requires_grad:
                        raise ValueError(f"the output of layer {name!r} does not depend on the input images, so "
                                         f"there is nothing to reconstruct from it")
                    optimizer.zero_grad(set_to_none=True)
                    total.sum().backward()
                    optimizer.step()
                    with torch.no_grad():
                        pixels.clamp_(0, 1)   # the projection onto [0, 1]: outside the objective
                    history.append(float(total.detach().mean()))
                    if progress and (step % 10 == 0 or step == steps - 1):
                        bar.set_postfix(error=f"{float(error.detach().mean()):.3g}")
                    bar.update()
            with torch.no_grad():
                _, final_error = objective(pixels)
    images = to_caller(pixels.detach(), x, single)
    if not return_info:
        return images
    feature_error = final_error.detach().to(device=x.device, dtype=x.dtype)
    return images, InversionInfo(layer=name, feature_error=feature_error, loss=history,
                                 seconds=time.perf_counter() - start_time)
