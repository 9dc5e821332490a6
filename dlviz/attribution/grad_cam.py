"""Grad-CAM (Selvaraju et al. 2017): where in the image a convolutional layer saw evidence for a class.

Each channel of the layer's output (N, C, h, w) is weighted by the spatial mean of the target score's gradient
with respect to it; the weighted sum over channels, with negative values set to 0, is a coarse (h, w) map, by
default upsampled bilinearly to the image's size. At ``upsample=False`` it equals Captum's
``LayerGradCam(model, layer).attribute(x, target, relu_attributions=True)``.

The layer must run once per forward pass: a module called several times (torchvision's ResNet blocks share one
``relu`` module) has no single output to weigh, and is refused with an error naming a layer to use instead.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .._model import class_scores, gradients_on, model_input, pick_targets, preserved, to_caller
from ..hooks import resolve_layer, single_output

__all__ = ["grad_cam"]


def grad_cam(model: nn.Module, x: torch.Tensor, target, *, layer, upsample: bool = True,
             output=None) -> torch.Tensor:
    """Grad-CAM: ``ReLU(sum over channels c of w_c A_c)`` with ``A`` the layer's output and ``w_c`` the spatial mean
    of the target score's gradient with respect to ``A_c``.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] (normalization inside the model, e.g. with
            :func:`dlviz.normalized`); it runs in eval mode, and its modes, flags and hooks are as before afterwards.
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1]; never modified.
        target: the class to explain: an int, or one int per image.
        layer: a name from ``model.named_modules()`` (``"layer4"``, ``"features.12"``) or a module of ``model``; it
            must output (N, C, h, w) feature maps and run once per forward pass. The last convolutional block is
            the usual choice: its maps are the most class-specific.
        upsample: resize the map bilinearly (``align_corners=False``) to the images' (H, W) (default); ``False``
            returns the layer's (h, w) map.
        output: how to get the class scores (N, classes) from what the model returns when that is not a tensor: an
            int indexes a tuple (``output=0``), a str is a dict key or an attribute (``output="logits"``), a callable
            maps the output to the scores; None (default) expects a tensor.

    Returns:
        Non-negative maps (N, 1, H, W) (or (N, 1, h, w) with ``upsample=False``); (1, H, W) for a single (C, H, W)
        image. In ``x``'s dtype and on ``x``'s device.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.attribution.grad_cam import grad_cam
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2))
        >>> x = torch.rand(2, 3, 8, 8)
        >>> grad_cam(model, x, 1, layer="1").shape  # the ReLU after the convolution
        torch.Size([2, 1, 8, 8])
        >>> grad_cam(model, x[0], 1, layer=model[1], upsample=False).shape
        torch.Size([1, 8, 8])
    """
    if not isinstance(upsample, bool):
        raise TypeError(f"upsample must be True or False, got {upsample!r}")
    name, module = resolve_layer(model, layer)
    with gradients_on():
        batch, single = model_input(model, x)
        with preserved(model), _layer_output(module) as seen:
            scores = class_scores(model, batch, output)
        activation = single_output(seen, name, batch.shape[0], dim=4, floating=True, who="Grad-CAM",
                                   expected="feature maps (N, C, h, w)", hint=". Pick a convolutional layer or block")
        (grad,) = torch.autograd.grad(pick_targets(scores, target).sum(), activation, allow_unused=True)
        cam = _weighted_maps(activation.detach(), grad)
        if upsample:
            cam = F.interpolate(cam, size=batch.shape[-2:], mode="bilinear", align_corners=False)
    return to_caller(cam, x, single)


def _weighted_maps(activation: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    """ReLU of the channel maps weighted by their mean gradients: (N, 1, h, w)."""
    if grad is None:  # the score does not depend on this layer
        return torch.zeros_like(activation[:, :1])
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activation).sum(dim=1, keepdim=True))


@contextlib.contextmanager
def _layer_output(module: nn.Module):
    """Record the output of each call of ``module`` during the block, and hand the rest of the network a copy.

    The copy keeps the recorded tensor out of reach of a later in-place operation (``ReLU(inplace=True)`` right
    after a convolution), so the gradient with respect to it is the gradient with respect to the layer's output.
    Yields the list of recorded outputs; the hook is removed when the block ends, also on error.
    """
    seen = []

    def hook(mod, inputs, out):
        if not isinstance(out, torch.Tensor):
            seen.append(out)
            return out
        if not out.requires_grad:  # nothing before the layer needs a gradient (its first layer, frozen weights)
            out = out.detach().requires_grad_(out.is_floating_point())
        seen.append(out)
        return out.clone()

    handle = module.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()
