"""How big and how costly a network is: its parameters and its multiply-adds per example.

A *multiply-add* (MAC) is one product added to a running sum, ``s += w * x``: the unit in which papers from AlexNet
to ResNet state a network's cost. :func:`multiply_adds` counts them by running the model once on an example batch
with forward hooks on its convolutions and linear layers, so branches, skip connections, layers used twice and the
actual sizes of the feature maps are all accounted for without a table of shapes:

* a convolution does ``(in_channels / groups) x kernel area`` multiply-adds per output value;
* a transposed convolution does ``(out_channels / groups) x kernel area`` per *input* value;
* a linear layer does ``in_features`` per output value.

Biases, activations, normalization, pooling and additions are not counted (they cost one operation per value,
not one per weight, and papers leave them out too). :func:`count_parameters` counts the numbers the optimizer
learns.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from ._model import model_device, model_dtype, preserved

__all__ = ["multiply_adds", "count_parameters", "MultiplyAddsInfo"]


@dataclasses.dataclass(frozen=True)
class MultiplyAddsInfo:
    """What :func:`multiply_adds` measured, layer by layer.

    ``by_layer`` maps each counted layer's ``named_modules()`` name to its multiply-adds per example (summed over
    its calls when the forward pass uses it more than once), in the order the layers first ran; ``shapes`` maps
    it to the output shape of its last call, batch dimension included; ``examples`` is the batch size the counts
    were divided by.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.complexity import multiply_adds
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
        >>> total, info = multiply_adds(net, torch.rand(2, 1, 8, 8), return_info=True)
        >>> info.by_layer, info.examples
        ({'0': 1296, '2': 1440}, 2)
    """
    by_layer: dict[str, int]
    shapes: dict[str, tuple[int, ...]]
    examples: int


def _per_output(module: nn.Module) -> int | None:
    """Multiply-adds per output value (convolutions, linear) or per input value (transposed convolutions)."""
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return module.out_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.in_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return module.in_features
    return None


def _check_batch(x) -> tuple[torch.Tensor, int]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor: an example batch whose first dimension is N, such as (N, C, H, "
                        f"W) images or (N, features) vectors; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}; convert uint8 images with "
                        f"x.float() / 255")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N, ...), such as (N, C, H, W) images or (N, features) vectors: one "
                         f"image (C, H, W) is x[None]; got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)})")
    if not torch.isfinite(x.detach()).all():
        raise ValueError("x contains NaN or infinite values")
    return x.detach(), x.shape[0]


def multiply_adds(model: nn.Module, x: torch.Tensor, *, return_info: bool = False):
    """The multiply-adds ``model`` does per example, counted on one forward pass over ``x``.

    Counts every call of every convolution (any dimension, grouped, strided, dilated, transposed) and linear
    layer reached by the forward pass; see the module's description for the rule. The model runs in eval mode
    without gradients; its modes, ``requires_grad`` flags and hooks are as before afterwards, also when it raises.

    Args:
        model: any ``nn.Module``.
        x: an example batch whose first dimension is N: (N, C, H, W) images (one image is ``x[None]``), (N, C, L)
            sequences, (N, features) vectors. Its values need not be in [0, 1]: only the shapes matter. Not
            modified.
        return_info: also return a :class:`MultiplyAddsInfo` with the count of every layer.

    Returns:
        The multiply-adds per example (an int; the batch's total divided by N), or ``(int, MultiplyAddsInfo)``.

    Raises:
        TypeError / ValueError: ``x`` not a finite floating-point tensor with a batch dimension.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.complexity import multiply_adds
        >>> conv = nn.Conv2d(3, 8, 5)                 # 8 x 24 x 24 outputs, each 3 x 5 x 5 = 75 multiply-adds
        >>> multiply_adds(conv, torch.rand(1, 3, 28, 28)) == 8 * 24 * 24 * 75
        True
        >>> multiply_adds(nn.Linear(784, 10), torch.rand(4, 784))    # per example, not per batch
        7840
    """
    batch, examples = _check_batch(x)
    counted = {name: (module, per) for name, module in model.named_modules()
               if (per := _per_output(module)) is not None}
    by_layer: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}

    def make_hook(name, module, per):
        transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)

        def hook(_module, inputs, output):
            values = inputs[0].numel() if transposed else output.numel()
            by_layer[name] = by_layer.get(name, 0) + values * per
            shapes[name] = tuple(output.shape)
        return hook

    handles = []
    try:
        with preserved(model), torch.no_grad():
            for name, (module, per) in counted.items():
                handles.append(module.register_forward_hook(make_hook(name, module, per)))
            model(batch.to(device=model_device(model), dtype=model_dtype(model), copy=True))
    finally:
        for handle in handles:
            handle.remove()
    per_example = {name: count // examples for name, count in by_layer.items()}
    total = sum(per_example.values())
    if return_info:
        return total, MultiplyAddsInfo(per_example, shapes, examples)
    return total


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """The number of parameters (weights and biases) of ``model``, each shared tensor counted once.

    Args:
        model: any ``nn.Module``.
        trainable_only: count only the parameters with ``requires_grad`` (leave out frozen layers).

    Example:
        >>> from torch import nn
        >>> from dlviz.complexity import count_parameters
        >>> net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.Conv2d(20, 50, 5))
        >>> count_parameters(net)                  # (25 + 1) x 20 + (20 x 25 + 1) x 50
        25570
        >>> net[0].requires_grad_(False)
        Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))
        >>> count_parameters(net, trainable_only=True)
        25050
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
