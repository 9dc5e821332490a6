"""The course's datasets, offline first.

Every loader looks for its files in one data folder, chosen in this order:

1. the ``root`` argument,
2. the ``DLVIZ_DATA`` environment variable,
3. the repository's ``datasets/`` folder (or ``~/.cache/dlviz`` when dlviz is installed outside a checkout).

Files that are there are verified by MD5 before use; a file whose checksum does not match is reported with its
path and never used (and never deleted: it may be the user's). Files that are missing are downloaded from the
sources torchvision and the original authors publish, into a ``.part`` file that only takes the real name once
its checksum matches, so an interrupted download never leaves a partial file in place. Without a network the
loaders fail within seconds and say which files are missing, where they were looked for, and how to provide them.

Which folders dlviz creates: the default folder (3.) and the dataset folders inside any data folder are created
when a download needs them, and removed again if the download fails and they are still empty, so an offline
machine is left as it was. A folder that you name (1. or 2.) must already exist: a mistyped path gets an error
saying that the folder does not exist (or is a file), instead of a new folder tree at the wrong place. Create it
yourself (``mkdir -p``) to download into it.
"""
from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import shutil
import urllib.error
import urllib.request  # noqa: F401  (downloads go through urllib.request.urlopen, in dlviz._fetch)
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ._fetch import NETWORK_TIMEOUT_S, fetch, file_digest
from ._validate import as_int, check_generator

__all__ = ["mnist", "fashion_mnist", "tiny_shakespeare", "sample_image", "data_root", "tensors", "train_val_split",
           "DataNotFoundError", "ChecksumError", "SKIMAGE_IMAGES", "PAINTINGS"]



class DataNotFoundError(FileNotFoundError):
    """A dataset's files are neither in the data folder nor downloadable."""


class ChecksumError(RuntimeError):
    """A data file exists but its content is not the published file."""


# --- where the data lives -------------------------------------------------------------------------------------

def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$DLVIZ_DATA``, else the repository's ``datasets/`` folder (or
    ``~/.cache/dlviz`` outside a checkout).

    Args:
        root: a folder that exists, or None.

    Returns:
        The folder's path. Raises :class:`DataNotFoundError` when ``root`` or ``DLVIZ_DATA`` names a path that does
        not exist or is a file (the default folder may not exist yet: it is created when a download needs it).

    Example:
        >>> import tempfile
        >>> from dlviz.data import DataNotFoundError, data_root
        >>> folder = tempfile.mkdtemp()
        >>> data_root(folder).is_dir()
        True
        >>> try:
        ...     data_root(folder + "/mistyped")
        ... except DataNotFoundError as error:
        ...     print("does not exist" in str(error))
        True
    """
    if root is not None:
        return _named_folder(Path(root).expanduser(), f"root={str(root)!r}")
    if os.environ.get("DLVIZ_DATA"):
        return _named_folder(Path(os.environ["DLVIZ_DATA"]).expanduser(), f"DLVIZ_DATA={os.environ['DLVIZ_DATA']!r}")
    return _default_root()


def _default_root() -> Path:
    """The repository's ``datasets/`` folder in a checkout, else ``~/.cache/dlviz``; created when needed."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists() and (checkout / "datasets").is_dir():
        return checkout / "datasets"
    return Path.home() / ".cache" / "dlviz"


_EXPECTED = ("the course's data folder, which holds (or receives) MNIST/, FashionMNIST/, tinyshakespeare/ and "
             "images/")


def _named_folder(path: Path, source: str) -> Path:
    """``path`` when it is an existing folder; else a DataNotFoundError that says what is wrong and what to do."""
    if path.is_dir():
        return path
    if path.exists():
        raise DataNotFoundError(f"{source} is a file, not a folder. It must name {_EXPECTED}; point it at that "
                                f"folder instead.")
    raise DataNotFoundError(f"{source} does not exist. It must name {_EXPECTED}. dlviz does not create a folder "
                            f"you name, in case the path is mistyped: correct the path, or create the folder "
                            f"(mkdir -p {path}) and the datasets will be downloaded into it.")


@contextlib.contextmanager
def _new_folders_removed_on_failure(folder: Path):
    """Remove the folders up to ``folder`` that did not exist before the block and are still empty when it
    raises: a failed download leaves no empty folder tree behind."""
    new = []  # deepest first
    path = folder
    while not path.exists() and path != path.parent:
        new.append(path)
        path = path.parent
    try:
        yield
    except BaseException:
        for path in new:
            with contextlib.suppress(OSError):  # not empty: a file was saved there and stays
                path.rmdir()
        raise


_verified: set[tuple[str, int, int, str]] = set()  # (path, size, mtime, md5) already checked in this process


def _verify(path: Path, md5: str) -> None:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, md5)
    if key in _verified:
        return
    actual = file_digest(path, "md5")
    if actual == md5:
        _verified.add(key)
    else:
        raise ChecksumError(
            f"{path} is not the published file (md5 {actual}, expected {md5}). It was not used and was left in "
            f"place; move it away or replace it with the original file, then try again.")


def _download(urls: list[str], target: Path, md5: str) -> None:
    """Fetch ``target`` from the first URL that works; it appears only complete and verified."""
    target.parent.mkdir(parents=True, exist_ok=True)  # outside the loop: a file in the way is not a network error
    errors = []
    for url in urls:
        try:
            # through target.part, which is removed on failure: a later attempt starts afresh
            fetch(url, target, algorithm="md5", expected=md5, timeout=NETWORK_TIMEOUT_S)
            return
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            errors.append(f"{url}: {error}")
    raise DataNotFoundError("could not download " + target.name + ":\n  " + "\n  ".join(errors))


def _missing_error(what: str, folder: Path, missing: list[str], reason: str) -> DataNotFoundError:
    listing = "\n  ".join(str(folder / name) for name in missing)
    return DataNotFoundError(
        f"{what}: these files are missing and could not be downloaded ({reason}):\n  {listing}\n"
        f"Searched in {folder}. Put the original files there, or point DLVIZ_DATA to a folder that has them "
        f"(for example: export DLVIZ_DATA=/path/to/datasets), or run once with a network connection.")


def _ensure(what: str, folder: Path, files: dict[str, tuple[str, list[str]]], download: bool) -> None:
    """Make every ``name -> (md5, urls)`` in ``files`` present and verified in ``folder``."""
    missing = []
    for name, (md5, _) in files.items():
        path = folder / name
        if path.exists():
            _verify(path, md5)
        else:
            missing.append(name)
    if not missing:
        return
    if not download:
        raise _missing_error(what, folder, missing, "download=False")
    with _new_folders_removed_on_failure(folder):
        for name in missing:
            md5, urls = files[name]
            try:
                _download(urls, folder / name, md5)
            except DataNotFoundError as error:
                raise _missing_error(what, folder, missing, str(error).splitlines()[-1].strip()) from error
            except PermissionError as error:
                raise _missing_error(what, folder, missing, f"{folder} is not writable") from error
            except (FileExistsError, NotADirectoryError) as error:
                raise _missing_error(what, folder, missing, f"a file is in the way of the folder: {error}") from error


# --- MNIST and Fashion-MNIST ----------------------------------------------------------------------------------

# MD5 of the uncompressed IDX files that torchvision reads (the .gz checksums come from torchvision itself).
_IDX_MD5 = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}


def _idx_dataset(cls, train: bool, root, transform, download: bool):
    """Verify (or fetch and unpack) the IDX files torchvision's ``cls`` reads, then build the dataset."""
    base = data_root(root)
    raw = base / cls.__name__ / "raw"
    # torchvision checks that all four files exist, whichever split is asked for
    to_unpack = []
    for gz_name, gz_md5 in cls.resources:
        idx_name = gz_name[:-3]
        if (raw / idx_name).exists():
            _verify(raw / idx_name, _IDX_MD5[cls.__name__][idx_name])
        else:
            to_unpack.append((gz_name, gz_md5, idx_name))
    # one call for every missing archive, so that an offline error names all of them
    _ensure(cls.__name__, raw, {gz: (md5, [m + gz for m in cls.mirrors]) for gz, md5, _ in to_unpack}, download)
    for gz_name, _, idx_name in to_unpack:
        _unpack(raw / gz_name, raw / idx_name, _IDX_MD5[cls.__name__][idx_name])
    if transform is None:
        from torchvision.transforms import ToTensor
        transform = ToTensor()
    return cls(str(base), train=train, transform=transform, download=False)


def _unpack(archive: Path, target: Path, md5: str) -> None:
    """Gunzip ``archive`` into ``target`` through a ``.part`` file that takes the real name only once verified."""
    partial = target.with_name(target.name + ".part")
    try:
        with gzip.open(archive, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        _verify(partial, md5)
        os.replace(partial, target)
    except PermissionError as error:
        raise DataNotFoundError(f"cannot unpack {archive} into {target.parent}: the folder is not writable. Unpack "
                                f"it there yourself (gunzip -k), or point DLVIZ_DATA to a writable folder.") from error
    finally:
        partial.unlink(missing_ok=True)


def mnist(train: bool = True, root=None, transform=None, download: bool = True):
    """MNIST handwritten digits (LeCun et al. 1998) as a torchvision dataset.

    Items are ``(image, label)``: a float tensor of shape (1, 28, 28) with values in [0, 1] and an int in 0..9,
    unless ``transform`` is given (it then receives the PIL image). 60,000 training and 10,000 test items.

    Args:
        train: the training split (True) or the test split (False).
        root: the data folder (it must exist); default ``DLVIZ_DATA`` or the default folder (see :func:`data_root`).
        transform: applied to each PIL image; default ``ToTensor()``.
        download: fetch missing files (False: raise :class:`DataNotFoundError` instead).

    Returns:
        A ``torchvision.datasets.MNIST``; :func:`tensors` turns it into two tensors.

    Example:
        >>> from dlviz import data
        >>> test_set = data.mnist(train=False)  # doctest: +SKIP
        >>> len(test_set), test_set[0][1]  # doctest: +SKIP
        (10000, 7)
    """
    from torchvision.datasets import MNIST
    return _idx_dataset(MNIST, train, root, transform, download)


def fashion_mnist(train: bool = True, root=None, transform=None, download: bool = True):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), same format and arguments as :func:`mnist`.

    Returns:
        A ``torchvision.datasets.FashionMNIST``; ``dataset.classes`` names the 10 labels.

    Example:
        >>> from dlviz import data
        >>> train_set = data.fashion_mnist()  # doctest: +SKIP
        >>> train_set.classes[train_set[0][1]]  # doctest: +SKIP
        'Ankle boot'
    """
    from torchvision.datasets import FashionMNIST
    return _idx_dataset(FashionMNIST, train, root, transform, download)


def tensors(dataset, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A torchvision MNIST-style dataset as two tensors, fast: images (N, 1, H, W) float in [0, 1], labels (N,) int64.

    Reads the decoded arrays directly instead of going item by item through PIL, which is ~100x faster.
    Only for datasets built without a transform.

    Args:
        dataset: a dataset with ``.data`` (N, H, W) uint8 and ``.targets`` (N,), as torchvision's MNIST.
        limit: keep the first ``limit`` items (an int >= 1; more than N keeps all); None keeps all.

    Returns:
        ``(images, labels)``: (N, 1, H, W) float32 in [0, 1] and (N,) int64.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> from dlviz.data import tensors
        >>> fake = SimpleNamespace(data=torch.full((5, 28, 28), 255, dtype=torch.uint8), targets=torch.arange(5))
        >>> x, y = tensors(fake, limit=3)
        >>> x.shape, float(x.max()), y.tolist()
        (torch.Size([3, 1, 28, 28]), 1.0, [0, 1, 2])
    """
    if not hasattr(dataset, "data") or not hasattr(dataset, "targets"):
        raise TypeError(f"expected a torchvision MNIST-style dataset with .data and .targets, "
                        f"got {type(dataset).__name__}")
    if limit is not None and (as_int(limit) is None or limit < 1):
        raise ValueError(f"limit must be a positive int (how many items to keep from the start) or None for all, "
                         f"got {limit!r}")
    data, targets = dataset.data[:limit], torch.as_tensor(dataset.targets[:limit])
    return data.unsqueeze(1).float().div_(255), targets.long()


def train_val_split(x: torch.Tensor, y: torch.Tensor, val: int = 10_000, seed: int = 0, *,
                    generator: torch.Generator | None = None):
    """Carve a validation split out of a training set: ((x_train, y_train), (x_val, y_val)).

    x: (N, ...) and y: (N,) tensors; ``val``: how many items go to validation (0 < val < N), chosen by a random
    permutation drawn from ``generator`` (a CPU ``torch.Generator``). The default, a fresh generator seeded with
    ``seed`` (0), fixes the permutation, so every notebook that asks for the same split gets the same one; ``seed``
    is kept for that, ``generator`` is the toolkit's usual argument (not both). Choices (epochs, rates, dropout)
    are made on the validation split; the test set is touched once, at the end.

    Example:
        >>> import torch
        >>> from dlviz.data import train_val_split
        >>> x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
        >>> (x_train, y_train), (x_val, y_val) = train_val_split(x, y, val=3)
        >>> len(x_train), len(x_val), sorted(torch.cat([y_train, y_val]).tolist()) == list(range(10))
        (7, 3, True)
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not 0 < val < len(x):
        raise ValueError(f"val must be between 1 and {len(x) - 1} (the training set has {len(x)} items), got {val}")
    check_generator(generator)
    if generator is not None and seed != 0:
        raise ValueError("give train_val_split a seed or a generator, not both")
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    keep, held = order[val:], order[:val]
    return (x[keep], y[keep]), (x[held], y[held])


# --- Tiny Shakespeare -----------------------------------------------------------------------------------------

_SHAKESPEARE = ("input.txt", "6fb458f1232090904fb40fe944165e91",
                ["https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"])


def tiny_shakespeare(root=None, download: bool = True) -> str:
    """Karpathy's Tiny Shakespeare (char-rnn): 1,115,394 characters of plays as one string.

    Args:
        root: the data folder (it must exist); default ``DLVIZ_DATA`` or the default folder (see :func:`data_root`).
        download: fetch the file when missing (False: raise :class:`DataNotFoundError` instead).

    Example:
        >>> from dlviz import data
        >>> data.tiny_shakespeare()[:14]  # doctest: +SKIP
        'First Citizen:'
    """
    name, md5, urls = _SHAKESPEARE
    folder = data_root(root) / "tinyshakespeare"
    _ensure("Tiny Shakespeare", folder, {name: (md5, urls)}, download)
    return (folder / name).read_text(encoding="utf-8")


# --- images ---------------------------------------------------------------------------------------------------

#: Photographs shipped inside scikit-image (no download needed).
SKIMAGE_IMAGES = ("astronaut", "chelsea", "coffee", "camera", "rocket", "coins", "moon", "clock",
                  "immunohistochemistry", "hubble_deep_field", "colorwheel")

_NEURAL_STYLE = ("https://raw.githubusercontent.com/jcjohnson/neural-style/"
                 "07c4b8299f8fbdafec0c514fc820ff1d7ff62e46/examples/inputs/")
#: Public-domain paintings: file name, md5, download sources.
PAINTINGS = {
    "starry_night": ("starry_night.jpg", "ff217acb6db32785b8651a0e316aeab3", [_NEURAL_STYLE + "starry_night.jpg"]),
    "the_scream": ("the_scream.jpg", "619b4f42c84d2b62d3518fb20fa619c2", [_NEURAL_STYLE + "the_scream.jpg"]),
    "shipwreck_of_the_minotaur": ("shipwreck_of_the_minotaur.jpg", "a43d815f29ea01ba10a1f9d7293c6218",
                                  [_NEURAL_STYLE + "shipwreck.jpg"]),
    "great_wave_off_kanagawa": ("great_wave_off_kanagawa.jpg", "7cf99be7a51110a9521f5396d8a1400a",
                                ["https://raw.githubusercontent.com/pytorch/examples/"
                                 "8a2133809215b59ebbda9777a24239548cc4654f/fast_neural_style/images/wave.jpg"]),
}


def sample_image(name: str, size: int | tuple[int, int] | None = None, root=None, download: bool = True) -> Image.Image:
    """An RGB PIL image: a scikit-image photo (``SKIMAGE_IMAGES``) or a public-domain painting (``PAINTINGS``).

    Args:
        name: one of ``SKIMAGE_IMAGES`` (shipped with scikit-image) or ``PAINTINGS`` (downloaded once).
        size: an int resizes the shorter side to ``size`` pixels keeping the aspect ratio (as torchvision's
            ``Resize``); a pair ``(height, width)`` of positive ints resizes to exactly that; None keeps the
            original size.
        root: the data folder for paintings (it must exist); default as in :func:`data_root`.
        download: fetch a missing painting (False: raise :class:`DataNotFoundError` instead).

    Example:
        >>> from dlviz.data import sample_image
        >>> sample_image("astronaut", size=64).size
        (64, 64)
        >>> sample_image("coffee", size=(30, 40)).size  # (height, width) in, PIL's (width, height) out
        (40, 30)
    """
    if name in PAINTINGS:
        filename, md5, urls = PAINTINGS[name]
        folder = data_root(root) / "images"
        _ensure(f"painting {name!r}", folder, {filename: (md5, urls)}, download)
        with Image.open(folder / filename) as f:
            image = f.convert("RGB")
    elif name in SKIMAGE_IMAGES:
        import skimage.data
        array = getattr(skimage.data, name)()
        image = Image.fromarray(np.asarray(array)).convert("RGB")
    else:
        import difflib
        known = sorted(SKIMAGE_IMAGES + tuple(PAINTINGS))
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown sample image {name!r}.{hint} Known images: {', '.join(known)}")
    if size is None:
        return image
    if as_int(size) is not None:
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        w, h = image.size
        scale = size / min(w, h)
        return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(as_int(s) is not None and s > 0 for s in size):
        raise ValueError(f"size must be an int or a (height, width) pair of positive ints, got {size!r}")
    return image.resize((int(size[1]), int(size[0])), Image.Resampling.BICUBIC)
