"""Fitting an image classifier: the loop shared by the evaluator and the encoder.

Both are trained the same way: batches of uint8 images drawn by index from a
seeded permutation (:mod:`fashiongen.data.batches`: the split on the device when
it fits ``data.preload_max_gb``, else read per batch from its file), random
horizontal flips, AdamW with a one-cycle learning-rate schedule, test accuracy
after every epoch. A batch of big images is computed in parts of at most
``MAX_BATCH_PIXELS`` pixels (:func:`backward_in_parts`), so memory does not
grow with the image size times the batch. A model qualifies by offering
``features_and_logits(images) -> (features, logits)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashiongen.data.batches import Images, Labelled, bounded_batch, image_size
from fashiongen.images import to_model_range
from fashiongen.metrics.features import extract
from fashiongen.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    epochs: int
    batch_size: int
    lr: float
    seed: int
    hflip: bool = True  # off for tasks a mirror changes the answer of (rotation prediction)
    steps_per_epoch: int | None = None  # at most this many steps per epoch; None = the whole split


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch (clothes stay clothes when mirrored)."""
    flip = torch.rand(len(images), generator=generator, device=generator.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def steps_in_epoch(n_images: int, settings: FitSettings) -> int:
    """Full batches per epoch (at least 1: a split smaller than the batch is one batch), capped at ``steps_per_epoch``."""
    steps = max(1, n_images // settings.batch_size)
    return min(steps, settings.steps_per_epoch) if settings.steps_per_epoch else steps


def fit_classifier(model: nn.Module, train: Labelled, test: Labelled, settings: FitSettings, device: torch.device, name: str) -> tuple[float, float]:
    """Train ``model`` on ``train``; returns its final (accuracy, mean cross-entropy) on ``test``.

    ``train.images`` must be on ``device`` (``ImageSource(..., device, budget)``); ``test`` may be anywhere.
    """
    images = train.images
    labels = torch.from_numpy(np.asarray(train.labels)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    steps_per_epoch = steps_in_epoch(len(images), settings)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch, pct_start=0.15
    )
    rng = torch.Generator(device=device).manual_seed(settings.seed)
    micro = bounded_batch(settings.batch_size, image_size(images))
    if micro < settings.batch_size:
        log.info("%s: batches of %d images of %d px are computed %d at a time (gradients accumulated, BatchNorm "
                 "statistics per part)", name, settings.batch_size, image_size(images), micro)
    accuracy = loss_value = float("nan")
    with progress_bar(settings.epochs * steps_per_epoch, name) as bar:
        for epoch in range(settings.epochs):
            model.train()
            order = torch.randperm(len(images), generator=rng, device=device)
            for step in range(steps_per_epoch):
                index = order[step * settings.batch_size : (step + 1) * settings.batch_size]
                batch = to_model_range(images.take(index))
                if settings.hflip:
                    batch = random_hflip(batch, rng)
                batch = batch.contiguous(memory_format=torch.channels_last)
                backward_in_parts(model, optimizer, batch, labels[index], micro)
                optimizer.step()
                scheduler.step()
                bar.update()
            accuracy, loss_value = test_accuracy(model, test.images, test.labels, device)
            bar.set_postfix(epoch=epoch + 1, test_acc=f"{accuracy:.4f}")
            log.info("%s epoch %d/%d: test accuracy %.4f, test loss %.4f", name, epoch + 1, settings.epochs, accuracy, loss_value)
    return accuracy, loss_value


def backward_in_parts(model: nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor, target: torch.Tensor,
                      part: int) -> None:
    """Gradients of the batch's mean cross-entropy, computed ``part`` images at a time (accumulated).

    A batch of at most ``part`` images is one forward and backward pass. A
    larger one (big images: :func:`~fashiongen.data.batches.bounded_batch`)
    is split, so the activations held for the backward pass are those of
    ``part`` images; each part's loss is weighted by its share of the batch,
    so the gradient is the batch mean's, except that BatchNorm normalises
    each part by its own statistics ("ghost batch norm", Hoffer et al. 2017).
    """
    if len(batch) <= part:
        loss = F.cross_entropy(model(batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return
    optimizer.zero_grad(set_to_none=True)
    for start in range(0, len(batch), part):
        rows = slice(start, start + part)
        share = len(target[rows]) / len(target)
        (F.cross_entropy(model(batch[rows]), target[rows]) * share).backward()


def test_accuracy(model: nn.Module, images: Images, labels: np.ndarray, device: torch.device) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy on a labelled split (read in batches of 1000)."""
    _, logits = extract(model, images, batch_size=1000, device=device)
    target = torch.as_tensor(np.asarray(labels))
    accuracy = (logits.argmax(1) == target).float().mean().item()
    loss = F.cross_entropy(logits, target).item()
    return accuracy, loss
