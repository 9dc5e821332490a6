"""torchvision's ImageNet classifiers, taking [0, 1] pixels like every dlviz model.

``imagenet("alexnet")`` returns torchvision's model with ImageNet's normalization built in, so its layers keep
torchvision's names (``"features.7"``) and its ``state_dict`` stays torchvision's. Pretrained weights come from
torch's hub cache (``$TORCH_HOME/hub/checkpoints``); when they are not there they are downloaded with a network
timeout, and without a network the call fails within seconds and says how to provide the file.

**The course's ImageNet switch.** Every pretrained section of the notebooks (AlexNet in 06, GoogLeNet in 07, VGG-19
in 09) starts with :func:`enabled`, which says yes when the weights are in torch's cache and otherwise prints one
standard message and says no. ``python tools/fetch_weights.py`` (or :func:`fetch`) downloads every weight the
course uses (AlexNet 233 MB, GoogLeNet 50 MB, VGG-19 548 MB) once; the environment variable ``DLVIZ_IMAGENET``
changes the default: ``download`` fetches missing weights when a section asks for them, ``off`` skips every
pretrained section even when the weights are cached, ``auto`` (the default) uses them when they are cached.
"""
from __future__ import annotations

import difflib
import os
import re
import urllib.error
from pathlib import Path

import torch
from torch import nn

from .._fetch import NETWORK_TIMEOUT_S, fetch
from .normalize import Normalize

__all__ = ["imagenet", "WeightsNotFoundError", "cached_weights_path", "Preprocess"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither in torch's hub cache nor downloadable."""


class Preprocess:
    """Resize, centre-crop and convert to a (3, H, W) float tensor in [0, 1] -- torchvision's preprocessing for the
    weights, without the normalization (the model does that). Takes a PIL image or a (3, H, W) tensor in [0, 1].

    Example:
        >>> import torch
        >>> from torchvision.transforms import InterpolationMode
        >>> from dlviz.models.imagenet import Preprocess
        >>> preprocess = Preprocess(256, 224, InterpolationMode.BILINEAR)   # AlexNet's and VGG's
        >>> preprocess(torch.rand(3, 300, 400)).shape
        torch.Size([3, 224, 224])
    """

    def __init__(self, resize_size: int, crop_size: int, interpolation):
        self.resize_size, self.crop_size, self.interpolation = resize_size, crop_size, interpolation

    def __call__(self, image) -> torch.Tensor:
        from torchvision.transforms import functional as TF

        if not isinstance(image, torch.Tensor):
            image = TF.to_tensor(image.convert("RGB") if hasattr(image, "convert") else image)
        image = TF.resize(image, [self.resize_size], interpolation=self.interpolation, antialias=True)
        return TF.center_crop(image, [self.crop_size]).clamp(0, 1)

    def __repr__(self) -> str:
        return (f"Preprocess(resize={self.resize_size}, crop={self.crop_size}, "
                f"interpolation={self.interpolation.value}, output=(3, {self.crop_size}, {self.crop_size}) in [0, 1])")


_CLASSES: dict[type, type] = {}


def _normalized_class(cls: type) -> type:
    """A subclass of a torchvision model class whose forward normalizes [0, 1] pixels first."""
    if cls not in _CLASSES:
        def forward(self, x):
            return cls.forward(self, self.normalize(x))

        name = f"Normalized{cls.__name__}"
        _CLASSES[cls] = type(name, (cls,), {"forward": forward, "__module__": __name__, "__qualname__": name,
                                            "__doc__": f"torchvision's {cls.__name__} taking [0, 1] pixels."})
    return _CLASSES[cls]


def __getattr__(name: str):  # lets pickle find the Normalized* classes in a fresh process
    if name.startswith("Normalized"):
        import torchvision.models as models

        for module in (models, models.quantization if hasattr(models, "quantization") else None):
            cls = getattr(module, name[len("Normalized"):], None) if module else None
            if isinstance(cls, type) and issubclass(cls, nn.Module):
                return _normalized_class(cls)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _classifier_names() -> list[str]:
    import torchvision.models as models

    return models.list_models(module=models)


def _resolve_weights(name: str, weights):
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    if weights is None:
        return enum, None
    if isinstance(weights, enum):
        return enum, weights
    if isinstance(weights, str):
        key = weights.split(".")[-1]
        if key.upper() == "DEFAULT":
            return enum, enum.DEFAULT
        if key in enum.__members__:
            return enum, enum[key]
    raise ValueError(f"weights for {name!r} must be 'DEFAULT', None (random weights) or one of "
                     f"{', '.join(enum.__members__)}; got {weights!r}")


def cached_weights_path(weights) -> Path:
    """Where torch's hub cache keeps the file of a torchvision ``WeightsEnum`` member.

    Args:
        weights: a torchvision ``WeightsEnum`` member, e.g. ``torchvision.models.ResNet18_Weights.IMAGENET1K_V1``.

    Returns the path ``$TORCH_HOME/hub/checkpoints/<file name>``, whether the file is there or not: copy the
    weights there to use them offline.

    Example:
        >>> import torchvision
        >>> from dlviz.models.imagenet import cached_weights_path
        >>> path = cached_weights_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
        >>> path.name, path.parent.name
        ('resnet18-f37072fd.pth', 'checkpoints')
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _sha256_prefix(path: Path) -> str | None:
    """The SHA-256 prefix torchvision puts in a weights file's name (``alexnet-owt-7be5be79.pth``), or None."""
    found = re.search(r"-([a-f0-9]+)\.", Path(path).name)
    return found.group(1) if found else None


def _download(url: str, target: Path, progress: bool) -> None:
    """Download ``url`` to ``target`` through a ``.part`` file, checking the hash prefix in the file's name."""
    fetch(url, target, algorithm="sha256", expected=_sha256_prefix(target), prefix=True,
          timeout=NETWORK_TIMEOUT_S, progress=progress)


def imagenet(name: str, weights="DEFAULT", *, download: bool = True, progress: bool = False) -> nn.Module:
    """A torchvision ImageNet classifier that takes (N, 3, H, W) images in [0, 1] and returns logits (N, 1000).

    Args:
        name: a torchvision classification model, e.g. ``"alexnet"``, ``"vgg16"``, ``"resnet18"``, ``"googlenet"``.
        weights: ``"DEFAULT"`` (the best published weights), a weights name such as ``"IMAGENET1K_V1"`` or a
            torchvision ``WeightsEnum`` member, or ``None`` for random weights (no file needed).
        download: fetch missing weights (timeout ``NETWORK_TIMEOUT_S`` seconds per network operation).
        progress: show a download progress bar.

    Returns the model in eval mode, with torchvision's layer names plus ``normalize`` (ImageNet's mean and std,
    not in the ``state_dict``), and attributes ``categories`` (the 1000 class names), ``input_shape`` ((3, crop, crop),
    the size the weights were trained at), ``preprocess`` (PIL image or
    tensor -> (3, 224, 224)-like tensor in [0, 1]: resize, centre crop, no normalization) and ``weights``.

    Raises KeyError (with close matches) for an unknown name and :class:`WeightsNotFoundError`, saying where to put
    the file, when the weights are not cached and cannot be downloaded.

    Example:
        >>> import torch
        >>> from dlviz.models.imagenet import imagenet
        >>> model = imagenet("resnet18", weights=None)  # random weights: no file needed; "DEFAULT" for trained ones
        >>> model(torch.rand(1, 3, 64, 64)).shape, model.input_shape
        (torch.Size([1, 1000]), (3, 224, 224))
        >>> model.categories[:2], "layer4.1.conv2" in dict(model.named_modules())
        (['tench', 'goldfish'], True)
    """
    import torchvision.models as models

    names = _classifier_names()
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=4, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}" if close else f"available: {', '.join(names)}"
        raise KeyError(f"torchvision has no ImageNet classifier named {name!r}; {hint}")
    enum, chosen = _resolve_weights(name, weights)
    if chosen is not None:
        path = cached_weights_path(chosen)
        if not path.exists():
            reason = "download=False"
            if download:
                try:
                    _download(chosen.url, path, progress)
                except (urllib.error.URLError, OSError, TimeoutError) as error:
                    reason = f"download failed: {getattr(error, 'reason', error)}"
            if not path.exists():
                raise WeightsNotFoundError(
                    f"the ImageNet weights {chosen} for {name!r} are not in torch's hub cache ({path.name} in "
                    f"$TORCH_HOME/hub/checkpoints, here {path.parent}) and could not be fetched ({reason}). "
                    f"To enable them, download {chosen.url} on a machine with internet (or run "
                    f"dlviz.models.imagenet.imagenet({name!r}) there) and copy the file into that folder; "
                    f"imagenet({name!r}, weights=None) gives the architecture with random weights.")
    options = {}
    if chosen is None and name in ("googlenet", "inception_v3"):
        # PyTorch's default initialization: torchvision's own (std 0.01, slow, and announced to change with a
        # FutureWarning) leaves the deeper activations of a random network near zero
        options["init_weights"] = False
    model = models.get_model(name, weights=chosen, **options)
    meta_source = chosen if chosen is not None else enum.DEFAULT
    transforms = meta_source.transforms()
    model.normalize = Normalize(transforms.mean, transforms.std)
    model.__class__ = _normalized_class(type(model))
    model.categories = list(meta_source.meta["categories"])
    model.preprocess = Preprocess(transforms.resize_size[0], transforms.crop_size[0], transforms.interpolation)
    model.weights = chosen
    model.input_shape = (3, transforms.crop_size[0], transforms.crop_size[0])  # what tools starting from noise use
    return model.eval()
