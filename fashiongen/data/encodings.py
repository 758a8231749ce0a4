"""Reading ``data/encodings``: the encode stage's ResNet encodings of the prepared images.

The folder holds ``meta.json`` (``{"used": false}`` when no generator needs
encodings; else ``used``, ``dim`` and the ``encoder``'s id) and, when used,
``train_encodings.npy`` / ``test_encodings.npy``: float32 N × dim, one row per
prepared image in file order. :mod:`fashiongen.pipeline.encode` writes them; the
train stage, evaluation and generation read them through this module, which
imports nothing above the data layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fashiongen.errors import DataError

META_NAME = "meta.json"


def encodings_file(root: Path | str, split: str) -> Path:
    """Where ``split``'s encodings are (float32 N × dim ``.npy``)."""
    return Path(root) / f"{split}_encodings.npy"


def encodings_meta(root: Path | str) -> dict:
    """``data/encodings/meta.json`` of a folder that holds encodings.

    Raises :class:`DataError` when it is missing or damaged (run ``dvc repro encode``) or says no
    encodings were made (``model.condition`` was not ``encoding``).
    """
    root = Path(root)
    try:
        meta = json.loads((root / META_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        raise DataError(f"{root}/{META_NAME} is missing or damaged; run `dvc repro encode`.") from None
    if not meta.get("used"):
        raise DataError(f"{root} holds no encodings (model.condition was not 'encoding' when it was built); run `dvc repro`.")
    return meta


def load_encodings(root: Path | str, split: str, encoder_id: str | None = None) -> np.ndarray:
    """The encodings of one split (float32 N × dim, memory-mapped, read-only).

    With ``encoder_id``, a :class:`DataError` when another encoder made them.
    """
    meta = encodings_meta(root)
    if encoder_id is not None and meta["encoder"] != encoder_id:
        raise DataError(
            f"{root} was made by {meta['encoder']}, but the generator was trained on encodings of {encoder_id}; "
            "evaluate it in the experiment that trained it, or retrain with `dvc repro`."
        )
    return np.load(encodings_file(root, split), mmap_mode="r")
