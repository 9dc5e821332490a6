"""Neural style transfer and texture synthesis (Gatys, Ecker & Bethge 2015, 2016).

A picture's *style* is summarized by the Gram matrices of a convolutional network's feature maps -- which features
occur together, wherever they are -- and its *content* by the feature maps themselves at a deeper layer.
:func:`style_transfer` looks for an image whose Gram matrices at conv1_1, conv2_1, conv3_1, conv4_1 and conv5_1 are
those of the style image and whose conv4_2 features are those of the content image, by L-BFGS on its pixels.
:func:`texture_synthesis` keeps only the style term and starts from noise.

The features come from VGG-19 (:func:`vgg19_features`): torchvision's ImageNet-trained weights when they are in
torch's hub cache, otherwise random weights, which He, Wang & Hopcroft (2016) showed still synthesize textures and
style well. Three choices make both extractors behave alike here: max-pooling is replaced by average pooling (as
Gatys et al. recommend for synthesis); convolutions pad by repeating the edge pixels, so that synthesized images
get no dark borders; and every layer's loss is measured relative to the size of its target (``|G - A|^2 / |A|^2``),
so that no layer drowns the others whatever the scale of its features -- the balancing that random weights need,
and that makes ``content_weight`` and ``style_weight`` mean the same for both.

Layer names follow Gatys et al. (``conv3_1``); the value of a layer is its output after the ReLU. Only the layers up
to the deepest one used are built (for the default extractor) and run, and the targets are computed once, without
gradients.

``precision="auto"`` (the default) runs the convolutions in bfloat16 where the device computes in bfloat16 natively
(a CPU with avx512_bf16 or amx_bf16, a GPU with bfloat16 units) and in float32 elsewhere; the Gram matrices, the
losses and the pixels stay in float32. Measured on one core of an AMD EPYC with avx512_bf16 at 256 px, one
evaluation (loss and gradient) takes 1.6-1.7 times less time, and the loss is within 0.05% of float32's.
Everything in bfloat16 (plain autocast) would stop L-BFGS: its line search would see only rounding noise.

Images are float tensors in [0, 1] ((N, 3, H, W) or (3, H, W)) or PIL images, at least 16 pixels on each side for
the default layers (each pooling layer before the deepest layer used halves them; smaller images get an error that
says the smallest size that works). The pixels are optimized in float32 (float64 for a float64 extractor) on the
extractor's device. :func:`style_transfer` returns (3, H, W) for a single image or PIL input and (N, 3, H, W) for a
batch, in the input's dtype and on its device (float32 on the extractor's device for PIL);
:func:`texture_synthesis`, which starts from noise, returns float32 on the extractor's device. ``return_info=True``
adds a :class:`StyleInfo` (losses at every evaluation, time, pixel range).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._model import gradients_on, model_device, model_dtype, preserved, to_caller
from .._precision import _NAMES, PRECISIONS, Layout, auto_bf16
from .._progress import progress_bar
from .._validate import as_image_batch, as_int, check_count, check_number
from ..models.vgg import _ALL_LAYERS, CONTENT_LAYER, STYLE_LAYERS, VGGFeatures, _vgg19_weights_file, vgg19_features

__all__ = ["gram_matrix", "StyleLoss", "StyleInfo", "style_transfer", "texture_synthesis", "STYLE_LAYERS",
           "CONTENT_LAYER"]

def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of feature maps: which channels are active together, wherever they are.

    Args:
        features: feature maps (N, C, H, W), any real values.

    Returns:
        (N, C, C): ``G[n, c, d]`` is the mean over the H * W positions of ``features[n, c] * features[n, d]``.

    Example:
        >>> import torch
        >>> from dlviz.synthesis.style import gram_matrix
        >>> gram_matrix(torch.ones(1, 2, 3, 3) * torch.tensor([1.0, 2.0]).view(1, 2, 1, 1))
        tensor([[[1., 2.],
                 [2., 4.]]])
    """
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    return flat @ flat.transpose(1, 2) / flat.shape[2]


@dataclass(frozen=True)
class StyleInfo:
    """What a :func:`style_transfer` or :func:`texture_synthesis` run did (``return_info=True``).

    Attributes:
        loss: the total loss at every evaluation (floats, summed over the batch).
        style: the style term at every evaluation.
        content: the content term at every evaluation (empty for texture synthesis).
        extractor: which extractor ran (its ``description``).
        seconds: the wall-clock time of the run.
        range: (min, max) of the optimized pixels before the final clamp to [0, 1]: how far the optimizer pushed
            past the range.
        precision: what the convolutions ran in: ``"bf16"`` (bfloat16 convolutions, float32 Gram matrices and
            losses) or the extractor's dtype (``"fp32"``, ``"fp64"``); see ``precision=``.
        fp32_from: None, or the evaluation from which a ``"bf16"`` run continued in float32: L-BFGS stopped before
            its budget because bfloat16 rounding hid any further descent from its line search.
    """
    loss: list[float]
    style: list[float]
    content: list[float]
    extractor: str
    seconds: float
    range: tuple[float, float]
    precision: str = "fp32"
    fp32_from: int | None = None


def _smallest_size(extractor: VGGFeatures, layers) -> int:
    """The smallest image side (in pixels) that ``extractor`` can run up to the deepest of ``layers``.

    Every pooling layer before it halves the image (rounding down) and needs at least 2 pixels in; the convolutions
    (padding 1, also replicate padding) keep the size, down to 1 pixel. So the answer is 2 to the number of pooling
    layers up to the deepest layer: 1 for conv1_1, 8 for conv4_2, 16 for conv5_1, 32 for pool5.
    """
    deepest = max(extractor._positions[name] for name in extractor._check(layers))
    pools = sum(isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) for m in list(extractor.features)[:deepest + 1])
    return 2 ** pools


def _check_fits(batch: torch.Tensor, name: str, extractor: VGGFeatures, layers) -> None:
    """ValueError unless the images (N, C, H, W) are big enough for the extractor to reach every layer."""
    smallest = _smallest_size(extractor, layers)
    if min(batch.shape[-2:]) < smallest:
        raise ValueError(f"{name} is {batch.shape[-2]}x{batch.shape[-1]} pixels, but the layers "
                         f"{list(extractor._check(layers))} need images of at least {smallest} pixels on each side "
                         f"(each pooling layer halves them); use images or a size of at least {smallest} pixels, or "
                         f"shallower layers")


def _check_size(size, name: str, smallest: int, pair: bool) -> tuple[int, ...]:
    """``size`` (an int, or (height, width) when ``pair``) as a tuple of ints >= ``smallest``."""
    sides = tuple(size) if pair and isinstance(size, (tuple, list)) else (size,)
    expected = "an int or a (height, width) pair of ints" if pair else "an int (the shorter side in pixels)"
    if len(sides) not in ((1, 2) if pair else (1,)) or not all(as_int(side) is not None for side in sides):
        raise TypeError(f"{name} must be {expected}, got {size!r}")
    if min(sides) < smallest:
        raise ValueError(f"{name} must be at least {smallest} pixels for these layers (each pooling layer halves the "
                         f"image), got {size!r}")
    return tuple(int(side) for side in sides)


def _load(image, name: str, device, dtype) -> tuple[torch.Tensor, bool, torch.Tensor]:
    """PIL image or tensor -> ``(batch, single, like)``: a new (N, 3, H, W) copy in ``dtype`` on ``device`` (a
    1-channel image repeated), whether one image was given, and the tensor whose dtype and device the result takes
    (the image itself, or float32 on ``device`` for a PIL image)."""
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, torch.Tensor):
        import numpy as np
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        batch, single = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0), True
        like = torch.empty(0, dtype=torch.float32, device=device)
    else:
        batch, single = as_image_batch(image, name, channels=(1, 3))
        like = image
    batch = batch.detach().to(device=device, dtype=dtype, copy=True)
    return batch.expand(-1, 3, -1, -1).contiguous(), single, like


def _resize_shorter(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, 3, H, W) so that its shorter side is ``size`` pixels (the longer one rounded)."""
    h, w = batch.shape[-2:]
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    if new == (h, w):
        return batch
    return F.interpolate(batch, size=new, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _work_dtype(extractor: nn.Module) -> torch.dtype:
    """The dtype the pixels are optimized in: float64 for a float64 extractor, float32 otherwise (L-BFGS needs at
    least float32 precision; a bfloat16 or float16 extractor gets its inputs cast by :class:`StyleLoss`)."""
    return torch.float64 if model_dtype(extractor) == torch.float64 else torch.float32


def _resolve_precision(precision, extractor: nn.Module) -> str:
    """``"auto"``/``"fp32"``/``"bf16"`` -> what runs: ``"bf16"`` (bfloat16 convolutions), or the extractor's own
    dtype (``"fp32"``, or ``"fp64"`` for a float64 extractor; a bfloat16 extractor always runs ``"bf16"``)."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    dtype = model_dtype(extractor)
    if dtype in (torch.bfloat16, torch.float16):
        return _NAMES[dtype]
    if precision == "bf16" or (precision == "auto" and dtype == torch.float32
                               and auto_bf16(model_device(extractor))):
        return "bf16"
    return _NAMES.get(dtype, str(dtype))


class StyleLoss:
    """The objective of style transfer for a fixed style (and optionally content) image.

    ``loss(x)`` takes images (N, 3, H, W) and returns ``(total, parts)``: ``total`` is a scalar tensor (the sum
    over the batch) and ``parts`` holds per-image ``"style"`` and ``"content"`` tensors (N,). The style term is the
    mean over ``style_layers`` of ``|G(x) - G(style)|^2 / |G(style)|^2``; the content term is
    ``|F(x) - F(content)|^2 / |F(content)|^2`` at ``content_layer``. The targets are computed once, without
    gradients, when the loss is made. Images too small for the layers (each pooling layer halves them) raise
    ValueError with the smallest size that works.

    ``precision``: ``"bf16"`` runs the convolutions in bfloat16 (a bfloat16, channels-last copy of the weights up
    to the deepest layer used; the images are normalized in float32 first) and computes the Gram matrices and the
    losses in float32 from the bfloat16 features; the targets are computed the same way, so that the content term
    of the content image is exactly 0. ``"fp32"`` runs the extractor in its own dtype. ``"auto"`` (default) is
    ``"bf16"`` for a float32 extractor on a device with native bfloat16 (a CPU with avx512_bf16 or amx_bf16, a GPU
    with bfloat16 units) and ``"fp32"`` otherwise. ``loss.precision`` says which runs. In bfloat16 one evaluation's
    loss is within 1% of float32's (measured: within 0.05% at 64-256 px; the tests hold it to 1%).

    Example:
        >>> import torch
        >>> from dlviz.synthesis.style import StyleLoss
        >>> from dlviz.models.vgg import vgg19_features
        >>> extractor = vgg19_features(None)   # random weights: offline and fast
        >>> loss = StyleLoss(extractor, style=torch.rand(1, 3, 32, 32), content=torch.rand(1, 3, 32, 32))
        >>> x = torch.rand(2, 3, 32, 32, requires_grad=True)
        >>> total, parts = loss(x)
        >>> total.backward()
        >>> total.dim(), parts["style"].shape, parts["content"].shape, x.grad.shape
        (0, torch.Size([2]), torch.Size([2]), torch.Size([2, 3, 32, 32]))
    """

    def __init__(self, extractor: VGGFeatures, style: torch.Tensor, content: torch.Tensor | None = None, *,
                 style_layers=STYLE_LAYERS, content_layer: str = CONTENT_LAYER, style_weight: float = 1.0,
                 content_weight: float = 1.0, precision: str = "auto"):
        self.extractor = extractor
        self.style_layers = extractor._check(style_layers)
        if not self.style_layers:
            raise ValueError("style_layers must name at least one layer")
        self.content_layer = extractor._check(content_layer)[0] if content is not None else None
        self.style_weight, self.content_weight = float(style_weight), float(content_weight)
        self.layers = list(dict.fromkeys(self.style_layers + ([self.content_layer] if self.content_layer else [])))
        self.dtype = model_dtype(extractor)
        self._loss_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
        _check_fits(style, "the style image", extractor, self.style_layers)
        if content is not None:
            _check_fits(content, "the content image", extractor, [self.content_layer])
        self._images = (style, content)
        self._set_precision(_resolve_precision(precision, extractor))

    def _set_precision(self, precision: str) -> None:
        """Run in ``precision`` (a resolved name) from now on: weights for it, and the targets computed in it."""
        self.precision, self._weights = precision, None
        if precision == "bf16" and self.dtype != torch.bfloat16:
            deepest = max(self.extractor._positions[name] for name in self.layers)
            # oneDNN's (and cuDNN's) fast bfloat16 kernels take channels-last: the weight copies and the images
            # (normalized beforehand) go in that layout, and back to the usual one if a kernel refuses it
            self._layout = Layout(None, True)
            weights = {name: self._layout(tensor.detach().to(torch.bfloat16))
                       for name, tensor in self.extractor.named_parameters() if int(name.split(".")[1]) <= deepest}
            weights["mean"] = torch.zeros_like(self.extractor.mean, dtype=torch.bfloat16)
            weights["std"] = torch.ones_like(self.extractor.std, dtype=torch.bfloat16)
            self._weights = weights
        style, content = self._images
        with torch.no_grad():
            style_features = self._features(style, self.style_layers)
            self.style_targets = {name: gram_matrix(f).mean(0, keepdim=True) for name, f in style_features.items()}
            self.content_target = self._features(content, [self.content_layer])[self.content_layer] \
                if content is not None else None

    def _features(self, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        """The extractor's features of ``x`` at ``layers``, in float32 (float64 for a float64 extractor)."""
        if self._weights is None:
            features = self.extractor(x.to(self.dtype), layers)
        else:
            h = (x.to(self._loss_dtype) - self.extractor.mean) / self.extractor.std
            features = self._layout.run(lambda h: self._bf16_features(h, layers), h.to(torch.bfloat16))
        return {name: f.to(self._loss_dtype) for name, f in features.items()}

    def _bf16_features(self, h: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        """The features of the normalized bfloat16 images ``h`` with the bfloat16 weight copies, in the layout of
        ``self._layout`` (the weights are made contiguous once it has fallen back to the usual layout)."""
        if not self._layout.enabled and not all(w.is_contiguous() for w in self._weights.values()):
            self._weights = {name: w.contiguous() for name, w in self._weights.items()}
        return torch.func.functional_call(self.extractor, self._weights, (h, layers))

    def __call__(self, x: torch.Tensor):
        _check_fits(x, "the image", self.extractor, self.layers)
        features = self._features(x, self.layers)
        style = 0
        for name in self.style_layers:
            target = self.style_targets[name]
            style = style + (gram_matrix(features[name]) - target).pow(2).sum((1, 2)) / target.pow(2).sum()
        style = style / len(self.style_layers)
        parts = {"style": style}
        total = self.style_weight * style
        if self.content_target is not None:
            target = self.content_target
            content = (features[self.content_layer] - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1)
            parts["content"] = content
            total = total + self.content_weight * content
        return total.sum(), parts


def _default_extractor(extractor, caller: str, layers) -> VGGFeatures:
    if extractor is None:
        # only the layers up to the deepest one used are built (unknown names get their error later)
        layers = [layers] if isinstance(layers, str) else list(layers)
        known = [name for name in layers if isinstance(name, str) and name in _ALL_LAYERS]
        extractor = vgg19_features("auto", up_to=max(known, key=_ALL_LAYERS.index) if known else None)
        if not extractor.pretrained:
            warnings.warn(f"{caller}: torchvision's ImageNet VGG-19 weights are not in torch's hub cache, so a "
                          f"random-weight VGG-19 runs (He, Wang & Hopcroft 2016). For the pretrained one, put "
                          f"{_vgg19_weights_file().name} into torch's hub cache (checkpoints folder) or pass "
                          f"extractor=dlviz.models.vgg.vgg19_features('imagenet', download=True) (in the course's "
                          f"repository, python tools/fetch_weights.py fetches every ImageNet weight the course uses).",
                          stacklevel=3)
        return extractor
    if not isinstance(extractor, VGGFeatures):
        raise TypeError(f"extractor must be a VGGFeatures (see vgg19_features), got {type(extractor).__name__}")
    return extractor


def _within_range(x: torch.Tensor) -> torch.Tensor:
    """``x`` clamped to [0, 1], with the loss's gradient reaching the pixels that are exactly at 0 or 1.

    ``torch.clamp`` passes no gradient to a value exactly at a bound, so a pixel that starts at 0 or 1 (black or
    white in a photo) would never move, even where the loss pulls it into the range. Here only the pixels strictly
    outside the range are cut off from the loss."""
    inside = (x >= 0) & (x <= 1)
    return torch.where(inside, x, x.detach().clamp(0, 1))


def _optimize(loss: StyleLoss, x: torch.Tensor, steps: int, progress: bool, desc: str) -> tuple[torch.Tensor, dict]:
    """Minimize ``loss`` over the pixels of ``x`` with L-BFGS (strong Wolfe line search) for ``steps`` evaluations
    (torch's L-BFGS lets the line search in progress finish, which may take a few more). Returns the clamped image
    and the history (``loss``, ``style``, ``content``, ``range``). The loss sees ``x`` clamped to [0, 1] (see
    :func:`_within_range`), so the returned image is exactly the one whose loss was minimized; a quadratic penalty
    pulls pixels that went past the range back to it.

    The guard for bfloat16: L-BFGS stops as soon as a line search finds no lower loss, which happens early when the
    loss is noisier than the descent it measures (with everything in bfloat16 it stops within a dozen evaluations
    without lowering the loss at all). Hence the Gram matrices and losses are computed in float32 (see
    :class:`StyleLoss`), and if L-BFGS still stops before ``steps`` evaluations in ``"bf16"``, the loss switches to
    float32 (``history["fp32_from"]``) and a fresh L-BFGS continues for the rest of the budget."""
    x = x.detach().clone().requires_grad_(True)
    history = {"loss": [], "style": [], "content": [], "fp32_from": None}

    with progress_bar(steps, f"{desc} ({loss.precision})", enabled=progress) as bar:
        def closure():
            optimizer.zero_grad()
            inside = _within_range(x)
            total, parts = loss(inside)
            # pixels pushed past the range are pulled back to it, where the loss's gradient reaches them again
            (total + (x - inside).pow(2).flatten(1).mean(1).sum()).backward()
            history["loss"].append(float(total.detach()))
            for key, value in parts.items():
                history[key].append(float(value.detach().sum()))
            if bar.n >= bar.total:   # the line search finishing its last step past the budget
                bar.total = bar.n + 1
            bar.update()
            return total

        while len(history["loss"]) < steps:
            left = steps - len(history["loss"])
            optimizer = torch.optim.LBFGS([x], lr=1, max_iter=left, max_eval=left, history_size=50,
                                          tolerance_grad=0, tolerance_change=0, line_search_fn="strong_wolfe")
            optimizer.step(closure)
            if len(history["loss"]) >= steps or loss.precision != "bf16" or loss.dtype == torch.bfloat16:
                break   # done, or stopped early in float32: converged as far as float32 tells
            loss._set_precision(_NAMES[loss._loss_dtype])   # bfloat16 noise stopped it: go on in float32
            history["fp32_from"] = len(history["loss"])
            bar.set_description(f"{desc} (bf16, fp32 from evaluation {history['fp32_from']})")
    history["range"] = (float(x.detach().min()), float(x.detach().max()))
    return x.detach().clamp(0, 1), history


def _info(history: dict, extractor: VGGFeatures, start: float, precision: str) -> StyleInfo:
    return StyleInfo(loss=history["loss"], style=history["style"], content=history["content"],
                     extractor=extractor.description, seconds=time.perf_counter() - start, range=history["range"],
                     precision=precision, fp32_from=history["fp32_from"])


def style_transfer(x, style, *, steps: int = 100, content_weight: float = 1.0, style_weight: float = 10.0,
                   extractor: VGGFeatures | None = None, size: int | None = None, style_layers=STYLE_LAYERS,
                   content_layer: str = CONTENT_LAYER, init: str = "content",
                   generator: torch.Generator | None = None, precision: str = "auto", return_info: bool = False,
                   progress: bool = True):
    """Gatys et al.'s style transfer: the photo ``x`` painted in the style of ``style``.

    Args:
        x: the photo (the content image), a tensor (N, 3, H, W) / (3, H, W) (or 1 channel) in [0, 1], or a PIL
            image; at least 16 pixels on each side for the default layers (each pooling layer before the deepest
            layer used halves the image).
        style: the painting, same kinds; resized so that its shorter side matches the photo's.
        steps: L-BFGS evaluations, an int >= 0 (each one forward and backward pass through the extractor); the
            line search may finish its last step with a few more (``info.loss`` has one entry per evaluation).
        content_weight, style_weight: the weights (>= 0) of the two (relative, per-layer balanced) terms.
        extractor: a :class:`VGGFeatures`; None uses :func:`vgg19_features` ``("auto")``, with a warning when
            that falls back to random weights. It runs in eval mode with frozen weights; its modes and
            ``requires_grad`` flags are restored afterwards.
        size: resize the photo so that its shorter side has this many pixels, an int (None keeps it); at least 16
            for the default layers.
        style_layers, content_layer: the layers of the two terms (names as in :attr:`VGGFeatures.layer_names`).
        init: start from the ``"content"`` image (converges in fewer steps) or from ``"noise"`` (as Gatys et al.).
        generator: a torch.Generator for the starting noise of ``init="noise"`` (default: seed 0).
        precision: ``"auto"`` (default: bfloat16 convolutions where the device computes in bfloat16 natively,
            float32 otherwise), ``"bf16"`` or ``"fp32"``. In bfloat16 the Gram matrices and losses stay in float32
            and the pixels are optimized in float32 (see :class:`StyleLoss`); it is about 1.6x faster on a CPU with
            avx512_bf16 and gives the same losses within 1% (measured: 0.05%). ``info.precision`` says which ran
            (also shown in the progress bar).
        return_info: also return a :class:`StyleInfo` (losses at every evaluation, extractor, time, pixel range).
        progress: show a progress bar of the evaluations.

    Returns:
        The image (3, H, W) for a single image or PIL photo, (N, 3, H, W) for a batch, values in [0, 1], in ``x``'s
        dtype and on its device (float32 on the extractor's device for a PIL photo); ``(image, info)`` with
        ``return_info``. Works inside ``torch.no_grad()`` and ``torch.inference_mode()``; ``x`` and ``style`` are
        not modified.

    Example:
        >>> import torch
        >>> from dlviz.synthesis.style import style_transfer
        >>> from dlviz.models.vgg import vgg19_features
        >>> extractor = vgg19_features(None)  # random weights: offline and fast
        >>> photo, painting = torch.rand(3, 32, 32), torch.rand(3, 48, 48)
        >>> image, info = style_transfer(photo, painting, steps=2, extractor=extractor, return_info=True,
        ...                              progress=False)
        >>> image.shape, info.extractor
        (torch.Size([3, 32, 32]), 'VGG-19 with random weights (He initialization, seed 0)')
    """
    extractor = _default_extractor(extractor, "style_transfer",
                                   [*([style_layers] if isinstance(style_layers, str) else style_layers),
                                    content_layer])
    content_weight = float(check_number(content_weight, "content_weight", allow_zero=True))
    style_weight = float(check_number(style_weight, "style_weight", allow_zero=True))
    steps = check_count(steps, "steps", 0)
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}")
    layers = extractor._check(style_layers) + extractor._check(content_layer)
    smallest = _smallest_size(extractor, layers)
    if size is not None:
        size = _check_size(size, "size", smallest, pair=False)[0]
    device, dtype = model_device(extractor), _work_dtype(extractor)
    start = time.perf_counter()
    # gradients on, also inside torch.no_grad() / torch.inference_mode(); copies made here are ordinary tensors
    with gradients_on():
        content_batch, single, like = _load(x, "x", device, dtype)
        if size is not None:
            content_batch = _resize_shorter(content_batch, size)
        _check_fits(content_batch, "x (the content image)", extractor, layers)
        style_batch = _resize_shorter(_load(style, "style", device, dtype)[0], min(content_batch.shape[-2:]))
        # the extractor runs in eval mode with its parameters frozen (no gradients pile up in a caller's module)
        with preserved(extractor):
            loss = StyleLoss(extractor, style_batch, content_batch, style_layers=style_layers,
                             content_layer=content_layer, style_weight=style_weight, content_weight=content_weight,
                             precision=precision)
            precision = loss.precision
            if init == "content":
                start_image = content_batch
            else:
                generator = generator if generator is not None else torch.Generator().manual_seed(0)
                start_image = torch.rand(content_batch.shape, generator=generator, device=generator.device)
            result, history = _optimize(loss, start_image.to(device, dtype), steps, progress, "style transfer")
    result = to_caller(result, like, single)
    return (result, _info(history, extractor, start, precision)) if return_info else result


def texture_synthesis(style, *, size: int | tuple[int, int] = 128, steps: int = 100,
                      extractor: VGGFeatures | None = None, style_layers=STYLE_LAYERS,
                      generator: torch.Generator | None = None, precision: str = "auto", return_info: bool = False,
                      progress: bool = True):
    """A new image with the texture of ``style``: the style term only, from random noise (Gatys et al. 2015; the
    noise here is smooth -- coarse noise enlarged -- which converges to cleaner textures in few steps).

    Args:
        style: the texture, a tensor (3, H, W) / (N, 3, H, W) (or 1 channel) in [0, 1] or a PIL image, used at its
            own size (a batch is one texture: its Gram matrices are averaged); at least 16 pixels on
            each side for the default layers.
        size: the output's side (an int) or (height, width), ints of at least 16 for the default layers.
        steps: L-BFGS evaluations, an int >= 0 (the last line search may add a few, as in :func:`style_transfer`).
        extractor, style_layers: as in :func:`style_transfer`.
        generator: a torch.Generator for the starting noise (default: seed 0).
        precision: ``"auto"``, ``"bf16"`` or ``"fp32"``, as in :func:`style_transfer`.
        return_info: also return a :class:`StyleInfo` (``content`` is empty).
        progress: show a progress bar of the evaluations.

    Returns:
        The texture (3, height, width) in [0, 1], float32 on the extractor's device (it starts from noise, not from
        an image of the caller's); ``(texture, info)`` with ``return_info``. Works inside ``torch.no_grad()`` and
        ``torch.inference_mode()``; ``style`` is not modified.

    Example:
        >>> import torch
        >>> from dlviz.synthesis.style import texture_synthesis
        >>> from dlviz.models.vgg import vgg19_features
        >>> extractor = vgg19_features(None)  # random weights: offline and fast
        >>> texture = texture_synthesis(torch.rand(3, 32, 32), size=(32, 48), steps=2, extractor=extractor,
        ...                             progress=False)
        >>> texture.shape, texture.dtype
        (torch.Size([3, 32, 48]), torch.float32)
    """
    extractor = _default_extractor(extractor, "texture_synthesis", style_layers)
    steps = check_count(steps, "steps", 0)
    layers = extractor._check(style_layers)
    if not layers:
        raise ValueError("style_layers must name at least one layer")
    smallest = _smallest_size(extractor, layers)
    sides = _check_size(size, "size", smallest, pair=True)
    height, width = sides if len(sides) == 2 else sides * 2
    device, dtype = model_device(extractor), _work_dtype(extractor)
    start = time.perf_counter()
    with gradients_on():
        style_batch = _load(style, "style", device, dtype)[0]
        _check_fits(style_batch, "style", extractor, layers)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        # smooth random noise (uniform noise on an 8 times coarser grid, enlarged), in [0.25, 0.75]
        coarse = torch.rand((1, 3, max(1, height // 8), max(1, width // 8)), generator=generator,
                            device=generator.device)
        noise = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
        with preserved(extractor):
            loss = StyleLoss(extractor, style_batch, None, style_layers=style_layers, precision=precision)
            precision = loss.precision
            result, history = _optimize(loss, (0.25 + 0.5 * noise).to(device, dtype), steps, progress,
                                        "texture synthesis")
    result = result[0].to(torch.float32)
    return (result, _info(history, extractor, start, precision)) if return_info else result
