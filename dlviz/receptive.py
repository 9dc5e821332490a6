"""The receptive field of a unit: the input pixels that can change its value.

Found from the network itself rather than from a table of kernel sizes and strides, so it works for any
architecture (branches, padding, pooling): in a copy of the forward pass where every ReLU passes its gradient and
every max-pool spreads it over its whole window (as an average-pool of the same geometry would), the network
between the input and the layer is affine, and the unit's gradient with respect to the input is non-zero exactly
on the pixels connected to it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .hooks import capture, model_device, preserved, relu_backward, resolve_layer

__all__ = ["receptive_field"]


class _PoolsAsAverages(TorchFunctionMode):
    """Max-pools computed as average-pools of the same geometry, so gradients reach every pixel of a window."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (F.max_pool2d, torch.max_pool2d) and not kwargs.get("return_indices", False):
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
            params = dict(zip(names, args[1:]))
            params.update({k: v for k, v in kwargs.items() if k in names})
            dilation = params.pop("dilation", 1)
            if dilation in (1, (1, 1), [1, 1]):
                if params.get("stride") in (None, [], ()):
                    params["stride"] = params["kernel_size"]
                return F.avg_pool2d(args[0], **params)
        if func is F.adaptive_max_pool2d and not kwargs.get("return_indices", False):
            return F.adaptive_avg_pool2d(args[0], args[1] if len(args) > 1 else kwargs["output_size"])
        return func(*args, **kwargs)


def receptive_field(model: nn.Module, layer, image_shape, positions=None) -> torch.Tensor:
    """Boxes ``(top, left, bottom, right)`` (bottom/right exclusive, clipped to the image) of the input pixels
    that units of ``layer`` see.

    Args:
        model: the network; ``layer`` one of its modules (or its ``named_modules()`` name).
        image_shape: (C, H, W) of the input images.
        positions: (P, 2) int tensor of (row, col) positions in the layer's output map; ``None`` for the centre.
            Ignored (the whole image) for layers whose output has no spatial dimensions.

    Returns an int64 tensor (P, 4) (or (4,) for ``positions=None``).
    """
    name, _ = resolve_layer(model, layer)
    channels, height, width = image_shape
    single = positions is None
    device = model_device(model)
    with preserved(model), torch.enable_grad():
        act, probe = _linearized(model, name, torch.zeros(1, channels, height, width, device=device))
        if act.dim() < 4:  # no spatial map: every pixel can matter
            count = 1 if single else len(positions)
            boxes = torch.tensor([[0, 0, height, width]] * count)
            return boxes[0] if single else boxes
        if single:
            positions = torch.tensor([[act.shape[2] // 2, act.shape[3] // 2]])
        positions = torch.as_tensor(positions).long().reshape(-1, 2).tolist()
        boxes = []
        for start in range(0, len(positions), _CHUNK):
            part = positions[start:start + _CHUNK]
            act, probe = _linearized(model, name, torch.zeros(len(part), channels, height, width, device=device))
            rows, cols = zip(*part)
            picked = act[torch.arange(len(part)), :, torch.tensor(rows), torch.tensor(cols)]  # (p, C')
            (grad,) = torch.autograd.grad(picked.sum(), probe)
            boxes.extend(_bounding_box(g.abs().sum(0) > 0) for g in grad)
    boxes = torch.tensor(boxes, dtype=torch.long)
    return boxes[0] if single else boxes


_CHUNK = 32


def _linearized(model: nn.Module, name: str, probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output for ``probe`` in the linearized forward pass, and the probe (requiring grad)."""
    probe.requires_grad_(True)
    with relu_backward("identity"), _PoolsAsAverages(), capture(model, name, detach=False, stop=True) as cap:
        act = cap(probe).get(name)
    if not isinstance(act, torch.Tensor):
        raise ValueError(f"layer {name!r} did not output a tensor in {type(model).__name__}'s forward pass")
    return act, probe


def _bounding_box(support: torch.Tensor) -> list[int]:
    rows = torch.nonzero(support.any(1))[:, 0]
    cols = torch.nonzero(support.any(0))[:, 0]
    if len(rows) == 0:
        return [0, 0, 0, 0]
    return [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]
