"""The trained ResNet encoder: loading it and encoding images with it.

The train_encoder stage (:mod:`fashiongen.pipeline.train_encoder`) fits the
encoder and the encode stage (:mod:`fashiongen.pipeline.encode`) writes the
encodings of every prepared image to ``data/encodings`` (read by
:mod:`fashiongen.data.encodings`); generation encodes a user's photo with
:func:`encode_images` (``fashiongen generate --like``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fashiongen.data.batches import Images
from fashiongen.errors import CheckpointError
from fashiongen.metrics.features import extract
from fashiongen.model_files import ENCODER, read_model_file
from fashiongen.models.encoder import Encoder, normalise_encodings

log = logging.getLogger(__name__)

@dataclass
class LoadedEncoder:
    model: Encoder
    config: dict
    id: str


def load_encoder(path: Path | str, device: torch.device | str = "cpu") -> LoadedEncoder:
    payload = read_model_file(path, ENCODER)
    if not payload["trained"]:
        raise CheckpointError(f"{path}: {payload['reason']}. Set model.condition: encoding and run `dvc repro`.")
    config = payload["config"]
    model = Encoder(config["arch"], config["dim"], config["num_classes"], config["channels"], config["keep_maxpool"])
    model.load_state_dict(payload["state_dict"])
    return LoadedEncoder(model.to(device).eval(), config, payload["id"])


def encode_images(encoder: LoadedEncoder, images: np.ndarray | torch.Tensor | Images, batch_size: int = 500,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Normalised encodings (float32, CPU, N × dim) of uint8 images N×C×H×W, read ``batch_size`` at a time."""
    projected, _ = extract(encoder.model, images, batch_size, device)
    return normalise_encodings(projected)
