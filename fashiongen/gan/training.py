"""The train stage: fit a GAN on the prepared images and write the generator.

The whole training split is held on the training device as one uint8 tensor
and batches are drawn by index from a seeded permutation: no DataLoader, no
per-image Python, no host-to-device copy per step. Statistics stay on the
device and are read every ``train.log_every`` steps, which is when dvclive,
the progress bar and the NaN check see them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fashiongen.atomic import reset_directory
from fashiongen.config import Params
from fashiongen.data.prepared import load_prepared
from fashiongen.device import resolve_device
from fashiongen.errors import ConfigError, TrainingDiverged
from fashiongen.gan.artifact import GeneratorSpec, build_generator, save_generator
from fashiongen.gan.losses import make_loss
from fashiongen.gan.sampling import generate_uint8, noise
from fashiongen.gan.trainer import STAT_NAMES, GANTrainer
from fashiongen.images import save_grid, to_model_range
from fashiongen.metrics.features import extract, load_evaluator
from fashiongen.metrics.scores import frechet_distance
from fashiongen.models.dcgan import Discriminator
from fashiongen.progress import progress_bar
from fashiongen.seeding import seed_everything

log = logging.getLogger(__name__)

GRID_SAMPLES = 64  # 8×8 preview grid per epoch


@dataclass(frozen=True)
class TrainPaths:
    prepared: Path
    evaluator: Path
    generator: Path
    results: Path  # dvclive folder; sample grids go to results/samples

    @property
    def samples(self) -> Path:
        return self.results / "samples"


class FidMonitor:
    """Quick FID during training: fixed noise, fixed real images, the evaluator's features."""

    def __init__(self, evaluator_path: Path, real_images: np.ndarray, n: int, seed: int, z_dim: int, device):
        self.evaluator = load_evaluator(evaluator_path, device)
        choice = np.random.default_rng(seed).choice(len(real_images), size=min(n, len(real_images)), replace=False)
        self.real_features, _ = extract(self.evaluator.model, real_images[np.sort(choice)], 1000, device)
        self.z = noise(len(choice), z_dim, seed + 1)
        self.device = device

    def measure(self, generator: torch.nn.Module) -> float:
        fakes = generate_uint8(generator, self.z, 1000, self.device)
        fake_features, _ = extract(self.evaluator.model, fakes, 1000, self.device)
        return frechet_distance(self.real_features, fake_features)


def build_models(params: Params, channels: int, image_size: int, device: torch.device):
    spec = GeneratorSpec(
        z_dim=params.model.z_dim, width=params.model.g_width, channels=channels, image_size=image_size
    )
    generator = build_generator(spec).to(device).to(memory_format=torch.channels_last)
    discriminator = Discriminator(params.model.d_width, channels, image_size).to(device)
    return spec, generator, discriminator.to(memory_format=torch.channels_last)


def train_gan(params: Params, paths: TrainPaths) -> dict:
    """Train, logging to dvclive in ``paths.results``; returns the final statistics."""
    from dvclive import Live

    cfg = params.train
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = load_prepared(paths.prepared)
    train_split = data.split("train", mmap=False)
    images = torch.from_numpy(train_split.images).to(device)
    steps_per_epoch = len(images) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={cfg.batch_size} exceeds the {len(images)} training images; lower it.")

    spec, generator, discriminator = build_models(params, data.channels, data.image_size, device)
    betas = (cfg.beta1, cfg.beta2)
    trainer = GANTrainer(
        generator=generator,
        discriminator=discriminator,
        loss=make_loss(params.model.loss),
        opt_g=torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=betas),
        opt_d=torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_d, betas=betas),
        z_dim=spec.z_dim,
        rng=torch.Generator(device=device).manual_seed(cfg.seed),
    )
    fixed_z = noise(GRID_SAMPLES, spec.z_dim, cfg.seed)
    fid = None
    if cfg.eval_every:
        test_images = data.split("test").images
        fid = FidMonitor(paths.evaluator, test_images, cfg.eval_samples, cfg.seed, spec.z_dim, device)

    reset_directory(paths.samples)  # inputs are valid: now the previous run's grids may go
    log.info(
        "training on %s: %d images, %d steps/epoch, %d epochs", device, len(images), steps_per_epoch, cfg.epochs
    )
    last = {}
    with Live(dir=str(paths.results), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        window = _StatWindow(device)
        with progress_bar(cfg.epochs * steps_per_epoch, "train") as bar:
            for epoch in range(1, cfg.epochs + 1):
                order = torch.randperm(len(images), device=device, generator=trainer.rng)
                for step in range(steps_per_epoch):
                    index = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                    real = to_model_range(images[index]).contiguous(memory_format=torch.channels_last)
                    window.add(trainer.step(real), len(index))
                    bar.update()
                    global_step = (epoch - 1) * steps_per_epoch + step + 1
                    # the epoch's last window is logged below, together with the epoch's FID
                    if global_step % cfg.log_every == 0 and step < steps_per_epoch - 1:
                        last = window.flush(global_step)
                        _log_stats(live, last, epoch=global_step / steps_per_epoch)
                        bar.set_postfix({k: f"{last[k]:.3f}" for k in STAT_NAMES})
                last = window.flush(global_step)
                save_grid(paths.samples / f"epoch_{epoch:04d}.png", generate_uint8(generator, fixed_z, GRID_SAMPLES, device))
                if fid is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                    last["fid"] = fid.measure(generator)
                    log.info("epoch %d: FID %.3f (%d samples)", epoch, last["fid"], len(fid.z))
                _log_stats(live, last, epoch=epoch)
                bar.set_postfix({k: f"{last[k]:.3f}" for k in STAT_NAMES})

    save_generator(paths.generator, generator, spec, data.classes, params.model_dump())
    return last


class _StatWindow:
    """Sums step statistics on the device; one host sync per flush."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(len(STAT_NAMES), device=device)
        self.steps = 0
        self.images = 0
        self.started = time.perf_counter()

    def add(self, stats: torch.Tensor, batch: int) -> None:
        self.sums += stats
        self.steps += 1
        self.images += batch

    def flush(self, global_step: int) -> dict:
        means = (self.sums / max(self.steps, 1)).tolist()
        elapsed = time.perf_counter() - self.started
        stats = dict(zip(STAT_NAMES, means))
        bad = {k: v for k, v in stats.items() if not math.isfinite(v)}
        if bad:
            raise TrainingDiverged(
                f"training diverged at step {global_step}: non-finite {bad}; nothing was saved as the model. "
                "Lower train.lr_g / train.lr_d or change model.loss."
            )
        stats["images_per_s"] = self.images / elapsed if elapsed > 0 else float("nan")
        self.sums.zero_()
        self.steps = self.images = 0
        self.started = time.perf_counter()
        return stats


def _log_stats(live, stats: dict, epoch: float) -> None:
    for name, value in stats.items():
        live.log_metric(name, value)
    live.log_metric("epoch", epoch)
    live.next_step()
