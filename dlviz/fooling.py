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
the form in which an image is saved.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._shape import input_shape
from ._validate import check_number, check_targets
from .hooks import model_device, preserved

__all__ = ["fooling_images", "FoolingResult"]


@dataclass
class FoolingResult:
    """What :func:`fooling_images` found; unpacks as ``images, confidences = result``.

    Attributes:
        images: (N, C, H, W) float tensor in [0, 1], every value a multiple of 1/255 (8-bit exact).
        confidences: (N,) softmax probability of each image's target class, measured on ``images``.
        targets: (N,) int64 target classes.
        reached: (N,) bool, ``confidences >= confidence``.
        iterations: (N,) steps (gradient) or generations (evolution) until the image first reached the confidence;
            -1 where it did not.
        seconds: (N,) seconds from the start until then; NaN where it did not.
        method: ``"gradient"`` or ``"evolution"``.
        evaluations: images passed through the model in all (a measure of work).
    """
    images: torch.Tensor
    confidences: torch.Tensor
    targets: torch.Tensor
    reached: torch.Tensor
    iterations: torch.Tensor
    seconds: torch.Tensor
    method: str
    evaluations: int

    def __iter__(self):
        yield self.images
        yield self.confidences

    def __len__(self) -> int:
        return len(self.targets)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 255) / 255


def fooling_images(model: nn.Module, targets, *, method: str = "gradient", shape=None, confidence: float = 0.99,
                   steps: int | None = None, lr: float = 0.02, population: int = 128, mutation_rate: float = 0.05,
                   halve_every: int = 200, generator: torch.Generator | None = None,
                   progress: bool = False) -> FoolingResult:
    """Unrecognizable images that ``model`` classifies as each of ``targets`` with at least ``confidence``.

    Args:
        model: a classifier taking images in [0, 1] and returning logits (N, classes).
        targets: the classes, an int or a sequence/tensor of ints (``range(10)`` for every digit); one image each.
        method: ``"gradient"`` (ascent from noise) or ``"evolution"`` (MAP-Elites with pixel mutations).
        shape: the image shape (C, H, W); None reads ``model.input_shape`` or tries MNIST, CIFAR and ImageNet shapes.
        confidence: the probability to reach, in (0, 1), measured after rounding to 8 bits.
        steps: the most gradient steps or generations (default 500 for gradient, 3000 for evolution).
        lr: gradient only: the mean absolute change of a pixel per step.
        population: evolution only: children per generation (evaluated as one batch).
        mutation_rate: evolution only: the probability that a pixel is mutated in the first generations.
        halve_every: evolution only: the mutation rate halves every this many generations (down to one pixel).
        generator: a torch.Generator for the noise (default: the global generator).
        progress: show a progress bar.

    Returns:
        A :class:`FoolingResult` (unpacks as ``images, confidences``). Targets that were not reached within
        ``steps`` keep their best image; check ``result.reached``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in ("gradient", "evolution"):
        raise ValueError(f"method must be 'gradient' or 'evolution', got {method!r}")
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ValueError(f"confidence must be a probability in (0, 1), got {confidence!r}")
    if isinstance(targets, range):
        targets = list(targets)
    if torch.as_tensor(targets).numel() == 0:
        raise ValueError("targets is empty: give a class index or a sequence of them, e.g. range(10)")
    if steps is not None:  # None: the method's default
        check_number(steps, "steps", int, allow_zero=True)
    check_number(lr, "lr")
    check_number(population, "population", int)
    check_number(halve_every, "halve_every", int)
    if check_number(mutation_rate, "mutation_rate") > 1:
        raise ValueError(f"mutation_rate must be in (0, 1], got {mutation_rate!r}")
    with preserved(model):
        shape = input_shape(model, shape)
        device = model_device(model)
        with torch.no_grad():
            classes = model(torch.zeros(1, *shape, device=device)).shape[1]
        targets = check_targets(targets, torch.as_tensor(targets).numel(), classes, name="targets")
        if method == "gradient":
            steps = 500 if steps is None else steps
            return _gradient(model, targets, shape, device, confidence, steps, lr, generator, progress)
        steps = 3000 if steps is None else steps
        return _evolution(model, targets, shape, device, confidence, steps, population, mutation_rate, halve_every,
                          generator, progress)


def _noise(shape, generator, device) -> torch.Tensor:
    where = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=where).to(device)


def _gradient(model, targets, shape, device, confidence, steps, lr, generator, progress) -> FoolingResult:
    n = len(targets)
    labels = targets.to(device)
    x = _quantize(_noise((n, *shape), generator, device))
    iterations = torch.full((n,), -1, dtype=torch.long)
    seconds = torch.full((n,), math.nan)
    best = torch.zeros(n)
    start = time.perf_counter()
    evaluations = 0
    for step in tqdm(range(steps + 1), desc="fooling (gradient)", disable=not progress, leave=False):
        with torch.enable_grad():
            x.requires_grad_(True)
            # straight-through rounding: the forward pass sees the 8-bit image, the gradient flows to x unchanged
            seen = x + (_quantize(x) - x).detach()
            log_p = F.log_softmax(model(seen), dim=1).gather(1, labels[:, None])[:, 0]
            grad = torch.autograd.grad(log_p.sum(), x)[0]
        evaluations += n
        best = log_p.detach().exp().cpu()
        newly = (best >= confidence) & (iterations < 0)
        iterations[newly] = step
        seconds[newly] = time.perf_counter() - start
        active = (iterations < 0).to(device)
        if not bool(active.any()) or step == steps:
            break
        with torch.no_grad():
            scale = grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, *[1] * len(shape))
            x = torch.where(active.view(-1, *[1] * len(shape)), (x + lr * grad / scale).clamp(0, 1), x).detach()
    images = _quantize(x.detach())
    with torch.no_grad():
        conf = F.softmax(model(images), dim=1).gather(1, labels[:, None])[:, 0].cpu()
    return FoolingResult(images=images, confidences=conf, targets=targets, reached=conf >= confidence,
                         iterations=iterations, seconds=seconds, method="gradient", evaluations=evaluations + n)


def _evolution(model, targets, shape, device, confidence, steps, population, mutation_rate, halve_every, generator,
               progress) -> FoolingResult:
    cells = torch.unique(targets)  # one archive cell per distinct class
    labels = cells.to(device)
    k, pixels = len(cells), math.prod(shape)
    where = generator.device if generator is not None else torch.device("cpu")

    def rand(*size):
        return torch.rand(size, generator=generator, device=where).to(device)

    def randn(*size):
        return torch.randn(size, generator=generator, device=where).to(device)

    def evaluate(genomes):  # uint8 (P, C, H, W) -> probabilities of the cells' classes (P, k)
        with torch.no_grad():
            return F.softmax(model(genomes.float() / 255), dim=1)[:, labels]

    start = time.perf_counter()
    # the first generation: random images; each cell takes the best one for its class
    children = (rand(population, *shape) * 256).clamp(max=255).to(torch.uint8)
    probs = evaluate(children)
    fitness, index = probs.max(0)
    elites = children[index].clone()
    evaluations = population
    iterations = torch.full((k,), -1, dtype=torch.long)
    seconds = torch.full((k,), math.nan)
    for generation in tqdm(range(steps + 1), desc="fooling (evolution)", disable=not progress, leave=False):
        newly = (fitness.cpu() >= confidence) & (iterations < 0)
        iterations[newly] = generation
        seconds[newly] = time.perf_counter() - start
        if bool((iterations >= 0).all()) or generation == steps:
            break
        rate = max(mutation_rate * 0.5 ** (generation // halve_every), 1.0 / pixels)
        # parents come from the cells still below the confidence: the effort goes where it is needed
        pool = torch.nonzero(fitness < confidence)[:, 0]
        parents = elites[pool[(rand(population) * len(pool)).long().clamp(max=len(pool) - 1)]]
        mask = rand(population, *shape) < rate
        # a mutated pixel moves by a Gaussian step (std: half the range), clipped to the range
        moved = (parents.float() + 128 * randn(population, *shape)).clamp(0, 255)
        children = torch.where(mask, moved.round(), parents.float()).to(torch.uint8)
        probs = evaluate(children)
        evaluations += population
        best, index = probs.max(0)
        better = best > fitness
        fitness = torch.where(better, best, fitness)
        elites[better] = children[index[better]]
    position = {int(c): i for i, c in enumerate(cells)}
    order = torch.tensor([position[int(t)] for t in targets])
    images = elites[order.to(device)].float() / 255
    with torch.no_grad():
        conf = F.softmax(model(images), dim=1).gather(1, targets.to(device)[:, None])[:, 0].cpu()
    return FoolingResult(images=images, confidences=conf, targets=targets, reached=conf >= confidence,
                         iterations=iterations[order], seconds=seconds[order], method="evolution",
                         evaluations=evaluations)
