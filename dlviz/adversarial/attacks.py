"""Adversarial images: small changes to an input that change a classifier's answer.

* :func:`fgsm` -- the fast gradient sign method (Goodfellow, Shlens & Szegedy 2015): one step of size ``eps`` along
  the sign of the loss gradient.
* :func:`pgd` -- projected gradient descent (Madry et al. 2018): many FGSM steps of size ``alpha``, each followed by
  a projection back into the ``eps``-box around the original image.
* :func:`lbfgs_attack` -- Szegedy et al. 2014's box-constrained L-BFGS attack: the smallest L2 change that makes the
  model answer a chosen class; ``return_info=True`` adds an :class:`LBFGSInfo`.
* :func:`fooling_images` (from :mod:`dlviz.adversarial.fooling`) -- images no human would recognize, classified with
  high confidence (Nguyen, Yosinski & Clune 2015).

The class argument is ``labels``, as in torchattacks: the true classes of an untargeted attack, the classes to reach
of a targeted one. Images ``x`` are float tensors in [0, 1], (N, C, H, W) or a single (C, H, W); the model sees a
copy in its own dtype on its own device, and the result comes back in ``x``'s form, dtype and device. Normalization
belongs inside the model, so ``eps`` and ``alpha`` are in pixel units: ``8/255`` lets every pixel move by 8 grey
levels. Untargeted FGSM and PGD (``random_start=False``) give exactly the images of torchattacks' ``FGSM`` and
``PGD`` for the same arguments; the targeted variants match torchattacks in its ``set_mode_targeted_by_label`` mode.

Every function runs the model in eval mode with its parameters frozen and restores both afterwards, works inside
``torch.no_grad()`` and ``torch.inference_mode()``, and never modifies the caller's tensor.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._model import class_scores, gradients_on, model_input, preserved, to_caller
from .._progress import progress_bar
from .._validate import check_count, check_targets

__all__ = ["fgsm", "pgd", "lbfgs_attack", "LBFGSInfo"]


@dataclass(frozen=True)
class LBFGSInfo:
    """What :func:`lbfgs_attack` reports with ``return_info=True``.

    Attributes:
        success: (N,) bool, the model answers the requested class for the returned image.
        l2: (N,) the L2 norm of each image's change ``adv - x`` (in ``x``'s dtype).
    """
    success: torch.Tensor
    l2: torch.Tensor


def _check_step(value, name: str) -> float:
    """A pixel-unit budget or step: a finite number in [0, 1]."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in pixel units (e.g. 8/255), got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be >= 0 (pixel units, e.g. 8/255), got {value}")
    if value > 1:
        raise ValueError(f"{name} is in pixel units of [0, 1] images (8/255 means 8 grey levels), got {value}; "
                         f"did you mean {value:g}/255?")
    return value


def _start(model: nn.Module, x):
    """``(start, single, dtype)``: the checked images as a new (N, C, H, W) tensor on the model's device, in the
    wider of ``x``'s and the model's dtype (so that budgets hold in the caller's precision even for a bfloat16
    model); ``dtype`` is the model's, in which it sees every image."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    copy, single = model_input(model, x)
    work = torch.promote_types(x.dtype, copy.dtype)
    start = x.detach().reshape(copy.shape).to(device=copy.device, dtype=work, copy=True)
    return start, single, copy.dtype


def _labels(scores: torch.Tensor, labels, n: int) -> torch.Tensor:
    return check_targets(labels, n, scores.shape[1], name="labels").to(scores.device)


def fgsm(model: nn.Module, x: torch.Tensor, labels, eps: float, *, targeted: bool = False,
         output=None) -> torch.Tensor:
    """Fast gradient sign method: ``x + eps * sign(grad of the cross-entropy)``, clamped to [0, 1].

    Args:
        model: a classifier taking images in [0, 1] and returning class scores (logits) for at least 2 classes.
        x: images (N, C, H, W) or one (C, H, W), float values in [0, 1].
        labels: the true classes (untargeted: their loss is raised) or, with ``targeted=True``, the classes to
            reach (their loss is lowered); an int or one int per image, in [0, classes).
        eps: the step in pixel units, in [0, 1] (``8/255`` = 8 grey levels).
        targeted: step towards ``labels`` instead of away from them.
        output: how to get the class scores (N, classes) from what the model returns, when that is not a tensor:
            an int indexes a tuple, a str is a dict key or attribute, a callable maps the output to the scores.

    Returns:
        The adversarial images, same shape, dtype and device as ``x``, values in [0, 1], every pixel within
        ``eps`` of ``x``.

    Example:
        >>> import torch, dlviz
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> x = torch.full((2, 3, 2, 2), 0.5)
        >>> adv = dlviz.fgsm(model, x, [0, 2], eps=0.1)
        >>> adv.shape, round(float((adv - x).abs().max()), 4)
        (torch.Size([2, 3, 2, 2]), 0.1)
    """
    eps = _check_step(eps, "eps")
    with gradients_on(), preserved(model):
        images, single, dtype = _start(model, x)
        images.requires_grad_(True)
        scores = class_scores(model, images, output, dtype=dtype, need_classes=True)
        cost = F.cross_entropy(scores, _labels(scores, labels, len(images)))
        if targeted:
            cost = -cost
        grad = torch.autograd.grad(cost, images)[0]
        adv = torch.clamp(images + eps * grad.sign(), min=0, max=1).detach()
    return to_caller(adv, x, single)


def pgd(model: nn.Module, x: torch.Tensor, labels, eps: float, alpha: float | None = None, steps: int = 10, *,
        random_start: bool = True, targeted: bool = False, generator: torch.Generator | None = None,
        output=None, progress: bool = True) -> torch.Tensor:
    """Projected gradient descent in the L-infinity ball: ``steps`` FGSM steps of size ``alpha``, each projected back
    into ``[x - eps, x + eps]`` and [0, 1].

    Args:
        model: a classifier taking images in [0, 1] and returning class scores (logits) for at least 2 classes.
        x: images (N, C, H, W) or one (C, H, W), float values in [0, 1].
        labels: true classes, or with ``targeted=True`` the classes to reach; an int or one int per image.
        eps: the budget in pixel units, in [0, 1].
        alpha: the step in pixel units, in [0, 1] (default ``2.5 * eps / steps``, Madry et al.'s choice).
        steps: number of gradient steps (>= 0).
        random_start: start from a uniformly random point of the eps-ball (drawn with ``generator`` if given).
        targeted: move towards ``labels`` instead of away from them.
        generator: a torch.Generator for the random start (default: the global generator).
        output: how to get the class scores (N, classes) from what the model returns, when that is not a tensor:
            an int indexes a tuple, a str is a dict key or attribute, a callable maps the output to the scores.
        progress: show a tqdm bar over the steps (``False``: none).

    Returns:
        Adversarial images, same shape, dtype and device as ``x``, in [0, 1], with ``|adv - x| <= eps``.

    Example:
        >>> import torch, dlviz
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> adv = dlviz.pgd(model, x, 1, eps=0.1, alpha=0.05, steps=3, random_start=False, progress=False)
        >>> adv.shape, bool((adv - x).abs().max() <= 0.1 + 1e-6)
        (torch.Size([1, 3, 2, 2]), True)
    """
    eps = _check_step(eps, "eps")
    check_count(steps, "steps", 0)
    alpha = _check_step(2.5 * eps / max(steps, 1) if alpha is None else alpha, "alpha")
    with gradients_on(), preserved(model):
        images, single, dtype = _start(model, x)
        with torch.no_grad():
            first = class_scores(model, images[:1], output, dtype=dtype, need_classes=True)
            targets = _labels(first, labels, len(images))
        adv = images.clone()
        if random_start:
            where = generator.device if generator is not None else images.device
            noise = torch.empty(images.shape, dtype=images.dtype, device=where).uniform_(-eps, eps, generator=generator)
            adv = torch.clamp(adv + noise.to(images.device), min=0, max=1).detach()
        with progress_bar(steps, "pgd", progress, unit="step") as bar:
            for _ in range(steps):
                adv.requires_grad_(True)
                cost = F.cross_entropy(class_scores(model, adv, output, dtype=dtype, need_classes=True), targets)
                if targeted:
                    cost = -cost
                grad = torch.autograd.grad(cost, adv)[0]
                # the same arithmetic, in the same order, as torchattacks.PGD
                adv = adv.detach() + alpha * grad.sign()
                delta = torch.clamp(adv - images, min=-eps, max=eps)
                adv = torch.clamp(images + delta, min=0, max=1).detach()
                bar.update()
    return to_caller(adv, x, single)


def lbfgs_attack(model: nn.Module, x: torch.Tensor, labels, *, c: float = 1.0, search_steps: int = 6,
                 max_iter: int = 60, output=None, progress: bool = True, return_info: bool = False):
    """Szegedy et al. 2014's box-constrained L-BFGS attack: for each image, a small change ``r`` such that the model
    answers ``labels`` for ``x + r``, with ``x + r`` kept in [0, 1].

    It minimizes ``c * |r|^2 + cross_entropy(model(x + r), labels)`` over ``x + r`` in the box [0, 1] with
    L-BFGS-B (SciPy), and searches over ``c`` (the weight of the distortion) per image: ``c`` grows tenfold while
    the attack succeeds and is bisected once it has failed, and the successful image with the smallest ``|r|`` is
    kept. (Szegedy et al. write ``|r|``; its square is smooth at ``r = 0`` and leads to the same trade-off.) The
    images of a batch are optimized together: their problems are independent, so the sum is minimized in one go.

    Args:
        model: a classifier taking images in [0, 1] and returning class scores (logits) for at least 2 classes.
        x: images (N, C, H, W) or one (C, H, W), float values in [0, 1].
        labels: the classes to reach, an int or one int per image.
        c: the first weight of the distortion term (a finite number > 0).
        search_steps: how many values of ``c`` are tried (an int >= 1).
        max_iter: L-BFGS-B iterations per value of ``c`` (an int >= 1).
        output: how to get the class scores (N, classes) from what the model returns, when that is not a tensor:
            an int indexes a tuple, a str is a dict key or attribute, a callable maps the output to the scores.
        progress: show a tqdm bar over the values of ``c`` (``False``: none).
        return_info: also return an :class:`LBFGSInfo` (which images succeeded, the L2 norm of each change).

    Returns:
        Adversarial images, same shape, dtype and device as ``x``, in [0, 1]; with ``return_info=True``
        ``(images, info)``. An image for which no ``c`` succeeded is returned as the attempt with the smallest
        ``c`` (with a warning).

    Example:
        >>> import torch, dlviz
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> adv, info = dlviz.adversarial.lbfgs_attack(model, x, 2, max_iter=20, progress=False, return_info=True)
        >>> bool(info.success[0]), int(model(adv).argmax())
        (True, 2)
    """
    from scipy.optimize import minimize

    if isinstance(c, bool) or not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
        raise ValueError(f"c must be a positive number, got {c!r}")
    check_count(search_steps, "search_steps", 1)
    check_count(max_iter, "max_iter", 1)
    with gradients_on(), preserved(model):
        images, single, dtype = _start(model, x)
        n, shape, device = len(images), images.shape, images.device
        with torch.no_grad():
            targets = _labels(class_scores(model, images[:1], output, dtype=dtype, need_classes=True), labels, n)
        original = images.double().cpu().numpy().reshape(n, -1)

        def as_model_input(flat):
            return torch.from_numpy(flat.reshape(shape)).to(device=device, dtype=dtype)

        def objective(flat, weights):
            candidate = as_model_input(flat).requires_grad_(True)
            scores = class_scores(model, candidate, output, dtype=dtype, need_classes=True)
            loss = F.cross_entropy(scores, targets, reduction="sum")
            grad = torch.autograd.grad(loss, candidate)[0].double().cpu().numpy().reshape(n, -1)
            r = flat.reshape(n, -1) - original
            value = float(loss.detach()) + float((weights * (r * r).sum(1)).sum())
            return value, (grad + 2 * weights[:, None] * r).ravel()

        best = images.to(dtype).clone()
        best_norm = torch.full((n,), math.inf)
        fallback, fallback_weight = best.clone(), np.full(n, math.inf)
        weights, low, high = np.full(n, float(c)), np.zeros(n), np.full(n, math.inf)
        with progress_bar(search_steps, "lbfgs_attack", progress, unit="c") as bar:
            for _ in range(search_steps):
                solution = minimize(objective, original.ravel().copy(), args=(weights,), jac=True, method="L-BFGS-B",
                                    bounds=[(0.0, 1.0)] * original.size, options={"maxiter": max_iter})
                # the image kept is the one the model judged, in the model's dtype
                candidate = as_model_input(solution.x).clamp(0, 1)
                with torch.no_grad():
                    scores = class_scores(model, candidate, output, dtype=dtype, need_classes=True)
                    hit = (scores.argmax(1) == targets).cpu().numpy()
                norms = (candidate.double() - images.double()).flatten(1).norm(dim=1).cpu()
                for i in range(n):
                    if hit[i]:
                        if norms[i] < best_norm[i]:
                            best[i], best_norm[i] = candidate[i], norms[i]
                        low[i] = weights[i]
                        weights[i] = weights[i] * 10 if math.isinf(high[i]) else (low[i] + high[i]) / 2
                    else:
                        if weights[i] < fallback_weight[i]:
                            fallback[i], fallback_weight[i] = candidate[i], weights[i]
                        high[i] = weights[i]
                        weights[i] = weights[i] / 10 if low[i] == 0 else (low[i] + high[i]) / 2
                bar.update()
        success = torch.isfinite(best_norm)
        best[~success.to(device)] = fallback[~success.to(device)]
    if not bool(success.all()):
        warnings.warn(f"lbfgs_attack: {int((~success).sum())} of {n} images did not reach their class; "
                      f"try a smaller c, more search_steps or a larger max_iter", stacklevel=2)
    adv = to_caller(best, x, single)
    if not return_info:
        return adv
    l2 = (adv - x.detach()).reshape(n, -1).norm(dim=1)
    return adv, LBFGSInfo(success=success.to(x.device), l2=l2)
