"""Layers named the way users name them, model state that dlviz calls leave as they found it, capturing
activations, and overriding the backward pass of every ReLU.

A layer is given as its ``named_modules()`` name (``"features.7"``) or as the module itself. Every hook and
override set here is removed when its ``with`` block ends, also when the block raises.
"""
from __future__ import annotations

import contextlib
import difflib

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ._model import model_device, model_dtype, preserved
from ._validate import as_image_batch

__all__ = ["resolve_layer", "capture", "Capture", "single_output", "activations", "relu_backward"]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(name, module)`` for a layer given by name or as a module of ``model``.

    Raises KeyError listing the closest names for an unknown name, ValueError for a module not in ``model``,
    TypeError for anything else.

    Example:
        >>> from torch import nn
        >>> from dlviz.hooks import resolve_layer
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
        >>> resolve_layer(net, "1")
        ('1', ReLU())
        >>> resolve_layer(net, net[0])[0]
        '0'
    """
    modules = dict(model.named_modules())
    if isinstance(layer, str):
        if layer in modules and layer != "":
            return layer, modules[layer]
        names = [n for n in modules if n]
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.4)
        hint = f"close matches: {', '.join(close)}" if close else f"layers are: {', '.join(names[:30])}"
        raise KeyError(f"{type(model).__name__} has no layer named {layer!r}; {hint}")
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError(f"the given {type(layer).__name__} module is not part of {type(model).__name__}")
    raise TypeError(f"a layer is a name from model.named_modules() or an nn.Module, got {type(layer).__name__}")


# --- capturing activations ------------------------------------------------------------------------------------

def _layer_list(model: nn.Module, layers) -> list[tuple[str, nn.Module]]:
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    try:
        layers = list(layers)
    except TypeError:
        raise TypeError("layers must be a layer name, a module, or a list of them, "
                        f"got {type(layers).__name__}") from None
    if not layers:
        raise ValueError("layers is empty: give at least one layer name or module")
    resolved = [resolve_layer(model, layer) for layer in layers]
    return list(dict(resolved).items())  # drop duplicates, keep order


def _snapshot(value, detach: bool):
    """A copy of a module's output that later in-place operations (``ReLU(inplace=True)``) cannot change."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone() if detach else value.clone()
    if isinstance(value, tuple):
        return tuple(_snapshot(v, detach) for v in value)
    if isinstance(value, list):
        return [_snapshot(v, detach) for v in value]
    return value


class _StopForward(Exception):
    """Raised by a capture hook to end a forward pass once every requested layer has run."""


class Capture(dict):
    """Layer outputs recorded by :func:`capture`: a dict ``{name: tensor}``, filled by every forward pass.

    Each forward pass of the model replaces the previous pass's outputs. ``calls[name]`` counts how often the
    layer ran in the last pass; a module that runs several times in one pass (a reused module, such as ResNet's
    shared ReLU) keeps the output of its first call. ``cap(x)`` runs the model and returns the dict.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.hooks import capture
        >>> relu = nn.ReLU()
        >>> net = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)   # one ReLU module used twice
        >>> with capture(net, ["0", "1"]) as cap:
        ...     found = cap(torch.zeros(2, 3))
        >>> sorted(found), cap.calls
        (['0', '1'], {'0': 1, '1': 2})
    """

    def __init__(self, model: nn.Module, names: list[str], stop: bool):
        super().__init__()
        self.model, self.names, self.stop = model, names, stop
        self.calls = {name: 0 for name in names}

    def __call__(self, x) -> dict:
        """Run ``model(x)`` (ending it early after the last requested layer when ``stop``) and return the dict."""
        try:
            self.model(x)
        except _StopForward:
            pass
        return self

    def _new_pass(self, module, inputs):
        self.clear()
        self.calls = {name: 0 for name in self.names}

    def _hook(self, name: str, detach: bool):
        def hook(module, inputs, output):
            if self.calls[name] == 0:
                self[name] = _snapshot(output, detach)
            self.calls[name] += 1
            if self.stop and all(self.calls.values()):
                raise _StopForward
        return hook


@contextlib.contextmanager
def capture(model: nn.Module, layers, *, detach: bool = True, stop: bool = False):
    """Record the outputs of ``layers`` during the forward passes run inside the ``with`` block.

    Args:
        model: any ``nn.Module``.
        layers: a layer name from ``model.named_modules()``, a module of ``model``, or a list of them.
        detach: store detached copies (default); ``detach=False`` keeps the autograd graph so that a loss on the
            activations can be differentiated with respect to the input (deep dream, style transfer).
        stop: end each forward pass as soon as every requested layer has run (only with ``cap(x)``, which
            catches the early stop; a plain ``model(x)`` would see the internal exception).

    Yields a :class:`Capture` dict ``{name: output}``. Outputs are copies taken when the layer runs, so a later
    in-place ReLU does not change them. The model's mode and flags are not changed (combine with
    :func:`preserved` for eval mode); every hook is removed when the block ends, also on error.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.hooks import capture
        >>> from dlviz._model import preserved
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(8, 3))
        >>> with preserved(net), capture(net, ["0", "3"]) as cap, torch.no_grad():
        ...     for batch in (torch.rand(5, 1, 4, 4), torch.rand(2, 1, 4, 4)):
        ...         feats = cap(batch)                     # each pass replaces the last one's outputs
        >>> {name: tuple(out.shape) for name, out in feats.items()}
        {'0': (2, 2, 2, 2), '3': (2, 3)}
    """
    resolved = _layer_list(model, layers)
    cap = Capture(model, [name for name, _ in resolved], stop)
    handles = []
    try:
        handles.append(model.register_forward_pre_hook(cap._new_pass))
        for name, module in resolved:
            handles.append(module.register_forward_hook(cap._hook(name, detach)))
        yield cap
    finally:
        for handle in handles:
            handle.remove()


def single_output(recorded, name: str, n: int | None = None, *, min_dim: int = 1, dim: int | None = None,
                  floating: bool = False, who: str = "this function", expected: str = "a tensor (N, ...)",
                  hint: str = ""):
    """The one output of layer ``name`` in the last forward pass, checked, for the tools that need a layer to run
    exactly once per pass (Grad-CAM, deconvnet, inversion, top activations).

    ``recorded`` is what was recorded during the pass: a :class:`Capture` (whose ``calls`` count the layer's runs)
    or a list with the output of each call of the layer. A layer that did not run, or that ran several times (a
    reused module, like ResNet's shared ``relu``, has no single output), raises ValueError naming the layer and
    saying to pick a layer that runs once. The output must be a tensor with ``dim`` dimensions (or at least
    ``min_dim``), floating-point when ``floating``, with ``n`` rows when ``n`` is given; otherwise ValueError
    "``who`` needs a layer that outputs ``expected`` ...; layer ... outputs (shape)", followed by ``hint``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.hooks import capture, single_output
        >>> relu = nn.ReLU()
        >>> net = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
        >>> with capture(net, ["0", "1"]) as cap:
        ...     _ = cap(torch.zeros(2, 3))
        >>> tuple(single_output(cap, "0", 2).shape)
        (2, 3)
        >>> single_output(cap, "1")
        Traceback (most recent call last):
        ...
        ValueError: layer '1' ran 2 times in one forward pass, so it has no single output (a reused module, like
        ResNet's shared relu); pick a layer that runs once, such as the block or convolution it belongs to
    """
    if isinstance(recorded, Capture):
        calls, out = recorded.calls.get(name, 0), recorded.get(name)
    else:
        calls, out = len(recorded), (recorded[0] if recorded else None)
    if calls == 0:
        raise ValueError(f"layer {name!r} did not run in the model's forward pass")
    if calls > 1:
        raise ValueError(f"layer {name!r} ran {calls} times in one forward pass, so it has no single output (a "
                         f"reused module, like ResNet's shared relu); pick a layer that runs once, such as the block "
                         f"or convolution it belongs to")
    ok = isinstance(out, torch.Tensor) and (out.dim() == dim if dim is not None else out.dim() >= min_dim)
    if not ok or (floating and not out.is_floating_point()) or (n is not None and out.shape[0] != n):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        rows = f" with N = {n}" if n is not None else ""
        raise ValueError(f"{who} needs a layer that outputs {expected}{rows}; layer {name!r} outputs {shape}{hint}")
    return out


def activations(model: nn.Module, x: torch.Tensor, layers, *, grad: bool = False) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` for images ``x``, as ``{name: tensor}`` (one entry per requested layer).

    Args:
        model: an ``nn.Module`` taking (N, C, H, W) images in [0, 1] (normalization inside the model).
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1], on any device and in any floating dtype
            (the model gets a copy in its own dtype, on its own device).
        layers: a name from ``model.named_modules()``, a module of ``model``, or a list of them.
        grad: keep the autograd graph back to ``x`` (``x`` must then require grad itself); default detached.

    Returns:
        A dict mapping each layer's name to its output: (N, C', H', W') for a conv layer, (N, F) for a linear one,
        in ``x``'s dtype and on ``x``'s device; a single image gives outputs without the batch dimension. The
        forward pass runs in eval mode and stops once every requested layer has run (a module that runs several
        times gives its first call's output); the model's mode, flags and hooks are as before afterwards, also on
        error.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz import activations
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
        >>> acts = activations(net, torch.rand(2, 3, 10, 10), ["0", "2"])
        >>> {name: tuple(a.shape) for name, a in acts.items()}
        {'0': (2, 4, 8, 8), '2': (2, 4, 4, 4)}
    """

    batch, single = as_image_batch(x, "x")
    grad = grad and torch.is_grad_enabled()
    with torch.set_grad_enabled(grad):
        # a copy (differentiable when grad=True): a model that changes its input in place cannot reach x
        batch = batch.to(device=model_device(model), dtype=model_dtype(model), copy=True)
        if not grad:
            batch = batch.detach()
        with preserved(model), capture(model, layers, detach=not grad, stop=True) as cap:
            out = dict(cap(batch))
        missing = [name for name in cap.names if name not in out]
        if missing:
            raise RuntimeError(f"layer(s) {', '.join(missing)} did not run in {type(model).__name__}'s forward "
                               f"pass")
        out = {k: _to_caller(v, x) for k, v in out.items()}
    if single:
        out = {k: (v[0] if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
    return out


def _to_caller(value, x: torch.Tensor):
    """A floating output in ``x``'s dtype and on its device (differentiably); anything else as it is."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(device=x.device, dtype=x.dtype)
    return value


# --- overriding the backward pass of ReLU ---------------------------------------------------------------------
# Guided backprop and deconvnet change only what the backward pass of every ReLU does. Module hooks would miss
# ReLUs called as functions (F.relu, torch.relu, Tensor.relu, as in torchvision's GoogLeNet) and get confused by
# one nn.ReLU module reused several times (torchvision's ResNet blocks), so the override sits one level lower:
# a TorchFunctionMode sees every relu call made while it is active -- including nn.ReLU's own call to F.relu --
# and answers it with an autograd.Function whose forward is the usual ReLU and whose backward is the chosen rule.

def _guided_rule(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # the usual ReLU gradient, then only positive gradients pass (Springenberg et al. 2015)
    return torch.where(out > 0, grad.clamp(min=0), torch.zeros((), dtype=grad.dtype, device=grad.device))


def _deconvnet_rule(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # the ReLU applied to the signal going down, whatever the forward pass did (Zeiler & Fergus 2014)
    return grad.clamp(min=0)


def _identity_rule(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # every unit passes its gradient (used to find a unit's receptive field)
    return grad


_RULES = {"guided": _guided_rule, "deconvnet": _deconvnet_rule, "identity": _identity_rule}


def _relu_function(rule):
    class _ReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, inplace):
            if inplace:
                out = torch.relu_(x)
                ctx.mark_dirty(x)
            else:
                out = torch.relu(x)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad):
            (out,) = ctx.saved_tensors
            return rule(grad, out), None

    return _ReLU


_FUNCTIONS = {mode: _relu_function(rule) for mode, rule in _RULES.items()}
_RELU_CALLS = {torch.relu: False, torch.nn.functional.relu: None, torch.Tensor.relu: False,
               torch.relu_: True, torch.Tensor.relu_: True}


class _ReluOverride(TorchFunctionMode):
    def __init__(self, function):
        super().__init__()
        self.function = function
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU_CALLS:
            inplace = _RELU_CALLS[func]
            if inplace is None:  # F.relu(x, inplace=False)
                inplace = bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
            x = args[0] if args else kwargs["input"]
            self.calls += 1
            return self.function.apply(x, inplace)
        return func(*args, **kwargs)


@contextlib.contextmanager
def relu_backward(rule: str):
    """Inside the block, every ReLU computed in a forward pass gets a different backward pass.

    ``rule`` is ``"guided"`` (guided backprop: the ReLU's own gradient mask, then negative gradients set to zero),
    ``"deconvnet"`` (deconvnet: negative gradients set to zero, whatever the forward pass did) or ``"identity"``
    (the gradient passes unchanged). Covers ``nn.ReLU`` modules (also in-place and reused ones) and the functional
    forms ``F.relu``, ``torch.relu``, ``Tensor.relu`` and their in-place variants. The forward values are the
    usual ones; the rule applies when ``backward`` later runs on a graph built inside the block. Yields an object
    whose ``calls`` attribute counts the ReLU calls seen (0 means that nothing was overridden: other activations
    such as ReLU6, GELU or LeakyReLU, and operations inside TorchScript modules, are not seen). The override
    ends with the block, also on error.

    Example:
        >>> import torch
        >>> from dlviz.hooks import relu_backward
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> with relu_backward("deconvnet") as mode:
        ...     y = torch.relu(x)
        >>> torch.autograd.grad(y, x, torch.tensor([1.0, -1.0]))[0], mode.calls
        (tensor([1., 0.]), 1)
    """
    if rule not in _FUNCTIONS:
        raise ValueError(f"rule must be one of {', '.join(map(repr, _FUNCTIONS))}, got {rule!r}")
    mode = _ReluOverride(_FUNCTIONS[rule])
    with mode:
        yield mode
