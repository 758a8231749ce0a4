"""The evaluator as a file, and its features and logits for a batch of images.

``models/evaluator.pt`` records the network's config, weights, test accuracy
and a digest of its weights. The digest is the id of the ruler: it goes into
every metrics file (``features``), so two numbers measured with different
evaluators are never mistaken for comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashiongen.data.batches import Images, RowsOut, as_images, bounded_batch, image_size, iter_batches
from fashiongen.errors import CheckpointError
from fashiongen.images import to_model_range
from fashiongen.model_files import EVALUATOR, read_model_file, save_model_file, state_dict_digest
from fashiongen.models.evaluator import Evaluator


def build_evaluator(config: dict[str, Any]) -> Evaluator:
    return Evaluator(
        channels=config["channels"],
        num_classes=config["num_classes"],
        image_size=config["image_size"],
        width=config["width"],
        feature_dim=config["feature_dim"],
    )


def save_evaluator(
    path: Path | str, model: Evaluator, config: dict, classes: list[str], accuracy: float, recipe: str = "unrecorded"
) -> str:
    """Write the evaluator; returns its id (``evaluator-<first 16 hex of the digest>``)."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    ruler = f"evaluator-{state_dict_digest(state)[:16]}"
    save_model_file(
        path, EVALUATOR,
        {"config": config, "state_dict": state, "classes": classes, "accuracy": accuracy, "id": ruler, "recipe": recipe},
    )
    return ruler


@dataclass
class LoadedEvaluator:
    model: Evaluator
    config: dict
    classes: list[str]
    accuracy: float
    id: str
    recipe: str


def load_evaluator(path: Path | str, device: torch.device | str = "cpu") -> LoadedEvaluator:
    payload = read_model_file(path, EVALUATOR)
    model = build_evaluator(payload["config"])
    model.load_state_dict(payload["state_dict"])
    if f"evaluator-{state_dict_digest(payload['state_dict'])[:16]}" != payload["id"]:
        raise CheckpointError(f"{path}: weights do not match their recorded digest; rerun `dvc repro train_evaluator`.")
    model.to(device).eval()
    return LoadedEvaluator(
        model, payload["config"], list(payload["classes"]), float(payload["accuracy"]), payload["id"],
        payload.get("recipe", "unrecorded"),
    )


def device_batches(images: np.ndarray | torch.Tensor | Images, batch_size: int, device: torch.device | str):
    """Consecutive uint8 batches of ``images`` on ``device``, for feature extractors.

    A memory-mapped array or a view (:mod:`fashiongen.data.batches`) is read one
    batch at a time: only the features are ever held for a whole set. A batch
    holds at most ``batch_size`` images and :data:`~fashiongen.data.batches.MAX_BATCH_PIXELS`
    pixels (:func:`~fashiongen.data.batches.bounded_batch`), so the network's
    activations stay bounded at any image size.
    """
    view = as_images(images)
    for batch in iter_batches(view, bounded_batch(batch_size, image_size(view) or 1)):
        yield batch.to(device)


@torch.inference_mode()
def extract(
    model: Evaluator, images: np.ndarray | torch.Tensor | Images, batch_size: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits (float32, on the CPU) of uint8 images N×C×H×W, ``batch_size`` at a time.

    Returns (N × feature_dim, N × num_classes). ``images``: an array (a
    memory-mapped one is read per batch), a tensor or a view of
    :mod:`fashiongen.data.batches`.
    """
    model.eval()
    out = RowsOut(len(images))  # one allocation per output: memory flat in the number of batches
    for batch in device_batches(images, batch_size, device):
        feats, outs = model.features_and_logits(to_model_range(batch).contiguous(memory_format=torch.channels_last))
        out.add(feats.float().cpu(), outs.float().cpu())
    features, logits = out.result(2)
    return features, logits
