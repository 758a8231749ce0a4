"""The train_evaluator stage: the classifier that every experiment is measured with; writes models/evaluator.pt."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from fashiongen.atomic import write_json
from fashiongen.classifier import FitSettings, fit_classifier
from fashiongen.config import DataConfig, EvaluatorConfig
from fashiongen.data.batches import Labelled, PreloadBudget, Rotations, labelled_split, rotation_labels, update_digest
from fashiongen.data.prepared import load_prepared
from fashiongen.device import resolve_device
from fashiongen.metrics.features import save_evaluator
from fashiongen.models.evaluator import Evaluator
from fashiongen.seeding import seed_everything


def train_evaluator(cfg: EvaluatorConfig, prepared_dir: Path, model_path: Path, metrics_path: Path,
                    data_cfg: DataConfig = DataConfig()) -> dict:
    """Fit the evaluator on the training split; write it and its test accuracy.

    The splits are read through :mod:`fashiongen.data.batches`: held on the
    device up to ``data_cfg.preload_max_gb`` together, else read per batch,
    with the same result either way.
    """
    seed_everything(cfg.seed)
    device = resolve_device("auto")
    data = load_prepared(prepared_dir)
    budget = PreloadBudget.of(data_cfg)
    train, test = (labelled_split(data, name, device, budget) for name in ("train", "test"))
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
    settings = FitSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, hflip=hflip,
                           steps_per_epoch=cfg.steps_per_epoch)
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


def evaluator_recipe(config: dict, cfg: EvaluatorConfig, train: Labelled, test: Labelled) -> str:
    """An id of how the evaluator was made: network, training params and the exact data.

    Two evaluators with the same recipe differ at most by floating-point
    differences between machines; the weight digest (``id``) tells them apart,
    the recipe says they are the same ruler. The images are hashed as they are
    trained on (for the rotation task, all four turns), read chunk by chunk.
    """
    training = cfg.model_dump()
    if training["steps_per_epoch"] is None:  # the whole split, as before the knob: the same recipe as then
        del training["steps_per_epoch"]
    digest = hashlib.sha256()
    digest.update(json.dumps({"network": config, "training": training}, sort_keys=True).encode())
    for split in (train, test):
        update_digest(digest, split.images)
        digest.update(np.ascontiguousarray(split.labels).data)
    return f"recipe-{digest.hexdigest()[:16]}"


ROTATION_CLASSES = ("upright", "rotated 90", "rotated 180", "rotated 270")


def rotation_task(split: Labelled) -> Labelled:
    """Each image four times, turned by 0/90/180/270 degrees, labelled by the turn.

    A folder without class subfolders has no labels to train the evaluator on;
    predicting rotations (Gidaris et al., 2018, "Unsupervised representation
    learning by predicting image rotations") still needs features of shape
    and texture, which is what FID, KID and precision/recall compare. The
    Inception Score of such an evaluator is near 1 and means nothing.

    The 4N rows are (image, turn) pairs turned per batch
    (:class:`~fashiongen.data.batches.Rotations`): row ``k·N + i`` is image
    ``i`` turned ``k`` times, as the four turned copies concatenated would be,
    without making them.
    """
    return Labelled(Rotations(split.images), rotation_labels(len(split)))
