"""Calling a user's model the same way in every dlviz function: the core every tool stands on.

* :func:`model_device` / :func:`model_dtype`: where and in what dtype the model computes;
* :func:`preserved`: eval mode and frozen parameters inside a block, the caller's state restored after it, also
  when the block raises;
* :func:`model_input`: the caller's images, checked, as a fresh copy on the model's device and in its dtype (a
  model that normalizes in place can never change the caller's tensor);
* :func:`to_caller`: a result back in the caller's dtype, on the caller's device and in the caller's (C, H, W) or
  (N, C, H, W) form;
* :func:`class_scores` / :func:`select_scores`: the class scores (N, classes) out of whatever the model's forward
  returns -- a tensor, or a tuple, dict or output object picked by the ``output`` argument that every function
  taking a classifier accepts;
* :func:`pick_targets` / :func:`target_scores` / :func:`target_gradient`: the target class's score of each image,
  and its gradient with respect to the image (saliency, integrated gradients, SmoothGrad, Grad-CAM);
* :func:`gradients_on`: gradients available inside the block even when the caller is in ``torch.no_grad()`` or
  ``torch.inference_mode()``;
* :func:`input_shape`: the (C, H, W) an image model takes, for the tools that start from noise.
"""
from __future__ import annotations

import contextlib
import operator
from collections.abc import Mapping

import torch
from torch import nn

from . import _precision
from ._validate import as_image_batch, check_targets, restore_batch

__all__ = ["model_dtype", "model_device", "preserved", "input_shape", "model_input", "to_caller", "select_scores",
           "class_scores", "gradients_on", "pick_targets", "target_scores", "target_gradient", "OUTPUT_DOC"]

OUTPUT_DOC = ("how to get the class scores (N, classes) from what the model returns, when that is not a tensor: "
              "an int indexes a tuple or list (``output=0``), a str is a dict key or an attribute "
              "(``output=\"logits\"``), "
              "a callable maps the output to the scores; None (default) expects a tensor")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter or buffer (float32 for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def model_input(model: nn.Module, x, name: str = "x", *, check_range: bool = True,
                channels: tuple[int, ...] | None = None) -> tuple[torch.Tensor, bool]:
    """``(batch, single)``: the images ``x`` checked (see :func:`dlviz._validate.as_image_batch`) and copied to a new
    (N, C, H, W) tensor on the model's device, in the model's dtype, detached from any graph. ``single`` says that
    one (C, H, W) image was given. The copy is always new memory, so nothing the model does to it reaches ``x``."""
    batch, single = as_image_batch(x, name, check_range=check_range, channels=channels)
    device, dtype = model_device(model), model_dtype(model)
    copy = batch.detach().to(device=device, dtype=dtype, copy=True)
    return copy, single


def to_caller(result: torch.Tensor, x: torch.Tensor, single: bool) -> torch.Tensor:
    """``result`` (N, ...) back in the form the caller gave ``x``: its dtype (for floating results), its device, and
    without the batch dimension when a single image was given."""
    result = result.detach()
    if result.is_floating_point():
        result = result.to(device=x.device, dtype=x.dtype)
    else:
        result = result.to(x.device)
    return restore_batch(result, single)


def select_scores(out, output=None, *, model: nn.Module | None = None, n: int | None = None,
                  need_classes: bool = False, as_is: bool = False) -> torch.Tensor:
    """The class scores (N, classes) in a model's forward output ``out``.

    ``output`` picks them when ``out`` is not a tensor: an int indexes a tuple or list, a str is a dict key or an
    attribute name, a callable is applied to ``out``. ``n`` (the number of images) is checked against the scores'
    first dimension; ``need_classes`` rejects a single score per image (functions that need class probabilities).
    ``as_is`` returns a tensor ``out`` (with ``output=None``) as it is, of any shape, unchecked (training losses also
    take per-step scores (N, T, classes)). Errors name the model and say what to pass.
    """
    who = type(model).__name__ if model is not None else "the model"
    if as_is and output is None and isinstance(out, torch.Tensor):
        return out
    if output is None:
        scores = out
        if not isinstance(out, torch.Tensor):
            kind = type(out).__name__
            keys = f" with keys {list(out)[:8]}" if isinstance(out, Mapping) else ""
            raise TypeError(f"{who} returned a {kind}{keys}, not a tensor of class scores; say where the scores "
                            f"are with output=: output=0 for the first element of a tuple, output='logits' for a "
                            f"dict key or an attribute, or output=lambda out: ... for anything else")
    elif callable(output) and not isinstance(output, (str, int)):
        scores = output(out)
    elif isinstance(output, bool) or not isinstance(output, (int, str)):
        raise TypeError(f"output must be None, an int (tuple index), a str (dict key or attribute) or a callable, "
                        f"got {type(output).__name__}")
    elif isinstance(output, int):
        if not isinstance(out, (tuple, list)):
            raise TypeError(f"output={output} indexes a tuple, but {who} returned a {type(out).__name__}")
        if not -len(out) <= output < len(out):
            raise IndexError(f"output={output} is out of range: {who} returned {len(out)} values")
        scores = out[output]
    else:
        if isinstance(out, Mapping):
            if output not in out:
                raise KeyError(f"output={output!r} is not a key of what {who} returned; keys: {list(out)}")
            scores = out[output]
        elif hasattr(out, output):
            scores = getattr(out, output)
        else:
            raise AttributeError(f"output={output!r}: {who} returned a {type(out).__name__} without that attribute")
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or (n is not None and scores.shape[0] != n):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        expected = f"(N, classes) with N = {n}" if n is not None else "(N, classes)"
        raise ValueError(f"the class scores of {who} must have shape {expected}; got {shape}")
    if need_classes and scores.shape[1] < 2:
        raise ValueError(f"{who} returns a single score per image, but this function needs class probabilities "
                         f"(a softmax over at least 2 classes); for a binary classifier with one logit z, return "
                         f"torch.cat([-z, z], dim=1) (or [0, z]) so that there are two classes")
    return scores


def class_scores(model: nn.Module, inputs: torch.Tensor, output=None, *, need_classes: bool = False,
                 dtype: torch.dtype | None = None, plan: _precision.Plan | None = None,
                 float32: bool = False) -> torch.Tensor:
    """``model(inputs)``'s class scores (N, classes), picked with ``output`` (see :func:`select_scores`).

    The model gets ``inputs`` itself, or -- when ``inputs`` is a leaf that requires grad -- a differentiable copy, so
    that a model which normalizes its input in place still runs (autograd refuses in-place changes to such a leaf)
    and the gradient still reaches ``inputs``. With ``dtype`` (the model's) it always gets a fresh differentiable
    copy in that dtype, so a model that works in place can never change ``inputs``. ``plan`` runs the forward pass
    under that :mod:`dlviz._precision` plan's autocast (None: the model's own arithmetic); ``float32`` returns the
    scores in at least float32 (bfloat16 ones as float32, float64 ones unchanged)."""
    if dtype is not None:
        inputs = inputs.to(dtype=dtype, copy=True)
    elif inputs.requires_grad and inputs.is_leaf:
        inputs = inputs.clone()
    with _precision.autocast(plan):
        out = model(inputs)
    scores = select_scores(out, output, model=model, n=inputs.shape[0], need_classes=need_classes)
    return scores.to(torch.promote_types(scores.dtype, torch.float32)) if float32 else scores


# --- the target class's score of each image, and its gradient -------------------------------------------------

def pick_targets(scores: torch.Tensor, targets) -> torch.Tensor:
    """``scores[i, targets[i]]`` for each row, (N,), after checking that ``targets`` (an int, or one per row) are
    classes of ``scores`` (N, classes)."""
    targets = check_targets(targets, scores.shape[0], scores.shape[1]).to(scores.device)
    return scores.gather(1, targets[:, None])[:, 0]


def target_scores(model: nn.Module, images: torch.Tensor, targets, batch_size: int, output=None) -> torch.Tensor:
    """The target class's score of each prepared image (see :func:`model_input`), (N,) in float32 or float64,
    ``batch_size`` images per forward pass, without a graph."""
    parts = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            chunk = slice(start, start + batch_size)
            parts.append(pick_targets(class_scores(model, images[chunk], output), targets[chunk]))
    return torch.cat(parts).to(torch.promote_types(images.dtype, torch.float32))


def target_gradient(model: nn.Module, images: torch.Tensor, targets, output=None) -> torch.Tensor:
    """The gradient of each image's target score with respect to its pixels, (N, C, H, W) like ``images`` and in
    their dtype (zeros where the scores do not depend on the pixels).

    ``images`` are prepared (on the model's device, in its dtype: see :func:`model_input`; any values, so noisy
    copies too); ``targets`` is an int or one int per image, checked against the class count. Call inside
    :func:`gradients_on` (and :func:`preserved`). Guided backprop and deconvnet wrap the call in
    :func:`dlviz.hooks.relu_backward`, which changes the backward pass of every ReLU the forward pass runs.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz._model import target_gradient
        >>> net = nn.Linear(2, 3)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.tensor([[1., 2.], [3., 4.], [5., 6.]]))
        >>> target_gradient(net, torch.zeros(2, 2), [2, 0])
        tensor([[5., 6.],
                [1., 2.]])
    """
    inputs = images.detach().requires_grad_(True)
    scores = class_scores(model, inputs, output)
    (grad,) = torch.autograd.grad(pick_targets(scores, targets).sum(), inputs, allow_unused=True)
    return torch.zeros_like(inputs) if grad is None else grad


@contextlib.contextmanager
def gradients_on():
    """Autograd on inside the block, also when the caller is in ``torch.no_grad()`` or ``torch.inference_mode()``.
    Tensors made inside the block are ordinary tensors (not inference tensors), so gradients flow through them."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any).

    Example:
        >>> from torch import nn
        >>> from dlviz._model import model_device
        >>> model_device(nn.Linear(2, 2)), model_device(nn.ReLU())
        (device(type='cpu'), device(type='cpu'))
    """
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def preserved(model: nn.Module, *, eval_mode: bool = True, freeze: bool = True):
    """Run a block with ``model`` in eval mode and its parameters' ``requires_grad`` off, then restore both
    (per module and per parameter), also when the block raises.

    Example:
        >>> from torch import nn
        >>> from dlviz._model import preserved
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
        >>> with preserved(net):
        ...     inside = (net.training, net[0].weight.requires_grad)
        >>> inside, (net.training, net[0].weight.requires_grad)
        ((False, False), (True, True))
    """
    modes = {m: m.training for m in model.modules()}
    flags = {p: p.requires_grad for p in model.parameters()}
    try:
        if eval_mode:
            model.eval()
        if freeze:
            for p in flags:
                p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode
        for p, flag in flags.items():
            p.requires_grad_(flag)


# --- the input shape of an image model, for the tools that start from noise -------------------------------

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
