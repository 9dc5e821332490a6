"""DeepDream, and pictures of what a class or a feature responds to, made by gradient ascent on the input.

* :func:`deepdream` (Mordvintsev, Olah & Tyka 2015) starts from a photo and amplifies whatever a layer (or one of
  its channels) already sees in it: each step moves the image along the gradient of the layer's activation,
  normalized so that the mean absolute change is ``lr``; the image is shifted by a random offset before each step
  and shifted back after it (jitter, which keeps grid artefacts from building up); and the work starts on a small
  copy of the image and moves up an image pyramid, re-injecting at each octave the detail that the smaller copy lost,
  so that patterns appear at several scales.
* :func:`class_visualization` (Simonyan, Vedaldi & Zisserman 2014) and :func:`feature_visualization` start from
  faint noise and maximize a class score or a channel's mean activation, with the regularizers that make such
  pictures legible (Yosinski et al. 2015): L2 decay towards mid-grey, jitter, and a Gaussian blur every few steps.

Images are float tensors in [0, 1], (N, C, H, W) or one (C, H, W), returned in the same form, dtype and device as
the input (float32 on the model's device when the images start from noise). The model sees every image in its own
dtype on its own device; the image being optimized is kept in at least float32, so that small steps add up even for
a bfloat16 model, and every pixel can move, also one that starts or lands exactly at 0 or 1. The model runs in eval
mode with its parameters frozen; its mode, flags and hooks are restored afterwards, the caller's image is not
modified, and the functions work inside ``torch.no_grad()`` and ``torch.inference_mode()``.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .._model import (class_scores, gradients_on, input_shape, model_device, model_dtype, model_input, preserved,
                      to_caller)
from .._progress import progress_bar
from .._validate import check_number, check_targets
from ..hooks import capture, resolve_layer

__all__ = ["deepdream", "class_visualization", "feature_visualization", "layer_objective"]


def _random_generator(generator):
    return generator.device if generator is not None else torch.device("cpu")


def layer_objective(activation: torch.Tensor, channel: int | None = None) -> torch.Tensor:
    """What :func:`deepdream` raises, one value per image.

    Args:
        activation: a layer's output (N, C, ...), e.g. (N, C, H, W) for a convolution or (N, F) for a linear layer.
        channel: None for the mean squared activation of the whole layer (the "L2" objective of the original
            DeepDream), or a channel (unit) index in [0, C) for the mean activation of that channel.

    Returns:
        (N,) tensor, in the activation's dtype.

    Example:
        >>> import torch
        >>> from dlviz.synthesis.dream import layer_objective
        >>> activation = torch.tensor([[[[1.0, -1.0]], [[2.0, 4.0]]]])   # (1, 2, 1, 2)
        >>> layer_objective(activation), layer_objective(activation, channel=1)
        (tensor([5.5000]), tensor([3.]))
    """
    if not isinstance(activation, torch.Tensor) or activation.dim() < 2:
        raise ValueError("the layer must output a tensor of shape (N, C, ...), got "
                         f"{tuple(activation.shape) if isinstance(activation, torch.Tensor) else type(activation)}")
    if channel is None:
        return activation.pow(2).flatten(1).mean(1)
    if isinstance(channel, bool) or not (isinstance(channel, int) and 0 <= channel < activation.shape[1]):
        raise ValueError(f"channel must be an int in [0, {activation.shape[1] - 1}] for this layer "
                         f"({activation.shape[1]} channels), got {channel!r}")
    return activation[:, channel].reshape(len(activation), -1).mean(1)


def _layer_output(cap, x: torch.Tensor, name: str, dtype: torch.dtype) -> torch.Tensor:
    """The output of layer ``name`` for ``x``, which the model sees as a copy in ``dtype`` (its own)."""
    out = cap(x.to(dtype=dtype, copy=True)).get(name)
    if out is None:
        raise RuntimeError(f"layer {name!r} did not run in the model's forward pass")
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"layer {name!r} outputs a {type(out).__name__}, not a tensor; choose another layer")
    return out


def _ascent_step(x, score_fn, lr, jitter, generator):
    """One jittered, normalized gradient-ascent step on ``score_fn(x)`` (N,) -> new x in [0, 1].

    The clamp comes after the step and is not part of the graph, so a pixel at 0 or 1 keeps its gradient and moves
    as soon as the gradient points into the range."""
    if jitter:
        where = _random_generator(generator)
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator, device=where))
    else:
        dy = dx = 0
    shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3)).detach().requires_grad_(True)
    score = score_fn(shifted)
    grad = torch.autograd.grad(score.sum(), shifted)[0].to(x.dtype)
    grad = torch.roll(grad, shifts=(-dy, -dx), dims=(2, 3))
    scale = grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (x + lr * grad / scale).clamp(0, 1).detach()


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _working_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype of an image being optimized: the widest of ``dtypes``, at least float32 (in bfloat16 a step of
    0.001 at 0.5 would be lost: its spacing there is 0.004)."""
    dtype = torch.float32
    for other in dtypes:
        dtype = torch.promote_types(dtype, other)
    return dtype


def deepdream(model: nn.Module, x: torch.Tensor, *, layer, channel: int | None = None, octaves: int = 4,
              octave_scale: float = 1.4, steps: int = 10, lr: float = 0.01, jitter: int = 32,
              generator: torch.Generator | None = None, progress: bool = True) -> torch.Tensor:
    """DeepDream: amplify what ``layer`` (or one of its channels) sees in the images ``x``.

    Args:
        model: any module taking images in [0, 1] (a classifier or a feature extractor).
        x: images (N, C, H, W) or one (C, H, W), float values in [0, 1].
        layer: a name from ``model.named_modules()`` or the module itself.
        channel: raise the mean activation of this channel only; None raises the layer's mean squared activation.
        octaves: the number of image scales (>= 1); the smallest is ``octave_scale ** (octaves - 1)`` times
            smaller. Scales too small for the model (a forward pass fails) are left out with a warning.
        octave_scale: the size ratio between neighbouring octaves (> 1).
        steps: gradient steps per octave (>= 0).
        lr: the mean absolute change of a pixel per step, in pixel units (> 0).
        jitter: the largest random shift in pixels (0 for none).
        generator: a torch.Generator for the jitter (default: the global generator).
        progress: show a progress bar.

    Returns:
        The dreamed images, same shape, dtype and device as ``x``, values in [0, 1]. :func:`layer_objective` gives
        the quantity that was raised.

    Example:
        >>> import torch, dlviz
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        >>> x = torch.rand(3, 16, 16)
        >>> dreamed = dlviz.deepdream(model, x, layer="1", octaves=2, steps=3, jitter=2, progress=False)
        >>> dreamed.shape, bool(dreamed.min() >= 0 and dreamed.max() <= 1)
        (torch.Size([3, 16, 16]), True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_number(octaves, "octaves", int)
    check_number(steps, "steps", int, allow_zero=True)
    check_number(lr, "lr")
    check_number(jitter, "jitter", int, allow_zero=True)
    if isinstance(octave_scale, bool) or not (isinstance(octave_scale, (int, float)) and octave_scale > 1
                                              and math.isfinite(octave_scale)):
        raise ValueError(f"octave_scale must be a finite number > 1, got {octave_scale!r}")
    name, _ = resolve_layer(model, layer)
    with gradients_on(), preserved(model), capture(model, name, detach=False, stop=True) as cap:
        copy, single = model_input(model, x)
        dtype = copy.dtype
        base = x.detach().reshape(copy.shape).to(device=copy.device, dtype=_working_dtype(x.dtype, dtype), copy=True)

        def score(images):
            return layer_objective(_layer_output(cap, images, name, dtype), channel)

        usable = _usable_sizes(model, base, octaves, octave_scale, score)
        x_out = base
        detail = None
        with progress_bar(len(usable) * steps, "deepdream", progress) as bar:
            for size in reversed(usable):
                octave_base = _resize(base, size)
                detail = torch.zeros_like(octave_base) if detail is None else _resize(detail, size)
                x_out = (octave_base + detail).clamp(0, 1)
                for _ in range(steps):
                    x_out = _ascent_step(x_out, score, lr, jitter, generator)
                    bar.update()
                detail = x_out - octave_base
    return to_caller(x_out, x, single)


def _usable_sizes(model, base, octaves, octave_scale, score) -> list[tuple[int, int]]:
    """The octaves' sizes, largest first, down to the smallest the model can run (with a warning if some are left
    out); an error if the model cannot run on ``base`` itself."""
    height, width = base.shape[-2:]
    sizes = [(max(1, round(height / octave_scale ** i)), max(1, round(width / octave_scale ** i)))
             for i in range(octaves)]
    usable = []
    with torch.no_grad():
        for size in sizes:
            try:
                score(_resize(base[:1], size))
            except (RuntimeError, ValueError) as error:
                if size == sizes[0]:
                    if isinstance(error, ValueError):
                        raise
                    raise ValueError(f"{type(model).__name__} cannot run on images of shape "
                                     f"{tuple(base.shape[1:])}: {error}") from error
                warnings.warn(f"deepdream: the model cannot run at {size} pixels ({error}); "
                              f"using {len(usable)} of {octaves} octaves", stacklevel=3)
                break
            usable.append(size)
    return usable


def _start_noise(n: int, shape, generator, device) -> torch.Tensor:
    """Faint noise around mid-grey (n, C, H, W), float32 on ``device``: where the visualizations start."""
    where = _random_generator(generator)
    return (0.5 + 0.1 * (torch.rand((n, *shape), generator=generator, device=where) - 0.5)).to(device)


def _visualize(model, score, n, shape, steps, lr, l2, jitter, blur_every, blur_sigma, generator, progress, desc):
    from torchvision.transforms.functional import gaussian_blur

    check_number(steps, "steps", int, allow_zero=True)
    check_number(lr, "lr")
    check_number(l2, "l2", allow_zero=True)
    check_number(jitter, "jitter", int, allow_zero=True)
    check_number(blur_every, "blur_every", int, allow_zero=True)
    check_number(blur_sigma, "blur_sigma", allow_zero=True)
    if l2 >= 1:
        raise ValueError(f"l2 is the fraction of the distance to mid-grey removed per step, in [0, 1); got {l2}")
    x = _start_noise(n, shape, generator, model_device(model))
    kernel = 2 * math.ceil(2 * blur_sigma) + 1
    with progress_bar(steps, desc, progress) as bar:
        for step in range(steps):
            x = _ascent_step(x, score, lr, jitter, generator)
            x = 0.5 + (1 - l2) * (x - 0.5)  # L2 decay towards mid-grey (the zero of a centred image)
            if blur_every and blur_sigma > 0 and (step + 1) % blur_every == 0 and step + 1 < steps:
                x = gaussian_blur(x, [kernel, kernel], [blur_sigma, blur_sigma])
            bar.update()
    return x.clamp(0, 1).detach()


def class_visualization(model: nn.Module, target, *, shape=None, steps: int = 200, lr: float = 0.02,
                        l2: float = 0.01, jitter: int = 2, blur_every: int = 4, blur_sigma: float = 0.5,
                        generator: torch.Generator | None = None, output=None,
                        progress: bool = True) -> torch.Tensor:
    """An image that the model scores highly for each class in ``target`` (Simonyan et al. 2014), from faint noise.

    It raises the class's raw score (the logit, not the softmax probability, which could also rise by lowering the
    other classes) with normalized gradient steps, jitter, L2 decay towards grey and a periodic Gaussian blur.

    Args:
        model: a classifier taking images in [0, 1] and returning class scores (N, classes).
        target: a class index or a sequence of them; one image each.
        shape: the image shape (C, H, W), positive ints; None reads ``model.input_shape`` or tries MNIST, CIFAR and
            ImageNet shapes with the channel count of the model's first convolution.
        steps: gradient steps (>= 0).
        lr: the mean absolute change of a pixel per step (> 0).
        l2: the fraction of each pixel's distance to mid-grey removed after every step, in [0, 1) (0 for none).
        jitter: the largest random shift in pixels (0 for none).
        blur_every: blur every this many steps (0 for never).
        blur_sigma: the blur's standard deviation in pixels (0 for none).
        generator: a torch.Generator for the noise and the jitter.
        output: how to get the class scores (N, classes) from what the model returns, when that is not a tensor:
            an int indexes a tuple, a str is a dict key or attribute, a callable maps the output to the scores.
        progress: show a progress bar.

    Returns:
        Images (N, C, H, W), float32 on the model's device, in [0, 1], one per target (a single int target also
        gives a batch of one).

    Example:
        >>> import torch, dlviz
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> images = dlviz.synthesis.dream.class_visualization(model, [1, 3], shape=(3, 8, 8), steps=5, progress=False)
        >>> images.shape, images.dtype
        (torch.Size([2, 3, 8, 8]), torch.float32)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    with gradients_on(), preserved(model):
        shape = input_shape(model, shape, output=output)
        device, dtype = model_device(model), model_dtype(model)

        def scores(x):
            return class_scores(model, x, output, dtype=dtype)

        with torch.no_grad():
            classes = scores(torch.zeros(1, *shape, device=device)).shape[1]
        n = torch.as_tensor(target).numel()
        labels = check_targets(target, n, classes).to(device)

        def score(x):
            return scores(x).gather(1, labels[:, None])[:, 0]

        return _visualize(model, score, n, shape, steps, lr, l2, jitter, blur_every, blur_sigma, generator, progress,
                          "class visualization")


def feature_visualization(model: nn.Module, *, layer, channel: int | list[int], shape=None, steps: int = 200,
                          lr: float = 0.02, l2: float = 0.01, jitter: int = 2, blur_every: int = 4,
                          blur_sigma: float = 0.5, generator: torch.Generator | None = None,
                          progress: bool = True) -> torch.Tensor:
    """An image that raises the mean activation of ``channel`` of ``layer`` (one image per channel if a list),
    from faint noise, with the same regularizers as :func:`class_visualization`.

    Args:
        model: a module taking images in [0, 1] (a classifier or a feature extractor).
        layer: a name from ``model.named_modules()`` or the module itself.
        channel: a channel index (a unit for a linear layer) or a non-empty list of them.
        shape: the image shape (C, H, W), positive ints; None reads ``model.input_shape`` or probes the model.
        steps, lr, l2, jitter, blur_every, blur_sigma, generator, progress: as in :func:`class_visualization`.

    Returns:
        Images (N, C, H, W), float32 on the model's device, in [0, 1], one per channel.

    Example:
        >>> import torch, dlviz
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        >>> images = dlviz.synthesis.dream.feature_visualization(model, layer="0", channel=[0, 2], shape=(3, 8, 8),
        ...                                                        steps=5, progress=False)
        >>> images.shape, bool(images.min() >= 0 and images.max() <= 1)
        (torch.Size([2, 3, 8, 8]), True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    channels = [channel] if isinstance(channel, int) and not isinstance(channel, bool) else channel
    try:
        channels = list(channels)
    except TypeError:
        channels = []
    if not channels or not all(isinstance(c, int) and not isinstance(c, bool) for c in channels):
        raise ValueError(f"channel must be an int or a non-empty list of ints, got {channel!r}")
    name, _ = resolve_layer(model, layer)
    with gradients_on(), preserved(model):
        shape = input_shape(model, shape, scores=False)
        device, dtype = model_device(model), model_dtype(model)
        with capture(model, name, detach=False, stop=True) as cap:
            with torch.no_grad():
                probe = _layer_output(cap, torch.zeros(1, *shape, device=device), name, dtype)
            for c in channels:
                layer_objective(probe, c)  # checks the index
            index = torch.tensor(channels, device=device)

            def score(x):
                out = _layer_output(cap, x, name, dtype)
                picked = out[torch.arange(len(x), device=out.device), index.to(out.device)]
                return picked.reshape(len(x), -1).mean(1)

            return _visualize(model, score, len(channels), shape, steps, lr, l2, jitter, blur_every, blur_sigma,
                              generator, progress, "feature visualization")
