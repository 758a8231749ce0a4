"""Every model file FashionGen writes or reads: format tag, layout version, atomic save, safe load, digest.

A model file is a dict of tensors and plain Python values saved with
``torch.save`` through an atomic write, so it loads with
``torch.load(weights_only=True)`` (no code runs while loading) and a killed
writer never leaves a half file. Each kind of file is a :class:`ModelKind`:

- ``format``: the tag stored under ``"format"``; a file with another tag is
  refused, naming what it is and how to get the right one;
- ``layout``: the version of the network's tensor layout the code writes today,
  stored under ``"layout"``. A file of a newer layout is refused (upgrade
  FashionGen); an older one is converted by its reader where a converter
  exists (:mod:`fashiongen.models.layouts` for generators) or refused;
- ``fix``: the command that makes a good file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fashiongen.atomic import save_torch
from fashiongen.errors import CheckpointError


@dataclass(frozen=True)
class ModelKind:
    """One kind of model file: what it is called, its format tag, today's layout and how to remake it."""

    what: str
    format: str
    fix: str
    layout: int = 1


GENERATOR = ModelKind("generator", "fashiongen.generator.v1", "train a generator first (`dvc repro train`)")
EVALUATOR = ModelKind("evaluator", "fashiongen.evaluator.v1", "run `dvc repro train_evaluator`")
ENCODER = ModelKind("encoder", "fashiongen.encoder.v1", "run `dvc repro train_encoder` with model.condition: encoding")
TRAIN_CHECKPOINT = ModelKind("training checkpoint", "fashiongen.train-checkpoint.v1", "it is skipped")


def save_model_file(path: Path | str, kind: ModelKind, payload: dict[str, Any], layout: int | None = None) -> None:
    """Write ``payload`` atomically with ``kind``'s format tag and a layout version (default: today's)."""
    save_torch(path, {"format": kind.format, "layout": kind.layout if layout is None else layout, **payload})


def read_model_file(path: Path | str, kind: ModelKind, check_layout: bool = True) -> dict[str, Any]:
    """The dict saved at ``path``, checked to be a ``kind`` file.

    Raises :class:`CheckpointError` naming the file, the problem and
    ``kind.fix`` when it is missing, unreadable (truncated, corrupt, not a
    torch file, or holding pickled code), of another format, or (with
    ``check_layout``) of a layout newer than this code reads. A file without a
    ``layout`` entry predates layout versions and is returned as it is: its
    reader decides.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; {kind.fix}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged files raise many exception types
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:160]}); it may be truncated "
            f"or corrupt: {kind.fix}."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != kind.format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is not a FashionGen {kind.what} (format {found!r}, expected {kind.format!r}); {kind.fix}."
        )
    layout = payload.get("layout")
    if check_layout and isinstance(layout, int) and layout > kind.layout:
        raise CheckpointError(
            f"{path}: {kind.what} layout version {layout} is newer than this FashionGen reads ({kind.layout}); "
            "upgrade FashionGen to read it."
        )
    return payload


def state_dict_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over parameter names, shapes, dtypes and bytes: independent of how the file was pickled."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()
