"""The receptive field of a unit: the input pixels that can change its value.

Found from the network itself rather than from a table of kernel sizes and strides, so it works for any
architecture (branches, padding, dilation, pooling). The forward pass runs as usual on a probe image, but its
backward pass follows the network's *connections* instead of its derivatives:

* every elementwise activation (ReLU, ReLU6, hardtanh, GELU, LeakyReLU, hardswish, sigmoid...) and batch norm
  passes the gradient unchanged, so an activation that is flat where the probe sits (ReLU6 above 6, hardtanh,
  hardswish below -3) or a batch-norm scale of 0 cannot hide a connection;
* convolutions and linear layers send the gradient back through weights of ones (no cancellation, no zero
  weights) and max-pools spread it over their whole window, with the pool's own padding, dilation and ceil mode;
* after each of these steps only "connected or not" is kept, so the signal neither overflows nor underflows in
  deep networks.

The unit's gradient with respect to the input is then non-zero exactly on the pixels connected to it. Operations
whose gradient selects a single input (``torch.max``, ``topk``, ``sort``...) or vanishes (``round``, ``sign``...),
and TorchScript modules (invisible to the override), make an exact answer impossible: they raise ValueError.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..hooks import capture, resolve_layer
from .._model import model_device, preserved

__all__ = ["receptive_field"]

# functions applied to each element on its own: their structural gradient is the identity
_ELEMENTWISE = {
    F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_,
    F.relu6, F.hardtanh, F.hardtanh_, F.elu, F.elu_, F.selu, F.celu, F.leaky_relu, F.leaky_relu_, F.rrelu,
    F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.softplus, F.softsign, F.tanhshrink, F.softshrink,
    F.hardshrink, F.threshold, F.threshold_, F.logsigmoid, F.prelu, F.sigmoid, F.tanh,
    torch.sigmoid, torch.sigmoid_, torch.Tensor.sigmoid, torch.Tensor.sigmoid_,
    torch.tanh, torch.tanh_, torch.Tensor.tanh, torch.Tensor.tanh_,
    torch.clamp, torch.clamp_, torch.clip, torch.clamp_min, torch.clamp_max,
    torch.Tensor.clamp, torch.Tensor.clamp_, torch.Tensor.clip, torch.Tensor.clip_,
    torch.Tensor.clamp_min, torch.Tensor.clamp_max, torch.abs, torch.Tensor.abs, torch.Tensor.abs_,
    F.batch_norm,  # per channel affine in eval mode; a scale of 0 must not cut the connection
}
_LINEAR = {F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, F.linear}
_MAX_POOLS = {F.max_pool1d: 1, F.max_pool2d: 2, F.max_pool3d: 3}
_ADAPTIVE_MAX_POOLS = {F.adaptive_max_pool1d: F.adaptive_avg_pool1d, F.adaptive_max_pool2d: F.adaptive_avg_pool2d,
                       F.adaptive_max_pool3d: F.adaptive_avg_pool3d}
_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
# functions whose gradient reaches only the selected input, or nothing: no exact answer through them
_NOT_EXACT = {torch.max, torch.min, torch.amax, torch.amin, torch.Tensor.max, torch.Tensor.min, torch.Tensor.amax,
              torch.Tensor.amin, torch.maximum, torch.minimum, torch.fmax, torch.fmin, torch.topk,
              torch.Tensor.topk, torch.sort, torch.Tensor.sort, torch.median, torch.Tensor.median, torch.kthvalue,
              torch.round, torch.Tensor.round, torch.floor, torch.Tensor.floor, torch.ceil, torch.Tensor.ceil,
              torch.sign, torch.Tensor.sign, torch.trunc, torch.Tensor.trunc, torch.where, torch.Tensor.where,
              F.fractional_max_pool2d, F.fractional_max_pool3d, F.max_unpool1d, F.max_unpool2d, F.max_unpool3d}


class _Connections(torch.autograd.Function):
    """Forward: ``compute(x)``, the real value. Backward: 1 on the inputs that ``spread`` connects to an output
    with a non-zero gradient, 0 elsewhere."""

    @staticmethod
    def forward(ctx, x, compute, spread):
        ctx.spread = spread
        return compute(x)

    @staticmethod
    def backward(ctx, grad):
        reached = ctx.spread(grad.detach().abs())
        return (reached != 0).to(grad.dtype), None, None


def _vjp(structural, shape, like: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``grad`` sent back through ``structural`` (a linear map with non-negative weights) to an input of ``shape``."""
    with torch.enable_grad():
        probe = torch.zeros(shape, dtype=like.dtype, device=like.device, requires_grad=True)
        (back,) = torch.autograd.grad(structural(probe), probe, grad)
    return back


def _arg(args, kwargs, index: int, name: str, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _linear_with_ones(func, args, kwargs):
    """The same convolution or linear map with every weight 1 and no bias."""
    weight = _arg(args, kwargs, 1, "weight")
    rest = dict(kwargs)
    rest.pop("weight", None)
    rest.pop("bias", None)
    ones = torch.ones_like(weight)
    return lambda z: func(z, ones, None, *args[3:], **rest)


def _window_sums(dims: int, args, kwargs, out_shape):
    """A max-pool's windows as sums of ones with the pool's geometry (padding, dilation, ceil mode included)."""
    names = ("kernel_size", "stride", "padding", "dilation")
    params = {name: _arg(args, kwargs, i + 1, name) for i, name in enumerate(names)}
    kernel = _per_dim(params["kernel_size"], dims, 1)
    stride = _per_dim(params["stride"], dims, None)
    stride = kernel if None in stride else stride  # PyTorch's default stride is the kernel size
    padding, dilation = _per_dim(params["padding"], dims, 0), _per_dim(params["dilation"], dims, 1)
    out_size = out_shape[-dims:]

    def sums(z):
        lead = z.shape[:-dims]
        flat = z.reshape(-1, 1, *z.shape[-dims:])
        pads = []
        for size, k, s, p, d, o in reversed(list(zip(z.shape[-dims:], kernel, stride, padding, dilation, out_size))):
            needed = (o - 1) * s + d * (k - 1) + 1  # ceil mode may need more room on the far side
            pads += [p, max(p, needed - size - p)]
        flat = F.pad(flat, pads)
        ones = torch.ones(1, 1, *kernel, dtype=z.dtype, device=z.device)
        windows = _CONVS[dims](flat, ones, stride=stride, dilation=dilation)
        windows = windows[(..., *(slice(0, o) for o in out_size))]
        return windows.reshape(*lead, *out_size)
    return sums


def _per_dim(value, dims: int, default) -> tuple:
    """A pool parameter (int, tuple, or None / empty for the default) as one value per spatial dimension."""
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        return (default,) * dims
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


class _ConnectionsMode(TorchFunctionMode):
    """Inside the block, the backward pass follows connections (see the module's description)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _NOT_EXACT:
            if _depends_on_probe(args, kwargs):
                name = getattr(func, "__qualname__", getattr(func, "__name__", repr(func)))
                raise ValueError(f"receptive_field cannot be exact for a network that calls {name} on its "
                                 f"activations: its gradient reaches only the selected input (or none), so "
                                 f"connected pixels would be missed")
            return func(*args, **kwargs)
        x = _arg(args, kwargs, 0, "input")
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return func(*args, **kwargs)
        if func in _ELEMENTWISE:
            inplace_free = lambda z: func(z.clone(), *args[1:], **kwargs)  # noqa: E731 (the caller's x is kept)
            return _Connections.apply(x, inplace_free, lambda g: g)
        if func in _LINEAR:
            compute = lambda z: func(z, *args[1:], **kwargs)  # noqa: E731
            structural = _linear_with_ones(func, args, kwargs)
            return _Connections.apply(x, compute, lambda g: _vjp(structural, x.shape, x, g))
        if func in _MAX_POOLS:
            return self._max_pool(func, x, args, kwargs)
        if func in _ADAPTIVE_MAX_POOLS:
            size = _arg(args, kwargs, 1, "output_size")
            average = _ADAPTIVE_MAX_POOLS[func]
            values = _Connections.apply(x, lambda z: func(z, size), lambda g: _vjp(lambda z: average(z, size),
                                                                                      x.shape, x, g))
            if _arg(args, kwargs, 2, "return_indices", False):
                return values, func(x.detach(), size, return_indices=True)[1]
            return values
        return func(*args, **kwargs)

    @staticmethod
    def _max_pool(func, x, args, kwargs):
        plain = {k: v for k, v in kwargs.items() if k != "return_indices"}
        with_indices = bool(_arg(args, kwargs, 6, "return_indices", False))
        positional = args[1:6]
        compute = lambda z: func(z, *positional, **plain)  # noqa: E731
        out = compute(x.detach())
        sums = _window_sums(_MAX_POOLS[func], args, kwargs, out.shape)
        values = _Connections.apply(x, compute, lambda g: _vjp(sums, x.shape, x, g))
        if with_indices:
            return values, func(x.detach(), *positional, **plain, return_indices=True)[1]
        return values


def _depends_on_probe(args, kwargs) -> bool:
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    tensors += [t for a in args if isinstance(a, (tuple, list)) for t in a if isinstance(t, torch.Tensor)]
    return any(t.requires_grad for t in tensors)


def receptive_field(model: nn.Module, image_shape, *, layer, positions=None) -> torch.Tensor:
    """Boxes ``(top, left, bottom, right)`` (bottom/right exclusive, clipped to the image) around the input pixels
    that units of ``layer`` are connected to.

    Exact for any stack of convolutions (strided, dilated, padded, grouped), pools (max-pools with any padding,
    dilation and ceil mode; average and adaptive pools), elementwise activations (including ReLU6, hardtanh and
    others flat at some inputs), batch norm, branches and skip connections; a network whose path to the layer
    cannot be followed exactly raises ValueError (see the module's description). A box is never empty.

    Args:
        model: the network; ``layer`` is one of its modules or its ``named_modules()`` name.
        image_shape: (C, H, W) of the input images.
        layer: a name from ``model.named_modules()`` or a module of ``model`` (keyword-only).
        positions: (P, 2) ints (tensor or nested list) of (row, col) positions in the layer's output map, each
            in range; ``None`` for the map's centre. Ignored (the whole image) for layers whose output has no
            spatial dimensions.

    Returns:
        An int64 tensor (P, 4), or (4,) for ``positions=None``; ``0 <= top < bottom <= H`` and
        ``0 <= left < right <= W``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.attribution.receptive_field import receptive_field
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU6(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3))
        >>> receptive_field(net, (1, 16, 16), layer="3").tolist()         # 3x3 conv, 2x2 pool, 3x3 conv: 8 pixels
        [4, 4, 12, 12]
        >>> receptive_field(net, (1, 16, 16), layer="0", positions=[[0, 0], [13, 13]]).tolist()
        [[0, 0, 3, 3], [13, 13, 16, 16]]
    """
    name, _ = resolve_layer(model, layer)
    channels, height, width = _image_shape(image_shape)
    _refuse_script_modules(model)
    single = positions is None
    device = model_device(model)
    with preserved(model), torch.inference_mode(False), torch.enable_grad():
        act, probe = _connected(model, name, _probe(model, 1, channels, height, width, device))
        if act.dim() < 4:  # no spatial map: every pixel can matter
            count = 1 if single else len(_positions(positions, None))
            boxes = torch.tensor([[0, 0, height, width]] * count)
            return boxes[0] if single else boxes
        if single:
            positions = [[act.shape[2] // 2, act.shape[3] // 2]]
        positions = _positions(positions, tuple(act.shape[2:4]))
        boxes = []
        for start in range(0, len(positions), _CHUNK):
            part = positions[start:start + _CHUNK]
            act, probe = _connected(model, name, _probe(model, len(part), channels, height, width, device))
            rows, cols = zip(*part)
            picked = act[torch.arange(len(part)), :, torch.tensor(rows), torch.tensor(cols)]  # (p, C')
            grad = None
            if picked.requires_grad:  # else the layer does not depend on the image at all
                (grad,) = torch.autograd.grad(picked.sum(), probe, allow_unused=True)
            if grad is None:
                grad = torch.zeros_like(probe)
            boxes.extend(_bounding_box(g.ne(0).any(0), name, pos) for g, pos in zip(grad, part))
    boxes = torch.tensor(boxes, dtype=torch.long)
    return boxes[0] if single else boxes


_CHUNK = 32


def _image_shape(image_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(operator.index(s) for s in image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (C, H, W) with positive ints, got {image_shape!r}")
    return shape


def _positions(positions, map_size) -> list[list[int]]:
    """Positions as a list of [row, col] ints, checked against the map's size when given."""
    try:
        table = torch.as_tensor(positions)
    except (TypeError, ValueError, RuntimeError):
        table = None
    if table is None or table.is_floating_point() or table.dtype == torch.bool or table.numel() == 0 \
            or table.numel() % 2:
        raise ValueError(f"positions must be (P, 2) int (row, col) pairs, got {positions!r}")
    table = table.long().reshape(-1, 2)
    if map_size is not None:
        rows, cols = map_size
        bad = (table[:, 0] < 0) | (table[:, 0] >= rows) | (table[:, 1] < 0) | (table[:, 1] >= cols)
        if bool(bad.any()):
            raise ValueError(f"positions must lie in the layer's {rows} x {cols} map (rows in [0, {rows - 1}], "
                             f"cols in [0, {cols - 1}]); got {table[bad].tolist()}")
    return table.tolist()


def _refuse_script_modules(model: nn.Module):
    scripted = [name or type(model).__name__ for name, m in model.named_modules()
                if isinstance(m, torch.jit.ScriptModule)]
    if scripted:
        raise ValueError(f"receptive_field cannot be exact for TorchScript modules ({', '.join(scripted[:5])}): "
                         f"their operations are hidden from Python; use the model's ordinary (not scripted) version")


def _probe(model: nn.Module, n: int, channels: int, height: int, width: int, device) -> torch.Tensor:
    """Images in [0, 1] (fixed, not random per call) in the model's dtype: no value sits on a special point."""
    from .._model import model_dtype

    values = torch.rand(n, channels, height, width, generator=torch.Generator().manual_seed(0))
    return values.to(device=device, dtype=model_dtype(model))


def _connected(model: nn.Module, name: str, probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output for ``probe`` in a forward pass whose backward follows connections, and the probe."""
    probe.requires_grad_(True)
    with _ConnectionsMode(), capture(model, name, detach=False, stop=True) as cap:
        act = cap(probe).get(name)
    if not isinstance(act, torch.Tensor):
        raise ValueError(f"layer {name!r} did not output a tensor in {type(model).__name__}'s forward pass")
    return act, probe


def _bounding_box(support: torch.Tensor, name: str, position) -> list[int]:
    rows = torch.nonzero(support.any(1))[:, 0]
    cols = torch.nonzero(support.any(0))[:, 0]
    if len(rows) == 0:
        raise ValueError(f"the unit at {tuple(position)} of layer {name!r} is connected to no input pixel (its "
                         f"value does not depend on the image), so it has no receptive field")
    return [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]

