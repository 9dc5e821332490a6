"""Adversarial images: small changes to an input that change a classifier's answer.

* :func:`fgsm` -- the fast gradient sign method (Goodfellow, Shlens & Szegedy 2015): one step of size ``eps`` along
  the sign of the loss gradient.
* :func:`pgd` -- projected gradient descent (Madry et al. 2018): many FGSM steps of size ``alpha``, each followed by
  a projection back into the ``eps``-box around the original image.
* :func:`lbfgs_attack` -- Szegedy et al. 2014's box-constrained L-BFGS attack: the smallest L2 change that makes the
  model answer a chosen class.
* :func:`fooling_images` (from :mod:`dlviz.fooling`) -- images no human would recognize, classified with high
  confidence (Nguyen, Yosinski & Clune 2015).

Images are float tensors in [0, 1], (N, C, H, W) or a single (C, H, W), returned in the same form on the input's
device. Normalization belongs inside the model, so ``eps`` and ``alpha`` are in pixel units: ``8/255`` lets every
pixel move by 8 grey levels. Untargeted FGSM and PGD (``random_start=False``) give exactly the images of
torchattacks' ``FGSM`` and ``PGD`` for the same arguments; the targeted variants match torchattacks in its
``set_mode_targeted_by_label`` mode (``y`` holds the target classes).

Every function runs the model in eval mode with its parameters frozen and restores both afterwards; the caller's
tensor is never modified.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validate import as_image_batch, check_targets, restore_batch
from .fooling import FoolingResult, fooling_images
from .hooks import model_device, preserved

__all__ = ["fgsm", "pgd", "lbfgs_attack", "fooling_images", "FoolingResult"]


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


def _labels(model_output: torch.Tensor, y, n: int, name: str) -> torch.Tensor:
    if model_output.dim() != 2:
        raise ValueError(f"the model must return class scores of shape (N, classes), got {tuple(model_output.shape)}")
    return check_targets(y, n, model_output.shape[1], name=name).to(model_output.device)


def _prepare(model: nn.Module, x, name: str = "x"):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch, single = as_image_batch(x, name)
    return batch, single, model_device(model)


def fgsm(model: nn.Module, x: torch.Tensor, y, eps: float, *, targeted: bool = False) -> torch.Tensor:
    """Fast gradient sign method: ``x + eps * sign(grad of the cross-entropy)``, clamped to [0, 1].

    Args:
        model: a classifier taking images in [0, 1] and returning logits (N, classes).
        x: images (N, C, H, W) or one (C, H, W), values in [0, 1].
        y: the true classes (untargeted: the loss of ``y`` is raised) or, with ``targeted=True``, the classes to
            reach (their loss is lowered); an int or one int per image.
        eps: the step in pixel units, in [0, 1] (``8/255`` = 8 grey levels).
        targeted: step towards ``y`` instead of away from it.

    Returns:
        The adversarial images, same shape as ``x``, values in [0, 1], every pixel within ``eps`` of ``x``.
    """
    batch, single, device = _prepare(model, x)
    eps = _check_step(eps, "eps")
    with preserved(model), torch.enable_grad():
        images = batch.detach().clone().to(device).requires_grad_(True)
        outputs = model(images)
        labels = _labels(outputs, y, len(images), "target" if targeted else "y")
        cost = F.cross_entropy(outputs, labels)
        if targeted:
            cost = -cost
        grad = torch.autograd.grad(cost, images)[0]
        adv = torch.clamp(images + eps * grad.sign(), min=0, max=1).detach()
    return restore_batch(adv.to(x.device), single)


def pgd(model: nn.Module, x: torch.Tensor, y, eps: float, alpha: float | None = None, steps: int = 10, *,
        random_start: bool = True, targeted: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent in the L-infinity ball: ``steps`` FGSM steps of size ``alpha``, each projected back
    into ``[x - eps, x + eps]`` and [0, 1].

    Args:
        model: a classifier taking images in [0, 1] and returning logits (N, classes).
        x: images (N, C, H, W) or one (C, H, W), values in [0, 1].
        y: true classes, or with ``targeted=True`` the classes to reach; an int or one int per image.
        eps: the budget in pixel units, in [0, 1].
        alpha: the step in pixel units (default ``2.5 * eps / steps``, Madry et al.'s choice).
        steps: number of gradient steps (>= 0).
        random_start: start from a uniformly random point of the eps-ball (drawn with ``generator`` if given).
        targeted: move towards ``y`` instead of away from it.

    Returns:
        Adversarial images, same shape as ``x``, in [0, 1], with ``|adv - x| <= eps`` everywhere.
    """
    batch, single, device = _prepare(model, x)
    eps = _check_step(eps, "eps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    alpha = _check_step(2.5 * eps / max(steps, 1) if alpha is None else alpha, "alpha")
    with preserved(model), torch.enable_grad():
        images = batch.detach().clone().to(device)
        with torch.no_grad():
            labels = _labels(model(images[:1]), y, len(images), "target" if targeted else "y")
        adv = images.clone()
        if random_start:
            where = generator.device if generator is not None else device
            noise = torch.empty(images.shape, dtype=images.dtype, device=where).uniform_(-eps, eps, generator=generator)
            adv = torch.clamp(adv + noise.to(device), min=0, max=1).detach()
        for _ in range(steps):
            adv.requires_grad_(True)
            cost = F.cross_entropy(model(adv), labels)
            if targeted:
                cost = -cost
            grad = torch.autograd.grad(cost, adv)[0]
            # the same arithmetic, in the same order, as torchattacks.PGD
            adv = adv.detach() + alpha * grad.sign()
            delta = torch.clamp(adv - images, min=-eps, max=eps)
            adv = torch.clamp(images + delta, min=0, max=1).detach()
    return restore_batch(adv.to(x.device), single)


def lbfgs_attack(model: nn.Module, x: torch.Tensor, target, *, c: float = 1.0, search_steps: int = 6,
                 max_iter: int = 60, return_info: bool = False):
    """Szegedy et al. 2014's box-constrained L-BFGS attack: for each image, a small change ``r`` such that the model
    answers ``target`` for ``x + r``, with ``x + r`` kept in [0, 1].

    It minimizes ``c * |r|^2 + cross_entropy(model(x + r), target)`` over ``x + r`` in the box [0, 1] with
    L-BFGS-B (SciPy), and searches over ``c`` (the weight of the distortion) per image: ``c`` grows tenfold while
    the attack succeeds and is bisected once it has failed, and the successful image with the smallest ``|r|`` is
    kept. (Szegedy et al. write ``|r|``; its square is smooth at ``r = 0`` and leads to the same trade-off.) The
    images of a batch are optimized together: their problems are independent, so the sum is minimized in one go.

    Args:
        model: a classifier taking images in [0, 1] and returning logits (N, classes).
        x: images (N, C, H, W) or one (C, H, W) in [0, 1].
        target: the class to reach, an int or one per image.
        c: the first weight of the distortion term (> 0).
        search_steps: how many values of ``c`` are tried.
        max_iter: L-BFGS-B iterations per value of ``c``.
        return_info: also return a dict with ``success`` (bool tensor (N,)) and ``l2`` (the L2 norm of each image's
            change, tensor (N,)).

    Returns:
        Adversarial images, same form as ``x``, in [0, 1] (or ``(images, info)``). An image for which no ``c``
        succeeded is returned as the attempt with the smallest ``c`` (with a warning).
    """
    from scipy.optimize import minimize

    batch, single, device = _prepare(model, x)
    if isinstance(c, bool) or not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
        raise ValueError(f"c must be a positive number, got {c!r}")
    if isinstance(search_steps, bool) or not (isinstance(search_steps, int) and search_steps >= 1):
        raise ValueError(f"search_steps must be an int >= 1, got {search_steps!r}")
    with preserved(model):
        images = batch.detach().clone().to(device)
        n, shape = len(images), images.shape
        with torch.no_grad():
            targets = _labels(model(images[:1]), target, n, "target")
        original = images.double().cpu().numpy().reshape(n, -1)

        def objective(flat, weights):
            candidate = torch.from_numpy(flat.reshape(shape)).to(device, images.dtype).requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(candidate), targets, reduction="sum")
            grad = torch.autograd.grad(loss, candidate)[0].double().cpu().numpy().reshape(n, -1)
            r = flat.reshape(n, -1) - original
            value = float(loss.detach()) + float((weights * (r * r).sum(1)).sum())
            return value, (grad + 2 * weights[:, None] * r).ravel()

        best = images.clone()
        best_norm = torch.full((n,), math.inf)
        fallback, fallback_weight = images.clone(), np.full(n, math.inf)
        weights, low, high = np.full(n, float(c)), np.zeros(n), np.full(n, math.inf)
        for _ in range(search_steps):
            solution = minimize(objective, original.ravel().copy(), args=(weights,), jac=True, method="L-BFGS-B",
                                bounds=[(0.0, 1.0)] * original.size, options={"maxiter": max_iter})
            candidate = torch.from_numpy(solution.x.reshape(shape)).to(device, images.dtype).clamp(0, 1)
            with torch.no_grad():
                hit = (model(candidate).argmax(1) == targets).cpu().numpy()
            norms = (candidate - images).flatten(1).norm(dim=1).cpu()
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
        success = torch.isfinite(best_norm)
        best[~success.to(device)] = fallback[~success.to(device)]
        norms = (best - images).flatten(1).norm(dim=1).cpu()
    if not bool(success.all()):
        warnings.warn(f"lbfgs_attack: {int((~success).sum())} of {n} images did not reach their target; "
                      f"try a smaller c, more search_steps or a larger max_iter", stacklevel=2)
    adv = restore_batch(best.to(x.device), single)
    if return_info:
        return adv, {"success": success, "l2": norms}
    return adv
