"""A training run's identity: everything that determines the weights it ends with.

A checkpoint is resumed only by a run of the same identity (and only when that
run was interrupted before its end: :mod:`fashiongen.gan.run_state`). The
identity holds:

- ``code``: a digest of what the code that trains does: the ``fashiongen``
  modules the train stage runs (:data:`TRAINING_MODULES` and every module they
  import, :func:`fashiongen.source_code.import_closure`), each parsed and
  digested without comments, docstrings and positions
  (:func:`fashiongen.source_code.behaviour_digest`). An edit of the loss
  starts training afresh; a comment, a docstring or a reformatted line does
  not, nor does an edit of a module training never runs (the report). It does
  not depend on where the checkout is, so it survives clones, ``git checkout``
  and ``dvc exp apply``;
- ``model`` and ``train``: the ``model.*`` and ``train.*`` params the run uses
  (:func:`params_identity`): not those its choices leave unused
  (:data:`fashiongen.config.PARAM_USES`: ``model.clusters`` outside cluster
  models, ``model.gp_weight`` outside WGAN-GP, ...), and not the ``train.*``
  params that change how a run is watched or where it runs
  (:data:`NOT_TRAJECTORY`); ``train.epochs`` is in it;
- ``data``: the digest and shape of the training images, and for encoding
  models the encoder's id.

The generator file records the params of the identity and the data params
(:func:`recorded_params`), so a finished run published again after a change
it does not use writes the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from fashiongen.config import Params, unused_params
from fashiongen.data.batches import sha256_of_images
from fashiongen.source_code import behaviour_digest, import_closure, module_file

# train.* fields that change how a run is watched or where it runs, not its weights:
# a checkpoint written under other values of these is still resumable. train.extend only
# decides whether a finished run may be continued (see run_state.resume_plan).
NOT_TRAJECTORY = frozenset(
    {"device", "log_every", "checkpoint_every", "keep_checkpoints", "resume", "extend", "amp", "compile"}
)
# data.* fields that change the speed, memory or where the files come from, not the prepared images:
# not recorded in the generator file
DATA_NOT_RECORDED = frozenset({"workers", "preload_max_gb", "mirrors", "download_timeout_s", "local_dir"})
# the modules a training run starts from; its code is these and every fashiongen module they import
TRAINING_MODULES = ("fashiongen.stage", "fashiongen.pipeline.train")


def _training_files() -> tuple[Path, set[Path]]:
    root = Path(__file__).resolve().parents[2]  # the folder holding the fashiongen package
    return root, import_closure([module_file(name, root) for name in TRAINING_MODULES], root)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (hex) of what the training code does (see the module doc): comments and docstrings left out."""
    root, files = _training_files()
    return behaviour_digest(files, root)


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 (hex) of the training code's bytes, comments included: says whether only comments changed."""
    root, files = _training_files()
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def params_identity(params: Params) -> dict[str, Any]:
    """The ``model`` and ``train`` params a run of ``params`` uses (``model.condition`` resolved, not auto).

    Left out: the params its choices do not use (:func:`fashiongen.config.unused_params`) and
    :data:`NOT_TRAJECTORY`. A ValueError for ``model.condition: auto``.
    """
    unused = unused_params(params)
    return {
        section: {k: v for k, v in getattr(params, section).model_dump().items()
                  if f"{section}.{k}" not in unused and not (section == "train" and k in NOT_TRAJECTORY)}
        for section in ("model", "train")
    }


def identity_defaults() -> dict[str, Any]:
    """Every ``model`` and ``train`` param of an identity at its default: stands in for keys a checkpoint lacks
    (see :func:`identity_differences`), so a param added to FashionGen later defaults to the old behaviour."""
    defaults = Params()
    return {"model": defaults.model.model_dump(),
            "train": {k: v for k, v in defaults.train.model_dump().items() if k not in NOT_TRAJECTORY}}


def recorded_params(params: Params) -> dict[str, Any]:
    """The params a generator file records: the data params that shape the images and those of the identity."""
    data = {k: v for k, v in params.data.model_dump().items() if k not in DATA_NOT_RECORDED}
    return {"data": data, **params_identity(params)}


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
            differences.append("code: the training code changed" if name == "code" else f"{name}: {old!r} -> {new!r}")
    return differences
