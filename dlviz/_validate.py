"""Checks on the arguments every dlviz tool shares, with errors that say what was expected."""
from __future__ import annotations

import math
import operator

import torch

__all__ = ["as_image_batch", "restore_batch", "check_targets", "check_number", "as_int", "check_count"]


def as_image_batch(x, name: str = "x", *, check_range: bool = True, channels: tuple[int, ...] | None = None,
                   ) -> tuple[torch.Tensor, bool]:
    """Validate images and return ``(batch, was_single)``: ``batch`` is (N, C, H, W), ``was_single`` says that a
    single (C, H, W) image was given (undo with :func:`restore_batch`). The caller's tensor is never modified:
    the result is a view, so callers that write into it must clone first.

    Raises TypeError for a non-tensor or a non-floating tensor, ValueError for another number of dimensions,
    values outside [0, 1] (when ``check_range``), NaN/inf values, or a channel count not in ``channels``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images, shape (N, C, H, W) or (C, H, W) with values in "
                        f"[0, 1]; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor with values in [0, 1], got dtype {x.dtype}; "
                        f"convert uint8 images with x.float() / 255")
    if x.dim() == 3:
        batch, single = x.unsqueeze(0), True
    elif x.dim() == 4:
        batch, single = x, False
    else:
        raise ValueError(f"{name} must be images of shape (N, C, H, W) or a single (C, H, W) image; "
                         f"got shape {tuple(x.shape)}")
    if batch.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if channels is not None and batch.shape[1] not in channels:
        raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channels, got {batch.shape[1]} "
                         f"(shape {tuple(x.shape)})")
    values = batch.detach()  # checks only: no autograd warnings, nothing recorded on the caller's graph
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if check_range:
        lo, hi = float(values.min()), float(values.max())
        if lo < 0.0 or hi > 1.0:
            # repr, not a rounded format: 1.0000001 must not be reported as "1"
            raise ValueError(f"{name} must have values in [0, 1], got values from {_shortest(lo, x.dtype)} to "
                             f"{_shortest(hi, x.dtype)}. Images are "
                             f"pixels in [0, 1]; a model that expects normalized inputs takes them through "
                             f"dlviz.normalized(model, mean, std). Values just outside the range (rounding after a "
                             f"resize or an interpolation) are fixed with x.clamp(0, 1)")
    return batch, single


def _shortest(value: float, dtype: torch.dtype) -> str:
    """The shortest decimal that reads back as ``value`` in ``dtype`` (float32 1.0000001 stays 1.0000001, not 1)."""
    if dtype == torch.float64:
        return repr(value)
    import numpy as np
    return str(np.float32(value))


def restore_batch(batch: torch.Tensor, single: bool) -> torch.Tensor:
    """Undo :func:`as_image_batch`'s added batch dimension."""
    return batch[0] if single else batch


def check_targets(target, n: int, num_classes: int | None = None, name: str = "target") -> torch.Tensor:
    """An int or one int per image as an int64 tensor of shape (n,); out-of-range classes raise ValueError."""
    t = torch.as_tensor(target)
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: give a class index, or one per image ({n})")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an int class index or one per image, got dtype {t.dtype}")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{name} must be an int or have one entry per image ({n}), got {t.numel()} entries")
    if num_classes is not None and (bool((t < 0).any()) or bool((t >= num_classes).any())):
        raise ValueError(f"{name} must be class indices in [0, {num_classes - 1}], got {t.tolist()}")
    return t.clone()


def check_number(value, name: str, kind=float, allow_zero: bool = False):
    """``value`` if it is a finite positive number (an int when ``kind is int``; zero too when ``allow_zero``),
    else ValueError naming ``name`` and what was expected. Booleans are not numbers here."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        ok = ok and isinstance(value, int)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"{'int' if kind is int else 'number'}, got {value!r}")
    return value


def as_int(value) -> int | None:
    """``value`` as an int when it is an integer -- a Python or NumPy int -- else None (bools and floats, even 4.0,
    are not integers here)."""
    if isinstance(value, (bool, float)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_count(value, name: str, minimum: int = 1, what: str | None = None) -> int:
    """``value`` as an int >= ``minimum`` (NumPy ints accepted), else ValueError saying
    "``name`` must be ``what``" (default: "an int >= minimum")."""
    number = as_int(value)
    if number is None or number < minimum:
        raise ValueError(f"{name} must be {what or f'an int >= {minimum}'}, got {value!r}")
    return number


def check_generator(generator) -> None:
    """``generator`` must be a ``torch.Generator`` or None (the global generator); anything else is a TypeError."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
