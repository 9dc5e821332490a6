"""The course's one switch for its pretrained sections.

Every pretrained section of the notebooks (AlexNet in 06, GoogLeNet in 07, VGG-19 in 09) starts with
:func:`enabled`, which says yes when the weights are in torch's cache and otherwise prints one standard message and
says no. ``python tools/fetch_weights.py`` (or :func:`fetch`) downloads every weight the course uses (AlexNet 233 MB,
GoogLeNet 50 MB, VGG-19 548 MB) once; the environment variable ``DLVIZ_IMAGENET`` changes the default: ``download``
fetches missing weights when a section asks for them, ``off`` skips every pretrained section even when the weights
are cached, ``auto`` (the default) uses them when they are cached.
"""
from __future__ import annotations

import difflib
import os
import sys
import urllib.error
from pathlib import Path

import torch

from .._fetch import file_digest
from ..models.imagenet import WeightsNotFoundError, _classifier_names, _download, _sha256_prefix, cached_weights_path

__all__ = ["enabled", "fetch", "genuine", "main", "COURSE_MODELS", "SWITCH_VARIABLE", "FETCH_COMMAND"]

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
    ``imagenet(name)`` (or ``dlviz.models.vgg.vgg19_features("imagenet")``) will then load the weights without a
    network. Otherwise prints the standard message -- the section is skipped, and the one command
    ``python tools/fetch_weights.py`` downloads every weight the course uses, with their sizes -- and returns
    False. Never raises for a missing file or an unreachable network.

    Example:
        >>> from dlviz.course.imagenet import enabled
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
        >>> from dlviz.course.imagenet import fetch
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
        >>> from dlviz.course.imagenet import genuine
        >>> isinstance(genuine("alexnet"), bool)
        True
    """
    path = cached_weights_path(_default_weights(name))
    if not path.exists():
        return False
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _GENUINE:
        expected = _sha256_prefix(path)
        _GENUINE[key] = bool(expected) and file_digest(path, "sha256").startswith(expected)
    return _GENUINE[key]


def main(argv=None) -> int:
    """``python tools/fetch_weights.py``: download every ImageNet weight the course uses; 1 on failure.

    Example:
        >>> from dlviz.course.imagenet import main
        >>> main(["no_such_net", "--no-progress"])   # an unknown name: the error goes to stderr, nothing is fetched
        1
    """
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
