"""Training the evaluator: the classifier that every experiment is measured with."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.nn import functional as F

from fashiongen.atomic import write_json
from fashiongen.config import EvaluatorConfig
from fashiongen.data.prepared import load_prepared
from fashiongen.device import resolve_device
from fashiongen.images import to_model_range
from fashiongen.metrics.features import extract, save_evaluator
from fashiongen.models.evaluator import Evaluator
from fashiongen.progress import progress_bar
from fashiongen.seeding import seed_everything

log = logging.getLogger(__name__)


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch (clothes stay clothes when mirrored)."""
    flip = torch.rand(len(images), generator=generator, device=generator.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def train_evaluator(cfg: EvaluatorConfig, prepared_dir: Path, model_path: Path, metrics_path: Path) -> dict:
    """Fit the evaluator on the training split; write it and its test accuracy."""
    seed_everything(cfg.seed)
    device = resolve_device("auto")
    data = load_prepared(prepared_dir)
    train, test = data.split("train", mmap=False), data.split("test", mmap=False)
    images = torch.from_numpy(train.images).to(device)
    labels = torch.from_numpy(train.labels).to(device)

    config = {
        "channels": data.channels,
        "num_classes": data.num_classes,
        "image_size": data.image_size,
        "width": cfg.width,
        "feature_dim": cfg.feature_dim,
    }
    model = Evaluator(**config).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(images) // cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    rng = torch.Generator(device=device).manual_seed(cfg.seed)

    with progress_bar(cfg.epochs * steps_per_epoch, "train_evaluator") as bar:
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(len(images), generator=rng, device=device)
            for step in range(steps_per_epoch):
                index = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                batch = random_hflip(to_model_range(images[index]), rng).contiguous(memory_format=torch.channels_last)
                loss = F.cross_entropy(model(batch), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                bar.update()
            accuracy, test_loss = test_accuracy(model, test.images, test.labels, device)
            bar.set_postfix(epoch=epoch + 1, test_acc=f"{accuracy:.4f}")
            log.info("epoch %d/%d: test accuracy %.4f, test loss %.4f", epoch + 1, cfg.epochs, accuracy, test_loss)

    ruler = save_evaluator(model_path, model, config, data.classes, accuracy)
    metrics = {
        "accuracy": accuracy,
        "test_loss": test_loss,
        "id": ruler,
        "train_images": len(images),
        "test_images": len(test),
    }
    write_json(metrics_path, metrics)
    return metrics


def test_accuracy(model: Evaluator, images, labels, device: torch.device) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy on a labelled split."""
    _, logits = extract(model, images, batch_size=1000, device=device)
    target = torch.as_tensor(labels)
    accuracy = (logits.argmax(1) == target).float().mean().item()
    loss = F.cross_entropy(logits, target).item()
    return accuracy, loss
