"""VGG-19's convolutional part as a feature extractor, with layers named as Gatys et al. name them (``conv3_1``).

Torchvision's ImageNet weights when they are in torch's hub cache, otherwise random weights (He initialization),
which He, Wang & Hopcroft (2016) showed still synthesize textures and style well. Used by
:mod:`dlviz.synthesis.style`; works on any (N, 3, H, W) images in [0, 1].
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import skip_init

__all__ = ["VGGFeatures", "vgg19_features", "STYLE_LAYERS", "CONTENT_LAYER"]

#: the layers whose Gram matrices make a style, and the layer whose features make the content (Gatys et al.)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _layer_names() -> list[str]:
    names, block, index = [], 1, 1
    for spec in _VGG19:
        if spec == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names.append(f"conv{block}_{index}")
            index += 1
    return names


_ALL_LAYERS = _layer_names()


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
    ``up_to``: build the network only up to this layer (e.g. ``"conv5_1"``; None builds all of it); the layers built
    get the same weights as in the whole network (random weights are drawn layer by layer from the seed).

    Example:
        >>> import torch
        >>> from dlviz.models.vgg import VGGFeatures
        >>> extractor = VGGFeatures()   # random weights (seed 0)
        >>> extractor.layer_names[:3], extractor.pretrained
        (['conv1_1', 'conv1_2', 'pool1'], False)
        >>> features = extractor(torch.rand(1, 3, 32, 32), ["conv1_1", "pool2"])
        >>> features["conv1_1"].shape, features["pool2"].shape
        (torch.Size([1, 64, 32, 32]), torch.Size([1, 128, 8, 8]))
    """

    def __init__(self, pooling: str = "avg", *, padding: str = "replicate", seed: int = 0,
                 up_to: str | None = None):
        super().__init__()
        if up_to is not None and up_to not in _ALL_LAYERS:
            raise KeyError(f"up_to must be a VGG-19 layer name ({', '.join(_ALL_LAYERS)}), got {up_to!r}")
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
            if up_to is not None and names.get(len(layers) - 1) == up_to:
                break
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
        missing = [name for name in unknown if name in _ALL_LAYERS]
        if missing:
            raise KeyError(f"layer(s) {missing} are deeper than this extractor, which was built only up to "
                           f"{self.layer_names[-1]}; build one with up_to={missing[0]!r} or deeper "
                           f"(vgg19_features(..., up_to=...))")
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
                   download: bool = False, device=None, up_to: str | None = None) -> VGGFeatures:
    """A :class:`VGGFeatures` extractor.

    Args:
        weights: ``"auto"`` -- torchvision's ImageNet weights if they are in torch's hub cache, random weights
            otherwise (nothing is downloaded); ``"imagenet"`` -- the ImageNet weights (downloaded if ``download``,
            else an error that says where to put the file); ``None`` -- random weights.
        pooling: ``"avg"`` (default, better for synthesis) or ``"max"`` (as trained).
        padding: ``"replicate"`` (default, no dark borders in synthesized images) or ``"zeros"`` (as trained).
        seed: the seed of random weights (He initialization, zero biases); the global generator is not touched.
        download: with ``"imagenet"``, download the weights when they are not in the cache.
        device: where to put it (default CPU).
        up_to: the deepest layer to build (e.g. ``"conv5_1"``, the deepest one :func:`style_transfer` uses by
            default); None builds the whole convolutional part. Deeper layers are not built (asking for one
            raises KeyError); the layers built have the same weights as in the whole network.

    Returns:
        A :class:`VGGFeatures` in eval mode with frozen weights; its ``pretrained`` and ``description`` say which
        weights it has. Call it on images (N, 3, H, W) in [0, 1] with a list of layer names.

    Example:
        >>> import torch
        >>> from dlviz.models.vgg import vgg19_features
        >>> extractor = vgg19_features(None)  # random weights: offline and fast
        >>> features = extractor(torch.rand(1, 3, 32, 32), ["conv1_1", "conv3_1"])
        >>> features["conv3_1"].shape, extractor.pretrained
        (torch.Size([1, 256, 8, 8]), False)
    """
    if weights not in ("auto", "imagenet", None):
        raise ValueError(f"weights must be 'auto', 'imagenet' or None (random), got {weights!r}")
    path = _vgg19_weights_file()
    if weights == "imagenet" or (weights == "auto" and path.exists()):
        if not path.exists():
            from .imagenet import imagenet
            imagenet("vgg19", weights="IMAGENET1K_V1", download=download)  # fetches the file or says how to
        state = torch.load(path, map_location="cpu", weights_only=True)
        extractor = VGGFeatures(pooling, padding=padding, up_to=up_to)
        built = len(extractor.features)
        extractor.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                            if k.startswith("features.") and int(k.split(".")[1]) < built})
        extractor.pretrained, extractor.description = True, "VGG-19 with torchvision's ImageNet weights"
    else:
        extractor = VGGFeatures(pooling, padding=padding, seed=seed, up_to=up_to)
    return extractor.to(device) if device is not None else extractor
