"""The download stage: the verified Fashion-MNIST files, or the manifest of a photo folder, in data/raw.

A folder that cannot be trained on and scored with these params (a condition
that needs labels it lacks, too few images for the real set, unreadable
files) is refused here, in seconds, through the same checks ``check-folder``
and the later stages make (:mod:`fashiongen.data.requirements`).
"""

from __future__ import annotations

from pathlib import Path

from fashiongen.config import Params
from fashiongen.data.requirements import require_trainable_manifest
from fashiongen.data.sources import fetch_raw


def download(params: Params, raw_dir: Path = Path("data/raw")) -> None:
    """Fill ``raw_dir`` from ``params.data``; a :class:`~fashiongen.errors.DataError` naming every problem of a
    folder that cannot be trained on, before anything is written."""
    fetch_raw(params.data, raw_dir, check=lambda manifest: require_trainable_manifest(manifest, params))
