"""A training run's identity: everything that determines the weights it ends with.

A checkpoint is resumed only by a run of the same identity (and only when that
run was interrupted before its end: :mod:`fashiongen.gan.run_state`). The
identity holds:

- ``code``: a digest of every ``.py`` file of the ``fashiongen`` package (by
  path relative to the package and content), so an edit to any of FashionGen's
  code, the loss for instance, starts training afresh. It does not depend on
  where the checkout is, so it survives clones, ``git checkout`` and
  ``dvc exp apply``;
- ``model``: every ``model.*`` param;
- ``train``: every ``train.*`` param except those that change how a run is
  watched or where it runs (:data:`NOT_TRAJECTORY`); ``train.epochs`` is in it;
- ``data``: the digest and shape of the training images, and for encoding
  models the encoder's id.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from fashiongen.config import Params
from fashiongen.data.batches import sha256_of_images

# train.* fields that change how a run is watched or where it runs, not its weights:
# a checkpoint written under other values of these is still resumable. train.extend only
# decides whether a finished run may be continued (see run_state.resume_plan).
NOT_TRAJECTORY = frozenset(
    {"device", "log_every", "checkpoint_every", "keep_checkpoints", "resume", "extend", "amp", "compile"}
)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (hex) over the relative path and bytes of every ``.py`` file of the fashiongen package."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def params_identity(params: Params) -> dict[str, Any]:
    """The model and train params of a run's identity.

    Those of ``Params()`` stand in for keys a checkpoint lacks (see
    :func:`identity_differences`): a param added to FashionGen later defaults
    to the old behaviour.
    """
    return {
        "model": params.model.model_dump(),
        "train": {k: v for k, v in params.train.model_dump().items() if k not in NOT_TRAJECTORY},
    }


def run_identity(params: Params, train_images: np.ndarray, encoder: str | None) -> dict[str, Any]:
    """The whole identity (see the module doc) of a run on ``train_images`` (uint8 N×C×H×W, read chunk by chunk)."""
    digest = sha256_of_images(train_images)
    return {
        "code": code_digest(),
        **params_identity(params),
        "data": {"train_images_sha256": digest, "shape": list(train_images.shape), "encoder": encoder},
    }


def identity_digest(identity: dict[str, Any]) -> str:
    """A short stable digest of an identity (key order and float formatting as JSON writes them)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def without_epochs(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` less ``train.epochs``: what must match to extend a finished run."""
    return {**identity, "train": {k: v for k, v in identity.get("train", {}).items() if k != "epochs"}}


def identity_differences(
    saved: dict[str, Any], current: dict[str, Any], prefix: str = "", defaults: dict[str, Any] | None = None
) -> list[str]:
    """``["train.lr_g: 0.0002 -> 0.0001", ...]``: where two run identities differ.

    ``defaults`` (same layout) fills keys that ``saved`` lacks: params added
    since the checkpoint was written, whose defaults keep the old behaviour.
    The code digest is shown as "code: changed".
    """
    defaults = defaults or {}
    differences = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        old, new = saved.get(key, defaults.get(key, "<absent>")), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            differences += identity_differences(old, new, prefix=f"{name}.", defaults=defaults.get(key))
        elif old != new:
            differences.append("code: the fashiongen package changed" if name == "code" else f"{name}: {old!r} -> {new!r}")
    return differences
