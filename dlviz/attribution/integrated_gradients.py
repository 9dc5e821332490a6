"""Integrated Gradients (Sundararajan et al. 2017): the gradient of the target score averaged along the straight
path from a baseline image to the image, times the difference between the two.

:func:`integrated_gradients` equals Captum's ``IntegratedGradients(model).attribute(x, baselines=baseline,
target=target, n_steps=steps, method=method)``; the path integral is approximated with the same quadrature rules
(Gauss-Legendre, or left, right, middle and trapezoid Riemann sums). The scaled images are evaluated
``batch_size`` at a time, so memory does not grow with the number of steps. With ``return_info=True`` the
completeness gap comes back too: the attributions of an image sum to its score minus the baseline's score, up
to the quadrature's error, and :class:`IntegratedGradientsInfo` says how far off they are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._model import gradients_on, model_input, preserved, target_gradient, target_scores, to_caller
from .._progress import progress_bar
from .._validate import check_count, check_number, check_targets

__all__ = ["integrated_gradients", "IntegratedGradientsInfo", "METHODS"]

METHODS = ("gausslegendre", "riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid")


@dataclass(frozen=True)
class IntegratedGradientsInfo:
    """What :func:`integrated_gradients` returns beside the attributions when ``return_info=True``.

    Each field is a tensor of one value per image, shape (N,) (a 0-dim tensor for a single (C, H, W) image), in
    the images' dtype and on their device.

    Attributes:
        delta: the completeness gap, ``attributions.sum(over C, H, W) - (scores - baseline_scores)``, with the sign
            of Captum's convergence delta. It shrinks as ``steps`` grows; a large gap means too few steps.
        scores: the target class's score for each image.
        baseline_scores: the target class's score for each image's baseline.
    """

    delta: torch.Tensor
    scores: torch.Tensor
    baseline_scores: torch.Tensor


def integrated_gradients(model: nn.Module, x: torch.Tensor, target, *, baseline=0.0, steps: int = 50,
                         method: str = "gausslegendre", batch_size: int | None = None, output=None,
                         progress: bool = True, return_info: bool = False):
    """Integrated Gradients: how much each pixel contributes to the target score, relative to a baseline image.

    The attribution of pixel i is ``(x_i - b_i) * integral over a in [0, 1] of d score / d x_i at b + a (x - b)``,
    the integral approximated at ``steps`` points of the path with ``method``'s weights.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] (normalization inside the model, e.g. with
            :func:`dlviz.normalized`); it runs in eval mode, and its modes and flags are restored afterwards.
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1]; never modified.
        target: the class whose score is explained: an int, or one int per image.
        baseline: the image that means "nothing": a number in [0, 1] (0 = black, default) or a tensor with values
            in [0, 1] that broadcasts to ``x``'s shape (a blurred copy, a grey image).
        steps: the number of points on the path (>= 1 for Gauss-Legendre, >= 2 for the Riemann sums).
        method: the quadrature rule, one of ``"gausslegendre"`` (default, as Captum), ``"riemann_right"``,
            ``"riemann_left"``, ``"riemann_middle"``, ``"riemann_trapezoid"``.
        batch_size: the number of scaled images per forward and backward pass, which bounds the memory used
            (default: ``steps``, one image's whole path per pass). It does not change the result.
        output: how to get the class scores (N, classes) from what the model returns when that is not a tensor: an
            int indexes a tuple (``output=0``), a str is a dict key or an attribute (``output="logits"``), a callable
            maps the output to the scores; None (default) expects a tensor.
        progress: show a progress bar over the passes (``False``: none).
        return_info: also return an :class:`IntegratedGradientsInfo` with the completeness gap (this costs two
            more forward passes over the images and their baselines).

    Returns:
        The attributions, shaped like ``x`` (signed; they sum, per image, to about the score difference between
        the image and its baseline), in ``x``'s dtype and on ``x``'s device. With ``return_info=True``, the pair
        ``(attributions, info)``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.attribution.integrated_gradients import integrated_gradients
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
        >>> x = torch.rand(2, 3, 4, 4)
        >>> attributions, info = integrated_gradients(model, x, 1, progress=False, return_info=True)
        >>> attributions.shape
        torch.Size([2, 3, 4, 4])
        >>> bool(info.delta.abs().max() < 1e-5)  # a linear model: the path integral is exact
        True
    """
    alphas, weights = path_points(steps, method)
    batch_size = steps if batch_size is None else check_number(batch_size, "batch_size", int)
    with gradients_on():
        batch, single = model_input(model, x)
        base = baseline_batch(baseline, batch)
        targets = check_targets(target, batch.shape[0]).to(batch.device)
        passes = math.ceil(batch.shape[0] * steps / batch_size)
        with preserved(model), progress_bar(passes, "integrated gradients", progress) as bar:
            attributions = path_attributions(model, batch, base, targets, alphas, weights, batch_size, output,
                                             on_pass=bar.update)
            if return_info:
                info = _completeness(model, batch, base, targets, attributions, batch_size, output)
    result = to_caller(attributions, x, single)
    if not return_info:
        return result
    return result, IntegratedGradientsInfo(*(to_caller(value, x, single) for value in info))


# --- the path and its quadrature --------------------------------------------------------------------------------

def path_points(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, weights)``: where on the path from baseline (0) to image (1) the gradient is taken, and the weight
    of each point in the integral, as float64 arrays of ``steps`` values (the rules of Captum's
    ``approximation_methods``)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    least = 1 if method == "gausslegendre" else 2
    steps = check_count(steps, "steps", least, what=f"an int >= {least} for method={method!r}")
    if method == "gausslegendre":
        nodes, node_weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (1 + nodes), 0.5 * node_weights  # from [-1, 1] to [0, 1]
    n = steps
    weights = np.full(n, 1 / n)
    if method == "riemann_trapezoid":
        weights[[0, -1]] /= 2
        return np.linspace(0, 1, n), weights
    first, last = {"riemann_left": (0, 1 - 1 / n), "riemann_right": (1 / n, 1),
                   "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n))}[method]
    return np.linspace(first, last, n), weights


def baseline_batch(baseline, batch: torch.Tensor) -> torch.Tensor:
    """The baseline as a tensor shaped, typed and placed like ``batch`` (N, C, H, W): from a number in [0, 1] or
    from a tensor with values in [0, 1] that broadcasts to the images' shape."""
    if isinstance(baseline, torch.Tensor):
        try:
            shape = torch.broadcast_shapes(baseline.shape, batch.shape)
        except RuntimeError:
            shape = None
        if shape != batch.shape:
            raise ValueError(f"baseline must broadcast to the images' shape {tuple(batch.shape)}, got shape "
                             f"{tuple(baseline.shape)}")
        if not baseline.is_floating_point():
            raise TypeError(f"baseline must be a floating-point tensor with values in [0, 1], got {baseline.dtype}")
        values = baseline.detach()
        if not torch.isfinite(values).all() or float(values.min()) < 0 or float(values.max()) > 1:
            raise ValueError(f"baseline must have values in [0, 1], got values from {float(values.min())!r} to "
                             f"{float(values.max())!r}")
        return values.to(device=batch.device, dtype=batch.dtype).expand(batch.shape).clone()
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)) or not 0 <= baseline <= 1:
        raise ValueError(f"baseline must be a number in [0, 1] or an image tensor with values in [0, 1] that "
                         f"broadcasts to the images' shape, got {baseline!r}")
    return torch.full_like(batch, float(baseline))


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    # sums of many bfloat16/float16 gradients would lose most of their digits
    return torch.promote_types(dtype, torch.float32)


def path_attributions(model: nn.Module, batch: torch.Tensor, base: torch.Tensor, targets: torch.Tensor,
                      alphas: np.ndarray, weights: np.ndarray, batch_size: int, output=None,
                      on_pass=None) -> torch.Tensor:
    """Integrated gradients of prepared images: ``batch`` and ``base`` (N, C, H, W) on the model's device and in
    its dtype (the range is not checked here: SmoothGrad passes noisy images), ``targets`` (N,) int64. The path
    points of all images are enumerated image by image and evaluated ``batch_size`` at a time; ``on_pass`` is
    called after each pass. Returns (N, C, H, W) attributions in float32 or float64."""
    n, steps = batch.shape[0], len(alphas)
    acc = _accumulation_dtype(batch.dtype)
    alpha_t = torch.as_tensor(alphas, dtype=batch.dtype, device=batch.device)
    weight_t = torch.as_tensor(weights, dtype=acc, device=batch.device)
    total = torch.zeros(batch.shape, dtype=acc, device=batch.device)
    for start in range(0, n * steps, batch_size):
        flat = torch.arange(start, min(start + batch_size, n * steps), device=batch.device)
        image, step = flat // steps, flat % steps
        scale = alpha_t[step].view(-1, 1, 1, 1)
        scaled = base[image] + scale * (batch[image] - base[image])
        grad = target_gradient(model, scaled, targets[image], output)
        total.index_add_(0, image, grad.to(acc) * weight_t[step].view(-1, 1, 1, 1))
        if on_pass is not None:
            on_pass()
    return total * (batch.to(acc) - base.to(acc))


def _completeness(model, batch, base, targets, attributions, batch_size, output):
    """``(delta, scores, baseline_scores)``, each (N,): the completeness gap and the two scores it compares."""
    scores = target_scores(model, batch, targets, batch_size, output)
    baseline_scores = target_scores(model, base, targets, batch_size, output)
    delta = attributions.flatten(1).sum(1) - (scores - baseline_scores)
    return delta, scores, baseline_scores
