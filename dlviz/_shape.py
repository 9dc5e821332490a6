"""The input shape of an image model, for the tools that start from noise instead of a given image."""
from __future__ import annotations

import operator

import torch
from torch import nn

from ._model import model_dtype, select_scores
from .hooks import model_device, preserved

__all__ = ["input_shape"]

# the usual image sizes, each with its usual channel count: MNIST, CIFAR, ImageNet
_CANDIDATES = ((1, 28, 28), (3, 32, 32), (3, 224, 224))
_IMAGENET_CLASSES = 1000


def _checked_shape(shape) -> tuple[int, int, int]:
    """``shape`` as a (C, H, W) tuple of positive ints; floats (even ``28.0``) and booleans are rejected."""
    try:
        entries = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be (C, H, W), a tuple of three positive ints, got {shape!r}") from None
    if len(entries) != 3:
        raise ValueError(f"shape must be (C, H, W), a tuple of three positive ints, got {shape!r}")
    checked = []
    for what, entry in zip(("C", "H", "W"), entries):
        try:
            value = None if isinstance(entry, bool) else operator.index(entry)  # ints, numpy ints; no floats
        except TypeError:
            value = None
        if value is None or value <= 0:
            raise ValueError(f"shape must be (C, H, W) with positive ints; {what} is {entry!r} "
                             f"({type(entry).__name__}) in {shape!r}")
        checked.append(value)
    return tuple(checked)


def _first_conv_channels(model: nn.Module) -> int | None:
    """The channel count the model's first 2-D convolution takes (None for a model without one).

    A probe image with another channel count can still run when something before that convolution broadcasts
    (``(x - mean) / std`` with a 3-channel mean turns a grey image into three channels): only the convolution
    says what the model was built for."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return None


def _answers(model: nn.Module, shape, output, scores: bool):
    """The model's class count for one zero image of ``shape`` (0 when ``scores`` is false and the forward ran),
    or None when the model cannot take that shape."""
    probe = torch.zeros(1, *shape, device=model_device(model), dtype=model_dtype(model))
    try:
        out = model(probe)
    except (RuntimeError, ValueError):
        return None
    if not scores:
        return 0
    try:
        return select_scores(out, output, model=model, n=1).shape[1]
    except ValueError:  # a tensor of another shape: not a classifier's answer for this size
        return None


def input_shape(model: nn.Module, shape=None, *, output=None, scores: bool = True) -> tuple[int, int, int]:
    """The (C, H, W) shape of the images ``model`` takes.

    ``shape`` if given (checked: three positive ints); else the model's ``input_shape`` attribute (dlviz's ImageNet
    and zoo models carry one); else found by probing: the usual shapes (1, 28, 28), (3, 32, 32) and
    (3, 224, 224) are tried with a zero image, keeping only those with the channel count of the model's first
    convolution, and the first one the model answers is taken -- (3, 224, 224) rather than (3, 32, 32) when a
    model that takes any size has 1000 classes (ImageNet's).

    Args:
        model: an image model taking (N, C, H, W) images.
        shape: (C, H, W) ints, or None to find it.
        output: how to get the class scores from a non-tensor forward output (see :func:`dlviz._model.select_scores`).
        scores: the answer must be class scores (N, classes); False accepts any output (feature extractors).

    Returns:
        ``(C, H, W)``, a tuple of three positive ints.
    """
    if shape is not None:
        return _checked_shape(shape)
    declared = getattr(model, "input_shape", None)
    if declared is not None:
        return _checked_shape(tuple(declared)[-3:])
    channels = _first_conv_channels(model)
    candidates = _CANDIDATES
    if channels is not None:
        candidates = tuple(c for c in _CANDIDATES if c[0] == channels) or tuple(
            (channels, size, size) for size in (28, 32, 224))
    with preserved(model), torch.no_grad():
        for candidate in candidates:
            classes = _answers(model, candidate, output, scores)
            if classes is None:
                continue
            imagenet = (channels or candidate[0], 224, 224)
            if classes == _IMAGENET_CLASSES and candidate != imagenet and imagenet in candidates:
                if _answers(model, imagenet, output, scores) is not None:
                    return imagenet
            return candidate
    raise ValueError(f"could not tell which images {type(model).__name__} takes (tried "
                     f"{', '.join(map(str, candidates))}); pass shape=(C, H, W), or give the model an "
                     f"input_shape attribute")
