"""Digests of whole files: what identifies a generator file across the projector, the web page and the report.

Torch-free, read in 1 MiB blocks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``algorithm``: any of :mod:`hashlib`'s, e.g. sha256, or md5 as DVC
    records outputs). Raises :class:`OSError` when the file cannot be read."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path | str) -> str:
    """SHA-256 (hex, 64 characters) of a file's bytes: the ``generator_sha256`` of latent files and web pages."""
    return file_digest(path, "sha256")
