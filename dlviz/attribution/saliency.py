"""Which input pixels a classifier's decision (or one feature map) depends on.

Gradient methods (this module): :func:`saliency`, :func:`guided_backprop`, :func:`deconvnet`.
Perturbation and dataset methods, re-exported here: :func:`~dlviz.attribution.occlusion.occlusion`,
:func:`~dlviz.attribution.top_activations.top_activations`.

Every result has the shape of the input images and the meaning of the Captum method of the same name, so one
can be checked against the other. Unlike Captum's module hooks, guided backprop and deconvnet here also see
ReLUs called as functions and ReLU modules used several times (see :func:`dlviz.hooks.relu_backward`).
"""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from .._model import gradients_on, model_input, preserved, target_gradient, to_caller
from .._validate import as_int
from ..hooks import capture, relu_backward, single_output

__all__ = ["saliency", "guided_backprop", "deconvnet"]

_NO_RELU_WARNING = (
    "{method}: the forward pass ran no ReLU that {method} can override{why}, so the result is the plain gradient "
    "(saliency with abs=False). Guided backprop and deconvnet change only the backward pass of ReLUs (nn.ReLU, "
    "F.relu, torch.relu, Tensor.relu); other activations (ReLU6, GELU, SiLU, LeakyReLU...) keep their usual "
    "gradient, and ReLUs inside TorchScript modules are invisible to the override")


@contextlib.contextmanager
def relu_rule(model: nn.Module, rule: str | None):
    """Inside the block, every ReLU's backward pass follows ``rule`` (``"guided"``, ``"deconvnet"``; None: the usual
    gradient), as :func:`dlviz.hooks.relu_backward` does. Guided backprop and deconvnet equal the plain gradient
    when no ReLU was seen: when the block ends without one, a UserWarning says so instead of staying silent."""
    if rule is None:
        yield None
        return
    with relu_backward(rule) as mode:
        yield mode
    if mode.calls > 0:
        return
    method = {"guided": "guided_backprop", "deconvnet": "deconvnet"}.get(rule, rule)
    scripted = any(isinstance(m, torch.jit.ScriptModule) for m in model.modules())
    why = " (it is a TorchScript model, whose operations are hidden from Python)" if scripted else ""
    warnings.warn(_NO_RELU_WARNING.format(method=method, why=why), UserWarning, stacklevel=3)


def _class_gradient(model: nn.Module, x, target, rule: str | None, output) -> torch.Tensor:
    """d(target score)/d(input) of the caller's images, with every ReLU's backward pass replaced by ``rule`` when
    given."""
    with gradients_on():
        inp, single = model_input(model, x)
        with preserved(model), relu_rule(model, rule):
            grad = target_gradient(model, inp, target, output)
    return to_caller(grad, x, single)


def saliency(model: nn.Module, x: torch.Tensor, target, abs: bool = True, *, output=None) -> torch.Tensor:
    """Gradient of the target class's score (the logit) with respect to the input pixels (Simonyan et al. 2014).

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] and returning scores (N, classes).
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1].
        target: a class index, or one per image (ints in [0, classes)).
        abs: return the absolute value of the gradient (Captum's default), else the signed gradient.
        output: how to get the class scores (N, classes) from what the model returns, when that is not a
            tensor: an int indexes a tuple (``output=0``), a str is a dict key or attribute
            (``output="logits"``), a callable maps the output to the scores; None (default) expects a tensor.

    Returns:
        A tensor shaped like ``x``, in ``x``'s dtype and on ``x``'s device (>= 0 with ``abs=True``, unbounded):
        equal to Captum's ``Saliency(model).attribute(x, target, abs=abs)``. The model runs in its own dtype and
        on its own device; its modes, flags and hooks, and ``x`` itself, are unchanged afterwards. Works inside
        ``torch.no_grad()`` and ``torch.inference_mode()``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz import saliency
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.copy_(torch.tensor([[1., -2., 0., 3.], [0., 0., 0., 0.]]))
        >>> saliency(net, torch.full((1, 2, 2), 0.5), target=0)
        tensor([[[1., 2.],
                 [0., 3.]]])
    """
    grad = _class_gradient(model, x, target, None, output)
    return grad.abs() if abs else grad


def guided_backprop(model: nn.Module, x: torch.Tensor, target, *, output=None) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): the target score's gradient where every ReLU on the way
    down passes only positive gradients, and only where its input was positive.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] and returning scores (N, classes).
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1].
        target: a class index, or one per image (ints in [0, classes)).
        output: how to get the class scores from a non-tensor model output (int index, str key or attribute,
            or callable); see :func:`saliency`.

    Returns:
        A tensor shaped like ``x`` (signed), in ``x``'s dtype and on ``x``'s device. Equal to Captum's
        ``GuidedBackprop`` on models whose ReLUs are distinct ``nn.ReLU`` modules, and also correct for
        functional (``F.relu``, ``torch.relu``, ``Tensor.relu``), in-place and reused ReLUs, which Captum's
        hooks miss or mishandle. Only ReLUs are overridden: other activations (ReLU6, GELU, SiLU, LeakyReLU)
        keep their usual gradient, and a model without any ReLU the override can see (also a TorchScript model)
        gets the plain gradient -- with a UserWarning saying so.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz import guided_backprop
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.copy_(torch.eye(3, 4))
        ...     _ = net[1].bias.zero_()
        ...     _ = net[3].weight.copy_(torch.tensor([[1., -1., 2.], [0., 0., 0.]]))
        >>> guided_backprop(net, torch.full((1, 2, 2), 0.5), target=0)   # the negative path is cut
        tensor([[[1., 0.],
                 [2., 0.]]])
    """
    return _class_gradient(model, x, target, "guided", output)


def deconvnet(model: nn.Module, x: torch.Tensor, target=None, *, layer=None, channel: int | None = None,
              max_only: bool = False, output=None) -> torch.Tensor:
    """Zeiler & Fergus's deconvnet: a signal sent back down the network where every ReLU passes only its positive
    part (ignoring the forward pass), max-pools send it to the position that won (summing where windows overlap)
    and convolutions apply their transposed filters.

    Two uses, exactly one of ``target`` and ``layer``:

    * ``deconvnet(model, x, target)`` projects the class score down: equal to Captum's ``Deconvolution``.
    * ``deconvnet(model, x, layer=L, channel=c)`` projects channel ``c``'s activation map at layer ``L`` (all other
      channels zeroed; ``channel=None`` keeps all channels) down to the pixels; with ``max_only=True`` only the map's
      strongest activation is kept (per image). Equal to Captum's ``NeuronDeconvolution`` with a selector that
      returns the sum of the kept activations times their (detached) values.

    Only ReLUs (``nn.ReLU``, ``F.relu``, ``torch.relu``, ``Tensor.relu``, in-place or reused) are overridden; other
    activations (ReLU6, GELU, SiLU, LeakyReLU) keep their usual gradient. When the forward pass runs no ReLU the
    override can see (also for a TorchScript model), the result is the plain gradient and a UserWarning says so.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1].
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1].
        target: a class index or one per image (ints in [0, classes)).
        layer: a name from ``model.named_modules()`` or a module of ``model``; it must run once per forward pass.
        channel: the channel (or feature, for a linear layer) to project, in ``[0, channels)``.
        max_only: keep only the strongest activation of the selected channel(s).
        output: with ``target``, how to get the class scores from a non-tensor model output (int index, str key
            or attribute, or callable); see :func:`saliency`. Not used with ``layer``.

    Returns:
        A tensor shaped like ``x``, in ``x``'s dtype and on ``x``'s device (signed; large where the input made the
        feature fire).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz import deconvnet
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.copy_(torch.eye(3, 4))
        ...     _ = net[1].bias.fill_(-1.0)                 # every ReLU is off in the forward pass...
        ...     _ = net[3].weight.copy_(torch.tensor([[1., -1., 2.], [0., 0., 0.]]))
        >>> deconvnet(net, torch.full((1, 2, 2), 0.5), 0)   # ...which the deconvnet ignores
        tensor([[[1., 0.],
                 [2., 0.]]])
    """
    if (target is None) == (layer is None):
        raise ValueError("give exactly one of target= (project a class score) and layer= (project a feature map)")
    if layer is None:
        if channel is not None or max_only:
            raise ValueError("channel= and max_only= select part of a layer's activations: give layer= too")
        return _class_gradient(model, x, target, "deconvnet", output)
    if output is not None:
        raise ValueError("output= says where the class scores are; deconvnet(layer=...) projects a layer's "
                         "activations and uses no class scores")

    with gradients_on():
        inp, single = model_input(model, x)
        inp.requires_grad_(True)
        with preserved(model), relu_rule(model, "deconvnet"):
            with capture(model, layer, detach=False) as cap:
                cap(inp.clone())  # a copy that a model normalizing in place may change; the gradient reaches inp
            selected = _selected_activations(cap)
            (grad,) = torch.autograd.grad(selected(channel, max_only), inp, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(inp)
    return to_caller(grad, x, single)


def _selected_activations(cap):
    """The captured layer's activation, checked; returns ``select(channel, max_only)`` -> the projected sum."""
    name = cap.names[0]
    act = single_output(cap, name, min_dim=2, who="deconvnet", expected="a tensor (N, C, ...) to project")

    def select(channel, max_only):
        keep = _selection_mask(act.detach(), channel, max_only, name)
        return (act * act.detach() * keep).sum()
    return select


def _selection_mask(act: torch.Tensor, channel: int | None, max_only: bool, name: str) -> torch.Tensor:
    """1 where an activation is projected, 0 elsewhere (same shape as ``act``)."""
    n, channels = act.shape[:2]
    keep = torch.zeros_like(act)
    given = channel
    if channel is not None:
        channel = as_int(channel)
        if channel is None or not 0 <= channel < channels:
            raise ValueError(f"channel must be an int in [0, {channels - 1}] for layer {name!r} "
                             f"(output shape {tuple(act.shape)}), got {given!r}")
        keep[:, channel] = 1
    else:
        keep.fill_(1)
    if max_only:
        flat = (act * keep).reshape(n, -1).masked_fill(keep.reshape(n, -1) == 0, float("-inf"))
        best = flat.argmax(dim=1)
        keep = torch.zeros_like(flat).scatter_(1, best[:, None], 1.0).reshape(act.shape)
    return keep
