"""The input shape of an image model, for the tools that start from noise instead of a given image."""
from __future__ import annotations

import torch
from torch import nn

from .hooks import model_device, preserved

__all__ = ["input_shape"]

_CANDIDATES = ((1, 28, 28), (3, 32, 32), (3, 224, 224))


def input_shape(model: nn.Module, shape=None) -> tuple[int, int, int]:
    """``shape`` as a checked (C, H, W) tuple; if None, the model's ``input_shape`` attribute, else the first of
    (1, 28, 28), (3, 32, 32), (3, 224, 224) that the model accepts and answers with scores of shape (1, classes)."""
    if shape is not None:
        shape = tuple(shape)
        if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            raise ValueError(f"shape must be (C, H, W) with positive ints, got {shape!r}")
        return shape
    declared = getattr(model, "input_shape", None)
    if declared is not None:
        return input_shape(model, tuple(declared)[-3:])
    with preserved(model), torch.no_grad():
        for candidate in _CANDIDATES:
            try:
                out = model(torch.zeros(1, *candidate, device=model_device(model)))
            except (RuntimeError, ValueError):
                continue
            if isinstance(out, torch.Tensor) and out.dim() == 2:
                return candidate
    raise ValueError(f"could not tell which images {type(model).__name__} takes (tried "
                     f"{', '.join(map(str, _CANDIDATES))}); pass shape=(C, H, W)")
