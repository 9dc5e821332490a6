"""Which input pixels a classifier's decision (or one feature map) depends on.

Gradient methods (this module): :func:`saliency`, :func:`guided_backprop`, :func:`deconvnet`.
Perturbation and dataset methods, re-exported here: :func:`~dlviz.occlude.occlusion`,
:func:`~dlviz.top_inputs.top_activations`.

Every result has the shape of the input images and the meaning of the Captum method of the same name, so one
can be checked against the other. Unlike Captum's module hooks, guided backprop and deconvnet here also see
ReLUs called as functions and ReLU modules used several times (see :func:`dlviz.hooks.relu_backward`).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ._validate import as_image_batch, check_targets, restore_batch
from .hooks import capture, model_device, preserved, relu_backward
from .occlude import occlusion
from .top_inputs import top_activations

__all__ = ["saliency", "guided_backprop", "deconvnet", "occlusion", "top_activations"]


def _input_copy(model: nn.Module, x) -> tuple[torch.Tensor, bool]:
    """A fresh leaf copy of the images on the model's device that requires grad; the caller's tensor is untouched."""
    batch, single = as_image_batch(x, "x")
    return batch.detach().to(model_device(model), copy=True).requires_grad_(True), single


def class_scores(model: nn.Module, inp: torch.Tensor) -> torch.Tensor:
    """``model(inp)``, checked to be class scores of shape (N, classes)."""
    out = model(inp)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != inp.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{type(model).__name__} must return class scores of shape (N, classes) for N = "
                         f"{inp.shape[0]} images; got {shape}")
    return out


def _class_gradient(model: nn.Module, x, target, rule: str | None) -> torch.Tensor:
    inp, single = _input_copy(model, x)
    override = relu_backward(rule) if rule else contextlib.nullcontext()
    with preserved(model), torch.enable_grad():
        with override:
            out = class_scores(model, inp)
        t = check_targets(target, out.shape[0], out.shape[1]).to(out.device)
        (grad,) = torch.autograd.grad(out.gather(1, t[:, None]).sum(), inp)
    return restore_batch(grad.to(x.device), single)


def saliency(model: nn.Module, x: torch.Tensor, target, abs: bool = True) -> torch.Tensor:
    """Gradient of the target class's score (the logit) with respect to the input pixels (Simonyan et al. 2014).

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] and returning scores (N, classes).
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1].
        target: a class index, or one per image.
        abs: return the absolute value of the gradient (Captum's default), else the signed gradient.

    Returns a tensor shaped like ``x``, on ``x``'s device: equal to Captum's ``Saliency(model).attribute(x,
    target, abs=abs)``. Model mode, flags and hooks, and ``x`` itself, are unchanged afterwards.
    """
    grad = _class_gradient(model, x, target, None)
    return grad.abs() if abs else grad


def guided_backprop(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): the target score's gradient where every ReLU on the way
    down passes only positive gradients, and only where its input was positive.

    Args and result as :func:`saliency` (signed; the result is shaped like ``x``). Equal to Captum's
    ``GuidedBackprop`` on models whose ReLUs are distinct ``nn.ReLU`` modules, and also correct for functional
    (``F.relu``, ``torch.relu``, ``Tensor.relu``), in-place and reused ReLUs, which Captum's hooks miss or mishandle.
    """
    return _class_gradient(model, x, target, "guided")


def deconvnet(model: nn.Module, x: torch.Tensor, target=None, *, layer=None, channel: int | None = None,
              max_only: bool = False) -> torch.Tensor:
    """Zeiler & Fergus's deconvnet: a signal sent back down the network where every ReLU passes only its positive
    part (ignoring the forward pass), max-pools send it to the position that won (summing where windows overlap)
    and convolutions apply their transposed filters.

    Two uses, exactly one of ``target`` and ``layer``:

    * ``deconvnet(model, x, target)`` projects the class score down: equal to Captum's ``Deconvolution``.
    * ``deconvnet(model, x, layer=L, channel=c)`` projects channel ``c``'s activation map at layer ``L`` (all other
      channels zeroed; ``channel=None`` keeps all channels) down to the pixels; with ``max_only=True`` only the map's
      strongest activation is kept (per image). Equal to Captum's ``NeuronDeconvolution`` with a selector that
      returns the sum of the kept activations times their (detached) values.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1].
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1].
        target: a class index or one per image.
        layer: a name from ``model.named_modules()`` or a module of ``model``; it must run once per forward pass.
        channel: the channel (or feature, for a linear layer) to project, in ``[0, channels)``.
        max_only: keep only the strongest activation of the selected channel(s).

    Returns a tensor shaped like ``x`` on ``x``'s device (signed; large where the input made the feature fire).
    """
    if (target is None) == (layer is None):
        raise ValueError("give exactly one of target= (project a class score) and layer= (project a feature map)")
    if layer is None:
        if channel is not None or max_only:
            raise ValueError("channel= and max_only= select part of a layer's activations: give layer= too")
        return _class_gradient(model, x, target, "deconvnet")

    inp, single = _input_copy(model, x)
    with preserved(model), torch.enable_grad():
        with relu_backward("deconvnet"), capture(model, layer, detach=False) as cap:
            cap(inp)
        name = cap.names[0]
        if cap.calls[name] != 1:
            raise ValueError(f"layer {name!r} ran {cap.calls[name]} times in one forward pass; pick a layer that "
                             f"runs once (a reused module, such as a shared ReLU, has no single activation map)")
        act = cap[name]
        if not isinstance(act, torch.Tensor) or act.dim() < 2:
            raise ValueError(f"layer {name!r} must output a tensor (N, C, ...) to project, got "
                             f"{tuple(act.shape) if isinstance(act, torch.Tensor) else type(act).__name__}")
        keep = _selection_mask(act.detach(), channel, max_only, name)
        selected = (act * act.detach() * keep).sum()
        (grad,) = torch.autograd.grad(selected, inp, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(inp)
    return restore_batch(grad.to(x.device), single)


def _selection_mask(act: torch.Tensor, channel: int | None, max_only: bool, name: str) -> torch.Tensor:
    """1 where an activation is projected, 0 elsewhere (same shape as ``act``)."""
    n, channels = act.shape[:2]
    keep = torch.zeros_like(act)
    if channel is not None:
        if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < channels:
            raise ValueError(f"channel must be an int in [0, {channels - 1}] for layer {name!r} "
                             f"(output shape {tuple(act.shape)}), got {channel!r}")
        keep[:, channel] = 1
    else:
        keep.fill_(1)
    if max_only:
        flat = (act * keep).reshape(n, -1).masked_fill(keep.reshape(n, -1) == 0, float("-inf"))
        best = flat.argmax(dim=1)
        keep = torch.zeros_like(flat).scatter_(1, best[:, None], 1.0).reshape(act.shape)
    return keep
