"""SmoothGrad (Smilkov et al. 2017): an attribution map averaged over noisy copies of the image.

A gradient map is noisy because the gradient changes sharply from pixel to pixel; averaging the maps of many
copies of the image, each with Gaussian noise added, keeps what they share. :func:`smoothgrad` does this for any
base method: dlviz's saliency (default), guided backprop, deconvnet and integrated gradients, or a function of
your own.

The noisy copies are not clamped to [0, 1] (neither are Captum's): clamping would make the noise one-sided at
black and white pixels. dlviz's base methods are therefore run on the noisy copies through their internal,
unchecked path (:func:`dlviz._model.target_gradient`, :func:`dlviz.attribution.integrated_gradients.path_attributions`),
with the same math as the public functions.

The noise is drawn one sample at a time, as a float32 (N, C, H, W) tensor; from the global generator this is
exactly the noise of Captum's ``NoiseTunnel(...).attribute(x, nt_type="smoothgrad", nt_samples=samples,
nt_samples_batch_size=1, stdevs=stdev)``, so both give the same result for the same seed.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from .._model import gradients_on, model_input, preserved, target_gradient, to_caller
from .._progress import progress_bar
from .._validate import check_generator, check_number, check_targets
from .saliency import deconvnet, guided_backprop, relu_rule, saliency
from .integrated_gradients import baseline_batch, integrated_gradients, path_attributions, path_points

__all__ = ["smoothgrad"]


def smoothgrad(model: nn.Module, x: torch.Tensor, target, *, base=saliency, samples: int = 25, stdev: float = 0.15,
               generator: torch.Generator | None = None, output=None, progress: bool = True) -> torch.Tensor:
    """SmoothGrad: the mean of ``base``'s attributions over ``samples`` copies of ``x`` with Gaussian noise added.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] (normalization inside the model, e.g. with
            :func:`dlviz.normalized`); it runs in eval mode, and its modes and flags are restored afterwards.
        x: images (N, C, H, W) or one image (C, H, W), float in [0, 1]; never modified.
        target: the class to explain: an int, or one int per image.
        base: the attribution method to smooth: :func:`dlviz.saliency` (default), :func:`dlviz.guided_backprop`,
            :func:`dlviz.deconvnet` or :func:`dlviz.integrated_gradients`, also with keyword arguments bound by
            ``functools.partial`` (``partial(saliency, abs=False)``, ``partial(integrated_gradients, steps=20)``);
            or any callable ``base(model, images, targets)`` returning attributions shaped like ``images``, which
            gets the noisy (N, C, H, W) images as they are (values outside [0, 1]; on the model's device and in its
            dtype) and the targets as an int64 tensor (N,).
        samples: the number of noisy copies (a positive int).
        stdev: the noise's standard deviation in pixel units (images span [0, 1], so 0.15 is 15% of the range);
            0 gives exactly ``base``'s result (computed once, no noise drawn).
        generator: the ``torch.Generator`` the noise is drawn from, for repeatable results (default: torch's
            global generator on the model's device, as Captum draws it).
        output: how to get the class scores (N, classes) from what the model returns when that is not a tensor: an
            int indexes a tuple (``output=0``), a str is a dict key or an attribute (``output="logits"``), a callable
            maps the output to the scores; None (default) expects a tensor. For dlviz's bases only: a callable base
            handles the model's output itself.
        progress: show a progress bar over the samples (``False``: none).

    Returns:
        The mean attributions, shaped like ``x``, in ``x``'s dtype and on ``x``'s device.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.attribution.smoothgrad import smoothgrad
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> x = torch.rand(1, 3, 4, 4)
        >>> smooth = smoothgrad(model, x, 1, samples=10, generator=torch.Generator().manual_seed(0), progress=False)
        >>> smooth.shape
        torch.Size([1, 3, 4, 4])
        >>> again = smoothgrad(model, x, 1, samples=10, generator=torch.Generator().manual_seed(0), progress=False)
        >>> torch.equal(smooth, again)  # the same generator state gives the same noise
        True
    """
    check_number(samples, "samples", int)
    check_number(stdev, "stdev", allow_zero=True)
    check_generator(generator)
    with gradients_on():
        batch, single = model_input(model, x)
        targets = check_targets(target, batch.shape[0]).to(batch.device)
        attribute = _batch_method(base, batch, output)
        with preserved(model):
            if stdev == 0:  # every copy would be x itself
                mean = attribute(model, batch, targets)
            else:
                mean = _noisy_mean(model, batch, targets, attribute, samples, stdev, generator, progress)
    return to_caller(mean, x, single)


def _noisy_mean(model, batch, targets, attribute, samples, stdev, generator, progress) -> torch.Tensor:
    """The mean of ``attribute`` over ``samples`` noisy copies of ``batch``, accumulated in float32 or float64."""
    total = None
    with progress_bar(samples, "smoothgrad", progress) as bar:
        for _ in range(samples):
            result = attribute(model, batch + _noise(batch, stdev, generator), targets)
            total = result.to(torch.promote_types(result.dtype, torch.float32)) if total is None else total + result
            bar.update()
    return total / samples


def _noise(batch: torch.Tensor, stdev: float, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise shaped like ``batch``, in its dtype and on its device, drawn in float32 (as Captum draws it)
    on the generator's device (the batch's device for the global generator)."""
    device = batch.device if generator is None else generator.device
    noise = torch.randn(batch.shape, generator=generator, device=device, dtype=torch.float32) * stdev
    return noise.to(device=batch.device, dtype=batch.dtype)


# --- the base methods on noisy, prepared images -----------------------------------------------------------------

_IG_OPTIONS = ("baseline", "steps", "method", "batch_size")


def _batch_method(base, batch: torch.Tensor, output):
    """``attribute(model, images, targets) -> (N, C, H, W)``: ``base`` applied to prepared images of any values."""
    func, options = base, {}
    if isinstance(base, functools.partial) and not base.args:
        func, options = base.func, dict(base.keywords)
    if func is saliency:
        _check_options(options, ("abs",), "saliency")
        absolute = options.get("abs", True)
        return lambda model, images, targets: _signed(target_gradient(model, images, targets, output), absolute)
    if func in (guided_backprop, deconvnet):
        _check_options(options, (), func.__name__)
        rule = "guided" if func is guided_backprop else "deconvnet"
        return functools.partial(_rule_gradient, rule=rule, output=output)
    if func is integrated_gradients:
        return _integrated_method(options, batch, output)
    if not callable(base):
        raise TypeError(f"base must be an attribution function (model, x, target) -> tensor, got "
                        f"{type(base).__name__}")
    if output is not None:
        raise ValueError("output= tells dlviz's own base methods where the class scores are; a base of your own "
                         "calls the model itself, so pick the scores there")
    return functools.partial(_call_user_base, base)


def _check_options(options: dict, allowed: tuple[str, ...], name: str):
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"only {', '.join(allowed)}" if allowed else "none"
        raise ValueError(f"base=partial({name}, ...) binds {', '.join(unknown)}; smoothgrad takes {takes} there "
                         f"(output= is smoothgrad's own argument)")


def _rule_gradient(model, images, targets, *, rule: str, output) -> torch.Tensor:
    """Guided backprop's or deconvnet's signal: the target gradient with every ReLU's backward pass following
    ``rule`` (a UserWarning when the model runs no ReLU to override)."""
    with relu_rule(model, rule):
        return target_gradient(model, images, targets, output)


def _signed(grad: torch.Tensor, absolute: bool) -> torch.Tensor:
    return grad.abs() if absolute else grad


def _integrated_method(options: dict, batch: torch.Tensor, output):
    """Integrated gradients with the options bound in ``partial(integrated_gradients, ...)``; the baseline is not
    noised (as in Captum's NoiseTunnel)."""
    _check_options(options, _IG_OPTIONS, "integrated_gradients")
    steps, method = options.get("steps", 50), options.get("method", "gausslegendre")
    alphas, weights = path_points(steps, method)
    batch_size = options.get("batch_size")
    batch_size = steps if batch_size is None else check_number(batch_size, "batch_size", int)
    base = baseline_batch(options.get("baseline", 0.0), batch)
    return lambda model, images, targets: path_attributions(model, images, base, targets, alphas, weights,
                                                            batch_size, output)


def _call_user_base(base, model, images, targets) -> torch.Tensor:
    result = base(model, images, targets)
    if not isinstance(result, torch.Tensor) or result.shape != images.shape:
        shape = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
        raise ValueError(f"base must return attributions shaped like its images {tuple(images.shape)}, got {shape}")
    return result.detach()
