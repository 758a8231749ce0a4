"""The preprocess stage: decode data/raw once into the compact arrays of data/prepared.

The folder's manifest is checked under this stage's params before anything is
decoded, and the images that decoded are checked again before they replace
``data/prepared`` (:mod:`fashiongen.data.requirements`): a refusal leaves the
previous output as it was.
"""

from __future__ import annotations

from pathlib import Path

from fashiongen.config import Params
from fashiongen.data.requirements import require_trainable_prepared, require_trainable_raw
from fashiongen.data.sources import prepare


def preprocess(params: Params, raw_dir: Path = Path("data/raw"), prepared_dir: Path = Path("data/prepared")) -> dict:
    """Decode ``raw_dir`` into ``prepared_dir``; returns the metadata written to ``meta.json``."""
    require_trainable_raw(raw_dir, params)  # under this stage's params, before anything is written
    return prepare(params.data, raw_dir, prepared_dir, check=lambda staged: require_trainable_prepared(staged, params))
