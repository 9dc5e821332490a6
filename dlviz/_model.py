"""Calling a user's model the same way in every dlviz function.

* :func:`model_input`: the caller's images, checked, as a fresh copy on the model's device and in its dtype (a
  model that normalizes in place can never change the caller's tensor);
* :func:`to_caller`: a result back in the caller's dtype, on the caller's device and in the caller's (C, H, W) or
  (N, C, H, W) form;
* :func:`class_scores` / :func:`select_scores`: the class scores (N, classes) out of whatever the model's forward
  returns -- a tensor, or a tuple, dict or output object picked by the ``output`` argument that every function
  taking a classifier accepts;
* :func:`gradients_on`: gradients available inside the block even when the caller is in ``torch.no_grad()`` or
  ``torch.inference_mode()``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch
from torch import nn

from ._validate import as_image_batch, restore_batch
from .hooks import model_device

__all__ = ["model_dtype", "model_device", "model_input", "to_caller", "select_scores", "class_scores", "gradients_on",
           "OUTPUT_DOC"]

OUTPUT_DOC = ("how to get the class scores (N, classes) from what the model returns, when that is not a tensor: "
              "an int indexes a tuple or list (``output=0``), a str is a dict key or an attribute (``output=\"logits\"``), "
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
                  need_classes: bool = False) -> torch.Tensor:
    """The class scores (N, classes) in a model's forward output ``out``.

    ``output`` picks them when ``out`` is not a tensor: an int indexes a tuple or list, a str is a dict key or an
    attribute name, a callable is applied to ``out``. ``n`` (the number of images) is checked against the scores'
    first dimension; ``need_classes`` rejects a single score per image (functions that need class probabilities).
    Errors name the model and say what to pass.
    """
    who = type(model).__name__ if model is not None else "the model"
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


def class_scores(model: nn.Module, inputs: torch.Tensor, output=None, *, need_classes: bool = False) -> torch.Tensor:
    """``model(inputs)``'s class scores (N, classes), picked with ``output`` (see :func:`select_scores`).

    The model gets ``inputs`` itself, or -- when ``inputs`` is a leaf that requires grad -- a differentiable copy, so
    that a model which normalizes its input in place still runs (autograd refuses in-place changes to such a leaf)
    and the gradient still reaches ``inputs``."""
    if inputs.requires_grad and inputs.is_leaf:
        inputs = inputs.clone()
    return select_scores(model(inputs), output, model=model, n=inputs.shape[0], need_classes=need_classes)


@contextlib.contextmanager
def gradients_on():
    """Autograd on inside the block, also when the caller is in ``torch.no_grad()`` or ``torch.inference_mode()``.
    Tensors made inside the block are ordinary tensors (not inference tensors), so gradients flow through them."""
    with torch.inference_mode(False), torch.enable_grad():
        yield
