"""Fooling images (Nguyen, Yosinski & Clune 2015): pictures that no human would recognize but that a classifier
assigns to a class with near certainty.

Two ways to find them, both from random noise:

* ``method="gradient"``: gradient ascent on the log-probability of the target class. Each step is normalized per
  image (the mean absolute change of a pixel is ``lr``); the model sees the image rounded to 8 bits (a
  straight-through rounding, so that what is optimized is what is measured); an image stops changing once it
  reaches the confidence.
* ``method="evolution"``: a direct-encoding evolutionary algorithm, MAP-Elites across the target classes as in
  Nguyen et al.: an archive keeps, for every target class, the best image found so far (its *elite*). Each
  generation, ``population`` children are made by mutating elites chosen at random among the classes still below
  the confidence (each pixel moves by a Gaussian step with probability ``mutation_rate``, a rate halved every
  ``halve_every`` generations); they are evaluated in one batched forward pass, and any child that beats the elite
  of *any* class takes its place. Genomes are 8-bit images, so the confidences are exactly those of 8-bit images.

Confidence is the softmax probability of the target class of the image rounded to 8 bits (``round(255 x) / 255``),
the form in which an image is saved. :func:`fooling_images` returns the images; ``return_info=True`` adds a
:class:`FoolingInfo` with the confidences and what the search cost.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import _precision
from .._model import class_scores, gradients_on, input_shape, model_device, model_dtype, preserved
from .._progress import progress_bar
from .._validate import check_number, check_targets

__all__ = ["fooling_images", "FoolingInfo"]


@dataclass(frozen=True)
class FoolingInfo:
    """What :func:`fooling_images` reports with ``return_info=True``; every tensor is on the CPU.

    Attributes:
        confidences: (N,) float32 softmax probability of each image's class, measured on the returned (8-bit)
            images.
        labels: (N,) int64 classes, one per image.
        reached: (N,) bool, ``confidences >= confidence``.
        iterations: (N,) steps (gradient) or generations (evolution) until the image first reached the confidence;
            -1 where it did not.
        seconds: (N,) seconds from the start until then; NaN where it did not.
        method: ``"gradient"`` or ``"evolution"``.
        evaluations: images passed through the model in all (a measure of work).
    """
    confidences: torch.Tensor
    labels: torch.Tensor
    reached: torch.Tensor
    iterations: torch.Tensor
    seconds: torch.Tensor
    method: str
    evaluations: int


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 255) / 255


def fooling_images(model: nn.Module, labels, *, method: str = "gradient", shape=None, confidence: float = 0.99,
                   steps: int | None = None, lr: float = 0.02, population: int = 128, mutation_rate: float = 0.05,
                   halve_every: int = 200, generator: torch.Generator | None = None, output=None,
                   progress: bool = True, return_info: bool = False, precision: str = "fp32"):
    """Unrecognizable images that ``model`` classifies as each of ``labels`` with at least ``confidence``.

    Args:
        model: a classifier taking images in [0, 1] and returning class scores (logits) for at least 2 classes.
        labels: the classes to reach, an int or a sequence/tensor of ints (``range(10)`` for every digit); one
            image each.
        method: ``"gradient"`` (ascent from noise) or ``"evolution"`` (MAP-Elites with pixel mutations).
        shape: the image shape (C, H, W), positive ints; None reads ``model.input_shape`` or tries MNIST, CIFAR
            and ImageNet shapes with the channel count of the model's first convolution.
        confidence: the probability to reach, in (0, 1), measured after rounding to 8 bits.
        steps: the most gradient steps or generations, an int >= 0 (default 500 for gradient, 3000 for evolution).
        lr: gradient only: the mean absolute change of a pixel per step (> 0).
        population: evolution only: children per generation (evaluated as one batch).
        mutation_rate: evolution only: the probability that a pixel is mutated in the first generations, in (0, 1].
        halve_every: evolution only: the mutation rate halves every this many generations (down to one pixel).
        generator: a torch.Generator for the noise (default: the global generator).
        output: how to get the class scores (N, classes) from what the model returns, when that is not a tensor:
            an int indexes a tuple, a str is a dict key or attribute, a callable maps the output to the scores.
        progress: show a progress bar.
        return_info: also return a :class:`FoolingInfo` (confidences, which labels were reached, when, at what
            cost).
        precision: the search's forward and backward passes: "fp32" (default: the model's own arithmetic),
            "bf16" (bfloat16 autocast) or "auto" (bf16 for float32 conv nets and MLPs on a device with native
            bfloat16, else fp32); see :func:`dlviz.fit`. The returned confidences (``info``) are always measured in
            the model's own arithmetic, so a label the bfloat16 search counted as reached can fall just short.

    Returns:
        Images (N, C, H, W), float32 on the model's device, in [0, 1], every value a multiple of 1/255 (8-bit
        exact); with ``return_info=True`` ``(images, info)``. Labels that were not reached within ``steps`` keep
        their best image; ``info.reached`` says which.

    Example:
        >>> import torch, dlviz
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3, bias=False))
        >>> _ = model[1].weight.data.mul_(10)   # scores with a wide range: every class can be made certain
        >>> images, info = dlviz.fooling_images(model, [0, 2], shape=(1, 4, 4), confidence=0.9, progress=False,
        ...                                     generator=torch.Generator().manual_seed(0), return_info=True)
        >>> images.shape, info.reached.tolist(), model(images).argmax(1).tolist()
        (torch.Size([2, 1, 4, 4]), [True, True], [0, 2])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in ("gradient", "evolution"):
        raise ValueError(f"method must be 'gradient' or 'evolution', got {method!r}")
    if isinstance(confidence, bool) or not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ValueError(f"confidence must be a probability in (0, 1), got {confidence!r}")
    if isinstance(labels, range):
        labels = list(labels)
    if torch.as_tensor(labels).numel() == 0:
        raise ValueError("labels is empty: give a class index or a sequence of them, e.g. range(10)")
    if steps is not None:  # None: the method's default
        check_number(steps, "steps", int, allow_zero=True)
    check_number(lr, "lr")
    check_number(population, "population", int)
    check_number(halve_every, "halve_every", int)
    if check_number(mutation_rate, "mutation_rate") > 1:
        raise ValueError(f"mutation_rate must be in (0, 1], got {mutation_rate!r}")
    with gradients_on(), preserved(model):
        shape = input_shape(model, shape, output=output)
        device, dtype = model_device(model), model_dtype(model)
        plan = _precision.plan(precision, model, device, channels_last=False)
        with torch.no_grad():
            probe = torch.zeros(1, *shape, device=device, dtype=dtype)
            classes = class_scores(model, probe, output, need_classes=True).shape[1]
        labels = check_targets(labels, torch.as_tensor(labels).numel(), classes, name="labels")
        task = _Task(model, output, dtype, device, shape, confidence, generator, progress, plan)
        if method == "gradient":
            images, info = _gradient(task, labels, 500 if steps is None else steps, lr)
        else:
            images, info = _evolution(task, labels, 3000 if steps is None else steps, population, mutation_rate,
                                      halve_every)
    return (images, info) if return_info else images


@dataclass
class _Task:
    """What both search methods share."""
    model: nn.Module
    output: object
    dtype: torch.dtype
    device: torch.device
    shape: tuple
    confidence: float
    generator: torch.Generator | None
    progress: bool
    plan: _precision.Plan  # the search's arithmetic; info() measures in the model's own

    def rand(self, *size) -> torch.Tensor:
        """Uniform [0, 1) float32 noise on the model's device, drawn with the task's generator."""
        where = self.generator.device if self.generator is not None else torch.device("cpu")
        return torch.rand(size, generator=self.generator, device=where).to(self.device)

    def randn(self, *size) -> torch.Tensor:
        where = self.generator.device if self.generator is not None else torch.device("cpu")
        return torch.randn(size, generator=self.generator, device=where).to(self.device)

    def info(self, images, labels, iterations, seconds, method, evaluations) -> FoolingInfo:
        """The report on the final ``images``, with confidences measured on them."""
        with torch.no_grad():
            scores = class_scores(self.model, images, self.output, dtype=self.dtype, need_classes=True, float32=True)
            probabilities = F.softmax(scores, dim=1)
            conf = probabilities.gather(1, labels.to(self.device)[:, None])[:, 0].float().cpu()
        return FoolingInfo(confidences=conf, labels=labels, reached=conf >= self.confidence, iterations=iterations,
                           seconds=seconds, method=method, evaluations=evaluations)


def _start_noise(task: _Task, n: int) -> torch.Tensor:
    """The gradient method's starting images (n, C, H, W): uniform noise, rounded to 8 bits."""
    return _quantize(task.rand(n, *task.shape))


def _gradient(task: _Task, labels, steps, lr):
    n = len(labels)
    targets = labels.to(task.device)
    x = _start_noise(task, n)
    iterations = torch.full((n,), -1, dtype=torch.long)
    seconds = torch.full((n,), math.nan)
    start = time.perf_counter()
    evaluations = 0
    with progress_bar(steps + 1, "fooling (gradient)", task.progress) as bar:
        for step in range(steps + 1):
            x.requires_grad_(True)
            # straight-through rounding: the forward pass sees the 8-bit image, the gradient flows to x unchanged
            seen = x + (_quantize(x) - x).detach()
            scores = class_scores(task.model, seen, task.output, dtype=task.dtype, plan=task.plan, need_classes=True,
                                  float32=True)
            log_p = F.log_softmax(scores, dim=1)
            log_p = log_p.gather(1, targets[:, None])[:, 0]
            grad = torch.autograd.grad(log_p.sum(), x)[0]
            evaluations += n
            bar.update()
            newly = (log_p.detach().exp().cpu() >= task.confidence) & (iterations < 0)
            iterations[newly] = step
            seconds[newly] = time.perf_counter() - start
            active = (iterations < 0).to(task.device).view(-1, *[1] * len(task.shape))
            if not bool(active.any()) or step == steps:
                break
            with torch.no_grad():
                scale = grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, *[1] * len(task.shape))
                x = torch.where(active, (x + lr * grad / scale).clamp(0, 1), x).detach()
    images = _quantize(x.detach())
    return images, task.info(images, labels, iterations, seconds, "gradient", evaluations + n)


def _evolution(task: _Task, labels, steps, population, mutation_rate, halve_every):
    cells = torch.unique(labels)  # one archive cell per distinct class
    targets = cells.to(task.device)
    k, pixels = len(cells), math.prod(task.shape)

    def evaluate(genomes):  # uint8 (P, C, H, W) -> probabilities of the cells' classes (P, k)
        with torch.no_grad():
            scores = class_scores(task.model, genomes.float() / 255, task.output, dtype=task.dtype, plan=task.plan,
                                  need_classes=True, float32=True)
            return F.softmax(scores, dim=1)[:, targets]

    start = time.perf_counter()
    # the first generation: random images; each cell takes the best one for its class
    children = (task.rand(population, *task.shape) * 256).clamp(max=255).to(torch.uint8)
    fitness, index = evaluate(children).max(0)
    elites = children[index].clone()
    evaluations = population
    iterations = torch.full((k,), -1, dtype=torch.long)
    seconds = torch.full((k,), math.nan)
    with progress_bar(steps + 1, "fooling (evolution)", task.progress) as bar:
        for generation in range(steps + 1):
            bar.update()
            newly = (fitness.cpu() >= task.confidence) & (iterations < 0)
            iterations[newly] = generation
            seconds[newly] = time.perf_counter() - start
            if bool((iterations >= 0).all()) or generation == steps:
                break
            rate = max(mutation_rate * 0.5 ** (generation // halve_every), 1.0 / pixels)
            # parents come from the cells still below the confidence: the effort goes where it is needed
            pool = torch.nonzero(fitness < task.confidence)[:, 0]
            parents = elites[pool[(task.rand(population) * len(pool)).long().clamp(max=len(pool) - 1)]]
            mask = task.rand(population, *task.shape) < rate
            # a mutated pixel moves by a Gaussian step (std: half the range), clipped to the range
            moved = (parents.float() + 128 * task.randn(population, *task.shape)).clamp(0, 255)
            children = torch.where(mask, moved.round(), parents.float()).to(torch.uint8)
            best, index = evaluate(children).max(0)
            evaluations += population
            better = best > fitness
            fitness = torch.where(better, best, fitness)
            elites[better] = children[index[better]]
    position = {int(c): i for i, c in enumerate(cells)}
    order = torch.tensor([position[int(t)] for t in labels])
    images = elites[order.to(task.device)].float() / 255
    return images, task.info(images, labels, iterations[order], seconds[order], "evolution", evaluations)
