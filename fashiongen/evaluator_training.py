"""Training the evaluator: the classifier that every experiment is measured with."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from fashiongen.atomic import write_json
from fashiongen.classifier import FitSettings, fit_classifier
from fashiongen.config import EvaluatorConfig
from fashiongen.data.prepared import Split, load_prepared
from fashiongen.device import resolve_device
from fashiongen.metrics.features import save_evaluator
from fashiongen.models.evaluator import Evaluator
from fashiongen.seeding import seed_everything


def train_evaluator(cfg: EvaluatorConfig, prepared_dir: Path, model_path: Path, metrics_path: Path) -> dict:
    """Fit the evaluator on the training split; write it and its test accuracy."""
    seed_everything(cfg.seed)
    device = resolve_device("auto")
    data = load_prepared(prepared_dir)
    train, test = data.split("train", mmap=False), data.split("test", mmap=False)
    classes, hflip, counts = data.classes, True, {"train_images": len(train), "test_images": len(test)}
    if not data.labelled:
        train, test, classes, hflip = rotation_task(train), rotation_task(test), list(ROTATION_CLASSES), False
    config = {
        "channels": data.channels,
        "num_classes": len(classes),
        "image_size": data.image_size,
        "width": cfg.width,
        "feature_dim": cfg.feature_dim,
    }
    model = Evaluator(**config).to(device).to(memory_format=torch.channels_last)
    settings = FitSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, hflip=hflip)
    accuracy, test_loss = fit_classifier(model, train, test, settings, device, "train_evaluator")

    recipe = evaluator_recipe(config, cfg, train, test)
    ruler = save_evaluator(model_path, model, config, classes, accuracy, recipe)
    metrics = {
        "accuracy": accuracy,
        "test_loss": test_loss,
        "id": ruler,
        "recipe": recipe,
        **counts,  # images, not the four turns of each that the rotation task trains on
        "task": "classes" if data.labelled else "rotation",
    }
    write_json(metrics_path, metrics)
    return metrics


def evaluator_recipe(config: dict, cfg: EvaluatorConfig, train, test) -> str:
    """An id of how the evaluator was made: network, training params and the exact data.

    Two evaluators with the same recipe differ at most by floating-point
    differences between machines; the weight digest (``id``) tells them apart,
    the recipe says they are the same ruler.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"network": config, "training": cfg.model_dump()}, sort_keys=True).encode())
    for array in (train.images, train.labels, test.images, test.labels):
        digest.update(np.ascontiguousarray(array).data)
    return f"recipe-{digest.hexdigest()[:16]}"


ROTATION_CLASSES = ("upright", "rotated 90", "rotated 180", "rotated 270")


def rotation_task(split: Split) -> Split:
    """Each image four times, turned by 0/90/180/270 degrees, labelled by the turn.

    A folder without class subfolders has no labels to train the evaluator on;
    predicting rotations (Gidaris et al., 2018) still needs features of shape
    and texture, which is what FID, KID and precision/recall compare. The
    Inception Score of such an evaluator is near 1 and means nothing.
    """
    turned = [np.rot90(split.images, k, axes=(2, 3)) for k in range(len(ROTATION_CLASSES))]
    labels = np.repeat(np.arange(len(ROTATION_CLASSES), dtype=np.int64), len(split))
    return Split(images=np.ascontiguousarray(np.concatenate(turned)), labels=labels)
