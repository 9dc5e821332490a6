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
to the deepest one used are run, and the targets are computed once, without gradients.

Images are float tensors in [0, 1] ((N, 3, H, W) or (3, H, W)) or PIL images; results are (3, H, W) for a single
image or PIL input and (N, 3, H, W) for a batch, on the extractor's device.
"""
from __future__ import annotations

import math
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from ._validate import as_image_batch, restore_batch
from .hooks import model_device, preserved

__all__ = ["VGGFeatures", "vgg19_features", "gram_matrix", "StyleLoss", "style_transfer", "texture_synthesis",
           "STYLE_LAYERS", "CONTENT_LAYER"]

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """VGG-19's convolutional part with ImageNet normalization in front, returning the layers asked for by name.

    ``features`` has torchvision's layout (``features.0`` is conv1_1, so torchvision's weights load into it);
    ``layer_names`` lists the names ``conv1_1 ... conv5_4`` (ReLU outputs) and ``pool1 ... pool5``. A new one has
    random weights (see :meth:`randomize`); :func:`vgg19_features` also loads torchvision's ImageNet weights.
    ``forward(x, layers)`` takes images (N, 3, H, W) in [0, 1] and returns ``{name: (N, C, H', W')}``, running the
    network only as far as the deepest requested layer. ``pooling``: ``"avg"`` (default, as Gatys et al. recommend
    for synthesis) or ``"max"`` (as trained); ``padding``: ``"replicate"`` (default: the edge pixels are repeated,
    so synthesized images get no dark borders) or ``"zeros"`` (as trained; the two differ only at the borders).
    ``pretrained`` says whether the weights are ImageNet's and ``description`` says which weights these are.
    """

    def __init__(self, pooling: str = "avg", *, padding: str = "replicate", seed: int = 0):
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        if padding not in ("replicate", "zeros"):
            raise ValueError(f"padding must be 'replicate' or 'zeros', got {padding!r}")
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        layers, names, channels, block, index = [], {}, 3, 1, 1
        for spec in _VGG19:
            if spec == "M":
                layers.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
                names[len(layers) - 1] = f"pool{block}"
                block, index = block + 1, 1
            else:
                layers += [skip_init(nn.Conv2d, channels, spec, kernel_size=3, padding=1,
                                     padding_mode=padding), nn.ReLU()]
                names[len(layers) - 1] = f"conv{block}_{index}"
                channels, index = spec, index + 1
        self.features = nn.Sequential(*layers)
        self._positions = {name: i for i, name in names.items()}
        self.layer_names = list(self._positions)
        self.pooling, self.padding = pooling, padding
        self.randomize(seed)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def randomize(self, seed: int = 0) -> "VGGFeatures":
        """Give every convolution random weights -- He initialization (normal, std sqrt(2 / fan_in)), zero biases
        -- drawn from a generator seeded with ``seed`` (the global generator is not touched)."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                weight = torch.randn(module.weight.shape, generator=generator) * math.sqrt(2 / fan_in)
                module.weight.copy_(weight)
                module.bias.zero_()
        self.pretrained = False
        self.description = f"VGG-19 with random weights (He initialization, seed {seed})"
        return self

    def _check(self, layers) -> list[str]:
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in layers if name not in self._positions]
        if unknown:
            import difflib
            hints = {u: difflib.get_close_matches(u, self.layer_names, n=3) for u in unknown}
            raise KeyError(f"unknown VGG-19 layer(s) {unknown}; close matches: {hints}; "
                           f"layers are {', '.join(self.layer_names)}")
        return layers

    def forward(self, x: torch.Tensor, layers=STYLE_LAYERS) -> dict[str, torch.Tensor]:
        layers = self._check(layers)
        wanted = {self._positions[name]: name for name in layers}
        last = max(wanted)
        out = {}
        h = (x - self.mean) / self.std
        for i, module in enumerate(self.features):
            h = module(h)
            if i in wanted:
                out[wanted[i]] = h
            if i == last:
                break
        return out

    def extra_repr(self) -> str:
        return f"{self.description}, pooling={self.pooling}, padding={self.padding}"


def _vgg19_weights_file():
    from torchvision.models import VGG19_Weights

    from .imagenet import cached_weights_path
    return cached_weights_path(VGG19_Weights.IMAGENET1K_V1)


def vgg19_features(weights: str | None = "auto", *, pooling: str = "avg", padding: str = "replicate", seed: int = 0,
                   download: bool = False, device=None) -> VGGFeatures:
    """A :class:`VGGFeatures` extractor.

    Args:
        weights: ``"auto"`` -- torchvision's ImageNet weights if they are in torch's hub cache, random weights
            otherwise (nothing is downloaded); ``"imagenet"`` -- the ImageNet weights (downloaded if ``download``,
            else an error that says where to put the file); ``None`` -- random weights.
        pooling: ``"avg"`` (default, better for synthesis) or ``"max"`` (as trained).
        padding: ``"replicate"`` (default, no dark borders in synthesized images) or ``"zeros"`` (as trained).
        seed: the seed of random weights (He initialization, zero biases); the global generator is not touched.
        device: where to put it (default CPU).

    The result's ``pretrained`` and ``description`` say which weights it has.
    """
    if weights not in ("auto", "imagenet", None):
        raise ValueError(f"weights must be 'auto', 'imagenet' or None (random), got {weights!r}")
    path = _vgg19_weights_file()
    if weights == "imagenet" or (weights == "auto" and path.exists()):
        if not path.exists():
            from .imagenet import imagenet
            imagenet("vgg19", weights="IMAGENET1K_V1", download=download)  # fetches the file or says how to
        state = torch.load(path, map_location="cpu", weights_only=True)
        extractor = VGGFeatures(pooling, padding=padding)
        extractor.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                            if k.startswith("features.")})
        extractor.pretrained, extractor.description = True, "VGG-19 with torchvision's ImageNet weights"
    else:
        extractor = VGGFeatures(pooling, padding=padding, seed=seed)
    return extractor.to(device) if device is not None else extractor


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices (N, C, C) of feature maps (N, C, H, W): ``G[c, d] = mean over positions of F[c] * F[d]``."""
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    return flat @ flat.transpose(1, 2) / flat.shape[2]


def _as_images(image, name: str, size, device) -> tuple[torch.Tensor, bool]:
    """PIL or tensor -> (N, 3, H, W) on ``device``, resized so that the shorter side is ``size``."""
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, torch.Tensor):
        import numpy as np
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        batch, single = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0), True
    else:
        batch, single = as_image_batch(image, name, channels=(1, 3))
        batch = batch.detach().float()
    if batch.shape[1] == 1:
        batch = batch.expand(-1, 3, -1, -1)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an int >= 8 (the shorter side in pixels), got {size!r}")
        h, w = batch.shape[-2:]
        scale = size / min(h, w)
        new = (max(1, round(h * scale)), max(1, round(w * scale)))
        if new != (h, w):
            batch = F.interpolate(batch, size=new, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return batch.to(device).contiguous(), single


class StyleLoss:
    """The objective of style transfer for a fixed style (and optionally content) image.

    ``loss(x)`` takes images (N, 3, H, W) and returns ``(total, parts)``: ``total`` is a scalar tensor (the sum
    over the batch) and ``parts`` holds per-image ``"style"`` and ``"content"`` tensors (N,). The style term is the
    mean over ``style_layers`` of ``|G(x) - G(style)|^2 / |G(style)|^2``; the content term is
    ``|F(x) - F(content)|^2 / |F(content)|^2`` at ``content_layer``. The targets are computed once, without
    gradients, when the loss is made.
    """

    def __init__(self, extractor: VGGFeatures, style: torch.Tensor, content: torch.Tensor | None = None, *,
                 style_layers=STYLE_LAYERS, content_layer: str = CONTENT_LAYER, style_weight: float = 1.0,
                 content_weight: float = 1.0):
        self.extractor = extractor
        self.style_layers = extractor._check(style_layers)
        if not self.style_layers:
            raise ValueError("style_layers must name at least one layer")
        self.content_layer = extractor._check(content_layer)[0] if content is not None else None
        self.style_weight, self.content_weight = float(style_weight), float(content_weight)
        self.layers = list(dict.fromkeys(self.style_layers + ([self.content_layer] if self.content_layer else [])))
        with torch.no_grad():
            style_features = extractor(style, self.style_layers)
            self.style_targets = {name: gram_matrix(f).mean(0, keepdim=True) for name, f in style_features.items()}
            self.content_target = extractor(content, [self.content_layer])[self.content_layer] \
                if content is not None else None

    def __call__(self, x: torch.Tensor):
        features = self.extractor(x, self.layers)
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


def _default_extractor(extractor, caller: str) -> VGGFeatures:
    if extractor is None:
        extractor = vgg19_features("auto")
        if not extractor.pretrained:
            warnings.warn(f"{caller}: torchvision's ImageNet VGG-19 weights are not in torch's hub cache, so a "
                          f"random-weight VGG-19 runs (He, Wang & Hopcroft 2016). For the pretrained one, put "
                          f"{_vgg19_weights_file().name} into torch's hub cache (checkpoints folder) or pass "
                          f"extractor=dlviz.style.vgg19_features('imagenet', download=True).", stacklevel=3)
        return extractor
    if not isinstance(extractor, VGGFeatures):
        raise TypeError(f"extractor must be a VGGFeatures (see vgg19_features), got {type(extractor).__name__}")
    return extractor


def _optimize(loss: StyleLoss, x: torch.Tensor, steps: int, history: dict, progress: bool, desc: str) -> torch.Tensor:
    """Minimize ``loss`` over the pixels of ``x`` with L-BFGS (strong Wolfe line search) for at most ``steps``
    evaluations. The loss sees ``x`` clamped to [0, 1], so the returned (clamped) image is exactly the one whose loss
    was minimized; a quadratic penalty pulls pixels that went past the range back to it."""
    from tqdm.auto import tqdm

    x = x.detach().clone().requires_grad_(True)
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    optimizer = torch.optim.LBFGS([x], lr=1, max_iter=steps, max_eval=steps, history_size=50,
                                  tolerance_grad=0, tolerance_change=0, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        inside = x.clamp(0, 1)
        total, parts = loss(inside)
        # pixels pushed past the range are pulled back to it, where the loss's gradient reaches them again
        (total + (x - inside).pow(2).flatten(1).mean(1).sum()).backward()
        history["loss"].append(float(total.detach()))
        for key, value in parts.items():
            history[key].append(float(value.detach().sum()))
        bar.update()
        return total

    if steps > 0:
        optimizer.step(closure)
    bar.close()
    history["range"] = (float(x.detach().min()), float(x.detach().max()))
    return x.detach().clamp(0, 1)


def _check_weight(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def style_transfer(content, style, *, steps: int = 100, content_weight: float = 1.0, style_weight: float = 10.0,
                   extractor: VGGFeatures | None = None, size: int | None = None, style_layers=STYLE_LAYERS,
                   content_layer: str = CONTENT_LAYER, init: str = "content", return_history: bool = False,
                   progress: bool = False):
    """Gatys et al.'s style transfer: ``content`` painted in the style of ``style``.

    Args:
        content: the photo, a tensor (N, 3, H, W) / (3, H, W) (or 1 channel) in [0, 1], or a PIL image.
        style: the painting, same kinds; resized so that its shorter side matches the content's.
        steps: L-BFGS evaluations (each one forward and backward pass through the extractor).
        content_weight, style_weight: the weights of the two (relative, per-layer balanced) terms.
        extractor: a :class:`VGGFeatures`; None uses :func:`vgg19_features` ``("auto")``, with a warning when
            that falls back to random weights.
        size: resize the content so that its shorter side has this many pixels (None keeps it).
        style_layers, content_layer: the layers of the two terms (names as in :attr:`VGGFeatures.layer_names`).
        init: start from the ``"content"`` image (converges in fewer steps) or from ``"noise"`` (as Gatys et al.).
        return_history: also return a dict with the losses at every evaluation (``"loss"``, ``"style"``,
            ``"content"``), ``"extractor"`` (which weights ran) and ``"seconds"``.

    Returns:
        The image (3, H, W) for a single image or PIL content, (N, 3, H, W) for a batch, values in [0, 1]
        (and the history dict if asked).
    """
    extractor = _default_extractor(extractor, "style_transfer")
    content_weight = _check_weight(content_weight, "content_weight")
    style_weight = _check_weight(style_weight, "style_weight")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}")
    device = model_device(extractor)
    content_batch, single = _as_images(content, "content", size, device)
    style_batch, _ = _as_images(style, "style", min(content_batch.shape[-2:]), device)
    start = time.perf_counter()
    # the extractor runs in eval mode with its parameters frozen (no gradients pile up in a caller's module)
    with preserved(extractor):
        loss = StyleLoss(extractor, style_batch, content_batch, style_layers=style_layers,
                         content_layer=content_layer, style_weight=style_weight, content_weight=content_weight)
        if init == "content":
            x = content_batch
        else:
            x = torch.rand(content_batch.shape, generator=torch.Generator().manual_seed(0)).to(device)
        history = {"loss": [], "style": [], "content": [], "extractor": extractor.description}
        result = _optimize(loss, x, steps, history, progress, "style transfer")
    history["seconds"] = time.perf_counter() - start
    result = restore_batch(result, single)
    return (result, history) if return_history else result


def texture_synthesis(style, *, size: int | tuple[int, int] = 128, steps: int = 100, extractor=None,
                      style_layers=STYLE_LAYERS, generator: torch.Generator | None = None,
                      return_history: bool = False, progress: bool = False):
    """A new image with the texture of ``style``: the style term only, from random noise (Gatys et al. 2015; the
    noise here is smooth -- coarse noise enlarged -- which converges to cleaner textures in few steps).

    Args:
        style: the texture, a tensor (3, H, W) / (1, 3, H, W) in [0, 1] or a PIL image (used at its own size).
        size: the output's side (an int) or (height, width).
        steps: L-BFGS evaluations.
        extractor, style_layers: as in :func:`style_transfer`.
        generator: a torch.Generator for the starting noise (default: seed 0).

    Returns:
        The texture (3, H, W) in [0, 1] (and the history dict if ``return_history``).
    """
    extractor = _default_extractor(extractor, "texture_synthesis")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if min(height, width) < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size!r}")
    device = model_device(extractor)
    style_batch, _ = _as_images(style, "style", None, device)
    start = time.perf_counter()
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    # smooth random noise (uniform noise on an 8 times coarser grid, enlarged), in [0.25, 0.75]
    coarse = torch.rand((1, 3, max(1, height // 8), max(1, width // 8)), generator=generator, device=generator.device)
    x = (0.25 + 0.5 * F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1))
    x = x.to(device)
    with preserved(extractor):
        loss = StyleLoss(extractor, style_batch, None, style_layers=style_layers)
        history = {"loss": [], "style": [], "content": [], "extractor": extractor.description}
        result = _optimize(loss, x, steps, history, progress, "texture synthesis")[0]
    history["seconds"] = time.perf_counter() - start
    return (result, history) if return_history else result
