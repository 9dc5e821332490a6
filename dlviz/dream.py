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

Images are float tensors in [0, 1], (N, C, H, W) or one (C, H, W), returned in the same form on the input's device
(on the model's device when there is no input). The model runs in eval mode with its parameters frozen; its mode,
flags and hooks are restored afterwards and the caller's image is not modified.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._shape import input_shape
from ._validate import as_image_batch, check_number, check_targets, restore_batch
from .hooks import capture, model_device, preserved, resolve_layer

__all__ = ["deepdream", "class_visualization", "feature_visualization", "layer_objective"]


def _random_generator(generator):
    return generator.device if generator is not None else torch.device("cpu")


def layer_objective(activation: torch.Tensor, channel: int | None = None) -> torch.Tensor:
    """What :func:`deepdream` raises, one value per image (N,): the mean squared activation of the whole layer
    (``channel=None``, the "L2" objective of the original DeepDream), or the mean activation of one channel."""
    if not isinstance(activation, torch.Tensor) or activation.dim() < 2:
        raise ValueError("the layer must output a tensor of shape (N, C, ...), got "
                         f"{tuple(activation.shape) if isinstance(activation, torch.Tensor) else type(activation)}")
    if channel is None:
        return activation.pow(2).flatten(1).mean(1)
    if isinstance(channel, bool) or not (isinstance(channel, int) and 0 <= channel < activation.shape[1]):
        raise ValueError(f"channel must be an int in [0, {activation.shape[1] - 1}] for this layer "
                         f"({activation.shape[1]} channels), got {channel!r}")
    return activation[:, channel].reshape(len(activation), -1).mean(1)


def _layer_output(cap, x: torch.Tensor, name: str) -> torch.Tensor:
    out = cap(x).get(name)
    if out is None:
        raise RuntimeError(f"layer {name!r} did not run in the model's forward pass")
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"layer {name!r} outputs a {type(out).__name__}, not a tensor; choose another layer")
    return out


def _ascent_step(x, score_fn, lr, jitter, generator):
    """One jittered, normalized gradient-ascent step on ``score_fn(x)`` (N,) -> new x in [0, 1]."""
    if jitter:
        where = _random_generator(generator)
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator, device=where))
    else:
        dy = dx = 0
    with torch.enable_grad():
        shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3)).detach().requires_grad_(True)
        score = score_fn(shifted)
        grad = torch.autograd.grad(score.sum(), shifted)[0]
    grad = torch.roll(grad, shifts=(-dy, -dx), dims=(2, 3))
    scale = grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (x + lr * grad / scale).clamp(0, 1).detach()


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def deepdream(model: nn.Module, image: torch.Tensor, layer, *, channel: int | None = None, octaves: int = 4,
              octave_scale: float = 1.4, steps: int = 10, lr: float = 0.01, jitter: int = 32,
              generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """DeepDream: amplify what ``layer`` (or one of its channels) sees in ``image``.

    Args:
        model: any module taking images in [0, 1] (a classifier or a feature extractor).
        image: (N, C, H, W) or (C, H, W), values in [0, 1].
        layer: a name from ``model.named_modules()`` or the module itself.
        channel: raise the mean activation of this channel only; None raises the layer's mean squared activation.
        octaves: the number of image scales; the smallest is ``octave_scale ** (octaves - 1)`` times smaller.
            Scales too small for the model (a forward pass fails) are left out with a warning.
        octave_scale: the size ratio between neighbouring octaves (> 1).
        steps: gradient steps per octave.
        lr: the mean absolute change of a pixel per step, in pixel units.
        jitter: the largest random shift in pixels (0 for none).
        generator: a torch.Generator for the jitter (default: the global generator).
        progress: show a progress bar.

    Returns:
        The dreamed image(s), same shape as ``image``, values in [0, 1]. :func:`layer_objective` gives the quantity
        that was raised.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch, single = as_image_batch(image, "image")
    check_number(octaves, "octaves", int)
    check_number(steps, "steps", int, allow_zero=True)
    check_number(lr, "lr")
    check_number(jitter, "jitter", int, allow_zero=True)
    if not (isinstance(octave_scale, (int, float)) and octave_scale > 1):
        raise ValueError(f"octave_scale must be a number > 1, got {octave_scale!r}")
    name, _ = resolve_layer(model, layer)
    device = model_device(model)
    with preserved(model), capture(model, name, detach=False, stop=True) as cap:
        base = batch.detach().clone().to(device)
        height, width = base.shape[-2:]
        sizes = [(max(1, round(height / octave_scale ** i)), max(1, round(width / octave_scale ** i)))
                 for i in range(octaves)]
        usable = []
        with torch.no_grad():
            for size in sizes:
                try:
                    layer_objective(_layer_output(cap, _resize(base[:1], size), name), channel)
                    usable.append(size)
                except (RuntimeError, ValueError) as error:
                    if size == sizes[0]:
                        if isinstance(error, ValueError):
                            raise
                        raise ValueError(f"{type(model).__name__} cannot run on images of shape "
                                         f"{tuple(base.shape[1:])}: {error}") from error
                    first_error = error
                    break
        if len(usable) < len(sizes):
            warnings.warn(f"deepdream: the model cannot run at {sizes[len(usable)]} pixels ({first_error}); "
                          f"using {len(usable)} of {octaves} octaves", stacklevel=2)

        def score(x):
            return layer_objective(_layer_output(cap, x, name), channel)

        x = base
        detail = None
        bar = tqdm(total=len(usable) * steps, desc="deepdream", disable=not progress, leave=False)
        for size in reversed(usable):
            octave_base = _resize(base, size)
            detail = torch.zeros_like(octave_base) if detail is None else _resize(detail, size)
            x = (octave_base + detail).clamp(0, 1)
            for _ in range(steps):
                x = _ascent_step(x, score, lr, jitter, generator)
                bar.update()
            detail = x - octave_base
        bar.close()
    return restore_batch(x.to(batch.device), single)


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
    device = model_device(model)
    where = _random_generator(generator)
    x = (0.5 + 0.1 * (torch.rand((n, *shape), generator=generator, device=where) - 0.5)).to(device)
    kernel = 2 * math.ceil(2 * blur_sigma) + 1
    for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        x = _ascent_step(x, score, lr, jitter, generator)
        x = 0.5 + (1 - l2) * (x - 0.5)  # L2 decay towards mid-grey (the zero of a centred image)
        if blur_every and blur_sigma > 0 and (step + 1) % blur_every == 0 and step + 1 < steps:
            x = gaussian_blur(x, [kernel, kernel], [blur_sigma, blur_sigma])
    return x.clamp(0, 1).detach()


def class_visualization(model: nn.Module, target, *, shape=None, steps: int = 200, lr: float = 0.02,
                        l2: float = 0.01, jitter: int = 2, blur_every: int = 4, blur_sigma: float = 0.5,
                        generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """An image that the model scores highly for each class in ``target`` (Simonyan et al. 2014), from faint noise.

    It raises the class's raw score (the logit, not the softmax probability, which could also rise by lowering the
    other classes) with normalized gradient steps, jitter, L2 decay towards grey and a periodic Gaussian blur.

    Args:
        model: a classifier taking images in [0, 1] and returning logits (N, classes).
        target: a class index or a sequence of them; one image each.
        shape: the image shape (C, H, W); None reads ``model.input_shape`` or tries MNIST, CIFAR and ImageNet.
        steps: gradient steps.
        lr: the mean absolute change of a pixel per step.
        l2: the fraction of each pixel's distance to mid-grey removed after every step (0 for none).
        jitter: the largest random shift in pixels; blur_every, blur_sigma: blur every this many steps with this
            standard deviation (in pixels; 0 for none).
        generator: a torch.Generator for the noise and the jitter.

    Returns:
        Images (N, C, H, W) in [0, 1], one per target (a single int target also gives a batch of one).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    with preserved(model):
        shape = input_shape(model, shape)
        with torch.no_grad():
            classes = model(torch.zeros(1, *shape, device=model_device(model))).shape[1]
        n = torch.as_tensor(target).numel()
        labels = check_targets(target, n, classes).to(model_device(model))

        def score(x):
            return model(x).gather(1, labels[:, None])[:, 0]

        return _visualize(model, score, n, shape, steps, lr, l2, jitter, blur_every, blur_sigma, generator, progress,
                          "class visualization")


def feature_visualization(model: nn.Module, layer, channel: int | list[int], *, shape=None, steps: int = 200,
                          lr: float = 0.02, l2: float = 0.01, jitter: int = 2, blur_every: int = 4,
                          blur_sigma: float = 0.5, generator: torch.Generator | None = None,
                          progress: bool = False) -> torch.Tensor:
    """An image that raises the mean activation of ``channel`` of ``layer`` (one image per channel if a list),
    from faint noise, with the same regularizers as :func:`class_visualization`.

    Args:
        model: a module taking images in [0, 1]; layer: a name from ``model.named_modules()`` or the module.
        channel: a channel index (a unit for a linear layer) or a list of them.
        Other arguments as in :func:`class_visualization`.

    Returns:
        Images (N, C, H, W) in [0, 1], one per channel.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    channels = [channel] if isinstance(channel, int) else list(channel)
    if not channels or not all(isinstance(c, int) and not isinstance(c, bool) for c in channels):
        raise ValueError(f"channel must be an int or a non-empty list of ints, got {channel!r}")
    name, _ = resolve_layer(model, layer)
    with preserved(model):
        shape = input_shape(model, shape)
    with preserved(model), capture(model, name, detach=False, stop=True) as cap:
        with torch.no_grad():
            probe = _layer_output(cap, torch.zeros(1, *shape, device=model_device(model)), name)
        for c in channels:
            layer_objective(probe, c)  # checks the index
        index = torch.tensor(channels, device=model_device(model))

        def score(x):
            out = _layer_output(cap, x, name)
            picked = out[torch.arange(len(x), device=out.device), index]
            return picked.reshape(len(x), -1).mean(1)

        return _visualize(model, score, len(channels), shape, steps, lr, l2, jitter, blur_every, blur_sigma,
                          generator, progress, "feature visualization")
