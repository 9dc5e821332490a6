"""The one download-and-verify helper: datasets (:mod:`dlviz.data`) and ImageNet weights (:mod:`dlviz.models.imagenet`).

:func:`fetch` streams a URL into ``<target>.part`` with a network timeout, hashes the bytes while they arrive, and
renames the part file into place only when the digest matches; on any failure (network, checksum, Ctrl-C) the part
file is removed and ``target`` is left as it was. :func:`file_digest` hashes a file that is already there.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from ._progress import progress_bar

__all__ = ["fetch", "file_digest", "DigestMismatchError", "NETWORK_TIMEOUT_S"]

NETWORK_TIMEOUT_S = 10.0  # per connection attempt and per read; offline machines fail at name resolution, sooner
_BLOCK = 1 << 20


class DigestMismatchError(OSError):
    """A downloaded file's digest is not the expected one (the file was not kept)."""


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """The hex digest of the file at ``path`` with the ``hashlib`` ``algorithm`` (read in 1 MiB blocks).

    Example:
        >>> import tempfile, pathlib
        >>> from dlviz._fetch import file_digest
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
        >>> _ = path.write_bytes(b"hello")
        >>> file_digest(path, "md5")
        '5d41402abc4b2a76b9719d911017c592'
        >>> file_digest(path, "sha256")[:8]
        '2cf24dba'
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: str | os.PathLike, *, algorithm: str, expected: str | None,
          prefix: bool = False, timeout: float = NETWORK_TIMEOUT_S, progress: bool = False) -> Path:
    """Download ``url`` to ``target``; the file appears only complete and verified.

    Args:
        url: what to download (anything ``urllib.request.urlopen`` opens).
        target: the file to create; its folder is created if needed. The bytes go to ``<target>.part`` first.
        algorithm: a ``hashlib`` algorithm name, e.g. ``"md5"`` or ``"sha256"``.
        expected: the expected hex digest (case-insensitive), or None to accept any content.
        prefix: ``expected`` is only the digest's beginning (torchvision's weights name 8+ hex digits of their
            SHA-256 in the file name).
        timeout: seconds per connection attempt and per read.
        progress: show a byte-counting progress bar (:func:`dlviz._progress.progress_bar`).

    Returns ``target`` as a Path. Raises what ``urlopen`` and the reads raise (``urllib.error.URLError``,
    ``TimeoutError``, ``OSError``...) and :class:`DigestMismatchError` (an ``OSError``) when the digest differs; in
    every case, Ctrl-C included, the part file is removed.

    Example:
        >>> import hashlib, pathlib, tempfile
        >>> from dlviz._fetch import DigestMismatchError, fetch
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> source = folder / "source.txt"
        >>> _ = source.write_bytes(b"hello")
        >>> md5 = hashlib.md5(b"hello").hexdigest()
        >>> fetch(source.as_uri(), folder / "copy.txt", algorithm="md5", expected=md5).name
        'copy.txt'
        >>> try:
        ...     fetch(source.as_uri(), folder / "bad.txt", algorithm="sha256", expected="0000", prefix=True)
        ... except DigestMismatchError as error:
        ...     print("does not match" in str(error), sorted(p.name for p in folder.iterdir()))
        True ['copy.txt', 'source.txt']
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            headers = getattr(response, "headers", None)
            total = int(headers.get("Content-Length") or 0) or None if headers is not None else None
            with progress_bar(total, target.name, enabled=bool(progress), unit="B", unit_scale=True) as bar:
                for block in iter(lambda: response.read(_BLOCK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        actual = digest.hexdigest()
        if expected is not None:
            wanted = expected.lower()
            if not (actual.startswith(wanted) if prefix else actual == wanted):
                what = f"{algorithm} starting with {wanted}" if prefix else f"{algorithm} {wanted}"
                raise DigestMismatchError(f"the download does not match {what} (its {algorithm} is {actual})")
        os.replace(part, target)
        return target
    finally:
        # our own part file, never a user's: a later attempt starts afresh
        part.unlink(missing_ok=True)
