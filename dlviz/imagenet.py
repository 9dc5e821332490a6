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
import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch import nn

__all__ = ["imagenet", "WeightsNotFoundError", "cached_weights_path", "enabled", "fetch", "genuine",
           "COURSE_MODELS", "SWITCH_VARIABLE", "FETCH_COMMAND"]

NETWORK_TIMEOUT_S = 10.0  # per connection attempt and per read; offline machines fail at name resolution
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither in torch's hub cache nor downloadable."""


class Preprocess:
    """Resize, centre-crop and convert to a (3, H, W) float tensor in [0, 1] -- torchvision's preprocessing for the
    weights, without the normalization (the model does that). Takes a PIL image or a (3, H, W) tensor in [0, 1]."""

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
        >>> from dlviz.imagenet import cached_weights_path
        >>> path = cached_weights_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
        >>> path.name, path.parent.name
        ('resnet18-f37072fd.pth', 'checkpoints')
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _download(url: str, target: Path, progress: bool) -> None:
    """Download ``url`` to ``target`` through a ``.part`` file, checking the hash prefix in the file's name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    expected = re.search(r"-([a-f0-9]+)\.", target.name)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT_S) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm.auto import tqdm
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=target.name)
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                digest.update(block)
                if bar is not None:
                    bar.update(len(block))
            if bar is not None:
                bar.close()
        if expected and not digest.hexdigest().startswith(expected.group(1)):
            raise OSError(f"the downloaded file's SHA-256 does not start with {expected.group(1)}")
        part.replace(target)
    finally:
        if part.exists():
            part.unlink()


def imagenet(name: str, weights="DEFAULT", *, download: bool = True, progress: bool = False) -> nn.Module:
    """A torchvision ImageNet classifier that takes (N, 3, H, W) images in [0, 1] and returns logits (N, 1000).

    Args:
        name: a torchvision classification model, e.g. ``"alexnet"``, ``"vgg16"``, ``"resnet18"``, ``"googlenet"``.
        weights: ``"DEFAULT"`` (the best published weights), a weights name such as ``"IMAGENET1K_V1"`` or a
            torchvision ``WeightsEnum`` member, or ``None`` for random weights (no file needed).
        download: fetch missing weights (timeout ``NETWORK_TIMEOUT_S`` seconds per network operation).
        progress: show a download progress bar.

    Returns the model in eval mode, with torchvision's layer names plus ``normalize`` (ImageNet's mean and std,
    not in the ``state_dict``), and attributes ``categories`` (the 1000 class names), ``input_shape`` ((3, crop, crop), the size the weights were
    trained at), ``preprocess`` (PIL image or
    tensor -> (3, 224, 224)-like tensor in [0, 1]: resize, centre crop, no normalization) and ``weights``.

    Raises KeyError (with close matches) for an unknown name and :class:`WeightsNotFoundError`, saying where to put
    the file, when the weights are not cached and cannot be downloaded.

    Example:
        >>> import torch
        >>> from dlviz.imagenet import imagenet
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
                    f"dlviz.zoo.imagenet({name!r}) there) and copy the file into that folder; "
                    f"imagenet({name!r}, weights=None) gives the architecture with random weights.")
    options = {}
    if chosen is None and name in ("googlenet", "inception_v3"):
        # PyTorch's default initialization: torchvision's own (std 0.01, slow, and announced to change with a
        # FutureWarning) leaves the deeper activations of a random network near zero
        options["init_weights"] = False
    model = models.get_model(name, weights=chosen, **options)
    meta_source = chosen if chosen is not None else enum.DEFAULT
    transforms = meta_source.transforms()
    from .zoo import Normalize

    model.normalize = Normalize(transforms.mean, transforms.std)
    model.__class__ = _normalized_class(type(model))
    model.categories = list(meta_source.meta["categories"])
    model.preprocess = Preprocess(transforms.resize_size[0], transforms.crop_size[0], transforms.interpolation)
    model.weights = chosen
    model.input_shape = (3, transforms.crop_size[0], transforms.crop_size[0])  # what tools starting from noise use
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# The course's one switch for its pretrained sections

#: the torchvision classifiers whose ImageNet weights (their ``DEFAULT``) the course's notebooks use
COURSE_MODELS = ("alexnet", "googlenet", "vgg19")
#: the environment variable that sets the switch's default: ``auto``, ``download`` or ``off``
SWITCH_VARIABLE = "DLVIZ_IMAGENET"
#: the one command that downloads every weight the course uses (run from the repository's folder)
FETCH_COMMAND = "python tools/fetch_weights.py"
_MODES = ("auto", "download", "off")
_DISPLAY = {"alexnet": "AlexNet", "googlenet": "GoogLeNet", "vgg19": "VGG-19"}


def _default_weights(name: str):
    from torchvision.models import get_model_weights

    if name not in _classifier_names():
        close = difflib.get_close_matches(str(name), _classifier_names(), n=4, cutoff=0.5)
        raise KeyError(f"torchvision has no ImageNet classifier named {name!r}"
                       + (f"; close matches: {', '.join(close)}" if close else ""))
    return get_model_weights(name).DEFAULT


def _size(weights) -> str:
    """The file's size in MB as torchvision's metadata gives it (``_file_size``, in units of 2**20 bytes)."""
    return f"{weights.meta['_file_size']:.0f} MB"


def _course_list() -> str:
    return ", ".join(f"{_DISPLAY[n]} {_size(_default_weights(n))}" for n in COURSE_MODELS)


def _mode(mode: str | None) -> str:
    chosen = (mode if mode is not None else os.environ.get(SWITCH_VARIABLE, "") or "auto").strip().lower()
    if chosen not in _MODES:
        source = "mode" if mode is not None else f"the environment variable {SWITCH_VARIABLE}"
        raise ValueError(f"{source} must be one of {', '.join(_MODES)}; got {chosen!r}")
    return chosen


def enabled(name: str, *, mode: str | None = None) -> bool:
    """The course's switch for a pretrained section: are ``name``'s ImageNet weights here to use?

    Args:
        name: a torchvision classifier, e.g. ``"alexnet"``, ``"googlenet"``, ``"vgg19"`` (its ``DEFAULT`` weights,
            the ones :func:`imagenet` loads).
        mode: ``"auto"`` (use the weights when they are in torch's cache), ``"download"`` (fetch them when they are
            missing) or ``"off"`` (skip even when cached); default: the environment variable ``DLVIZ_IMAGENET``,
            else ``"auto"``.

    Returns True, after printing one line that names the weights file, when the section can run:
    ``imagenet(name)`` (or ``dlviz.style.vgg19_features("imagenet")``) will then load the weights without a
    network. Otherwise prints the standard message -- the section is skipped, and the one command
    ``python tools/fetch_weights.py`` downloads every weight the course uses, with their sizes -- and returns
    False. Never raises for a missing file or an unreachable network.

    Example:
        >>> from dlviz.imagenet import enabled
        >>> enabled("alexnet", mode="off")
        AlexNet's ImageNet weights are switched off (DLVIZ_IMAGENET=off), so this pretrained section is skipped.
        False
    """
    weights = _default_weights(name)
    chosen = _mode(mode)
    display = _DISPLAY.get(name, name)
    if chosen == "off":
        print(f"{display}'s ImageNet weights are switched off ({SWITCH_VARIABLE}=off), so this pretrained section "
              "is skipped.")
        return False
    path = cached_weights_path(weights)
    reason = ""
    if not path.exists() and chosen == "download":
        print(f"downloading {display}'s ImageNet weights ({path.name}, {_size(weights)}) into torch's cache")
        try:
            _download(weights.url, path, progress=True)
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = f" (the download failed: {getattr(error, 'reason', error)})"
    if path.exists():
        print(f"{display}: ImageNet weights {path.name} ({_size(weights)}) found in torch's cache; "
              "running the pretrained section.")
        return True
    print(f"{display}'s ImageNet weights ({_size(weights)}) are not in torch's cache{reason}, so this pretrained "
          f"section is skipped.\nTo enable every pretrained section of the course ({_course_list()}),\n"
          f"run once with internet, in the course's folder:\n    {FETCH_COMMAND}\n"
          f"or start Jupyter with {SWITCH_VARIABLE}=download; then re-run this notebook.")
    return False


def fetch(names=COURSE_MODELS, *, progress: bool = True) -> list[Path]:
    """Download the ImageNet weights the course uses into torch's cache (``python tools/fetch_weights.py``).

    Args:
        names: torchvision classifiers (default ``COURSE_MODELS``: AlexNet 233 MB, GoogLeNet 50 MB,
            VGG-19 548 MB); each gets its ``DEFAULT`` weights.
        progress: show a progress bar per download.

    Prints one line per file (name, size, whether it was already cached) and returns the paths, in
    ``$TORCH_HOME/hub/checkpoints``. Files already there are not downloaded again. Without a network it stops at
    the first file that cannot be fetched, within seconds (``NETWORK_TIMEOUT_S`` per network operation), and
    raises :class:`WeightsNotFoundError` with the reason.

    Example:
        >>> from dlviz.imagenet import fetch
        >>> fetch([])       # nothing asked, nothing fetched; fetch() gets the three the course uses
        []
    """
    paths = []
    for name in names:
        weights = _default_weights(name)
        path = cached_weights_path(weights)
        if path.exists():
            print(f"{name:10s} {path.name:28s} {_size(weights):>7s}  already in {path.parent}")
        else:
            print(f"{name:10s} {path.name:28s} {_size(weights):>7s}  downloading from {weights.url}", flush=True)
            try:
                _download(weights.url, path, progress)
            except (urllib.error.URLError, OSError, TimeoutError) as error:
                raise WeightsNotFoundError(
                    f"could not download {weights.url} ({getattr(error, 'reason', error)}). Connect to the "
                    f"internet and run this again, or download the file on another machine and copy it into "
                    f"{path.parent}.") from None
            print(f"{'':10s} saved to {path}")
        paths.append(path)
    return paths


_GENUINE: dict[tuple, bool] = {}


def genuine(name: str) -> bool:
    """Are ``name``'s cached ImageNet weights torchvision's own file (not a stand-in, not corrupted)?

    Args:
        name: a torchvision classifier, e.g. ``"alexnet"`` (its ``DEFAULT`` weights).

    Returns True when the cached file's SHA-256 starts with the hash in its name (torchvision's check), False
    when it does not or the file is missing. The course's tests run the pretrained sections with stand-in weights
    of the right shapes and random values; the notebooks assert what only trained weights can show (a cat
    recognized as a cat) when this is True. The answer is remembered per file, size and modification time.

    Example:
        >>> from dlviz.imagenet import genuine
        >>> isinstance(genuine("alexnet"), bool)
        True
    """
    path = cached_weights_path(_default_weights(name))
    if not path.exists():
        return False
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _GENUINE:
        expected = re.search(r"-([a-f0-9]+)\.", path.name)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        _GENUINE[key] = bool(expected) and digest.hexdigest().startswith(expected.group(1))
    return _GENUINE[key]


def main(argv=None) -> int:
    """``python tools/fetch_weights.py``: download every ImageNet weight the course uses; 1 on failure."""
    import argparse

    parser = argparse.ArgumentParser(
        description=f"Download the ImageNet weights the course's pretrained sections use ({_course_list()}) "
                    "into torch's cache ($TORCH_HOME/hub/checkpoints).")
    parser.add_argument("names", nargs="*", default=list(COURSE_MODELS),
                        help=f"torchvision classifiers (default: {' '.join(COURSE_MODELS)})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        paths = fetch(args.names, progress=not args.no_progress)
    except (WeightsNotFoundError, KeyError) as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in paths) / 2 ** 20
    print(f"{len(paths)} weight files, {total:.0f} MB, in {Path(torch.hub.get_dir()) / 'checkpoints'}: "
          "the course's pretrained sections now run.")
    return 0
