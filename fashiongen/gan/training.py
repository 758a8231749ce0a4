"""The training loop: the networks built from params, batches drawn by index, epochs trained and checkpointed.

The train stage (:mod:`fashiongen.pipeline.train`) prepares a
:class:`TrainingLoop` and calls :func:`train_epochs`; benchmarks build the same
trainer with :func:`build_trainer`.

The training split (up to ``data.preload_max_gb``) is held on the training
device as one uint8 tensor and batches are drawn by index from a seeded
permutation: no DataLoader, no per-image Python, no host-to-device copy per
step; a larger split is read batch by batch from its memory map
(:mod:`fashiongen.data.batches`). Statistics stay on the device and are read
every ``train.log_every`` steps, which is when dvclive, the progress bar and
the NaN check see them. For each epoch the loop trains, samples a grid,
measures FID and checkpoints (``train.checkpoint_every``): logs, grids and
checkpoints go to the work area ``models/checkpoints/``, never to the stage's
outputs.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Iterator

import torch

from fashiongen import runtime
from fashiongen.config import Params, TrainConfig
from fashiongen.data.batches import ImageSource
from fashiongen.device import autocast_dtype
from fashiongen.errors import TrainingDiverged
from fashiongen.gan import distributed
from fashiongen.gan.artifact import GeneratorSpec, build_generator, cpu_state
from fashiongen.gan.augment import make_augment
from fashiongen.gan.checkpoints import CheckpointStore
from fashiongen.gan.conditions import Conditions, kind_for
from fashiongen.gan.distributed import Ranks
from fashiongen.gan.ema import GeneratorEMA, recompute_batchnorm
from fashiongen.gan.live import open_live
from fashiongen.gan.losses import make_loss
from fashiongen.gan.monitor import FidMonitor
from fashiongen.gan.outputs import TrainPaths
from fashiongen.gan.run_state import TrainingRun
from fashiongen.gan.sampling import generate_uint8, noise
from fashiongen.gan.schedules import RunSchedule, make_schedule
from fashiongen.gan.trainer import STAT_NAMES, GANTrainer, make_adam
from fashiongen.images import save_grid, to_model_range
from fashiongen.models.factory import build_discriminator
from fashiongen.progress import progress_bar

log = logging.getLogger(__name__)

GRID_SAMPLES = 64  # 8×8 preview grid per epoch
ORDER_SEED_SALT = 0x5EED  # several processes: the shared permutation's seed differs from any noise seed


def build_trainer(
    params: Params, channels: int, image_size: int, device: torch.device,
    num_classes: int = 0, encoding_dim: int = 0, encoder: str | None = None, conditions: Conditions | None = None,
    total_steps: int = 0,
) -> tuple[GeneratorSpec, GANTrainer]:
    """The networks, optimisers and options of ``params``.

    ``num_classes``: the codes of the condition (classes, or clusters for ``cluster``); ``encoding_dim``/``encoder``
    for condition encoding; ``conditions``: the training conditions, for a kind that learns from them before
    training (``cluster``: its clusters' shares); ``total_steps``: the run's steps, the schedules' horizon
    (0: none, the multipliers stay at their start).
    """
    cfg, model = params.train, params.model
    kind = kind_for(model.condition, labelled=num_classes > 0)  # the train stage resolves auto first (data.labelled)
    cond_dim = kind.width(model.embed_dim, encoding_dim)
    spec = GeneratorSpec(
        z_dim=model.z_dim + kind.extra_noise, width=model.g_width, channels=channels, image_size=image_size,
        arch=model.arch, condition=kind.name, num_classes=num_classes if kind.takes_code else 0, cond_dim=cond_dim,
        encoder=encoder if kind.uses_encoder else None, modulation=model.g_cond == "modulation" and kind.takes_code,
        arch_options=model.arch_options(),
    )
    generator = build_generator(spec)
    if conditions is not None:
        kind.prepare_generator(generator, conditions.values, num_classes)
    generator = generator.to(device).to(memory_format=torch.channels_last)
    discriminator = build_discriminator(
        model.arch, model.d_width, channels, image_size,
        norm=model.resolved_d_norm(), spectral_norm=model.spectral_norm, dropout=model.d_dropout,
        condition=kind.name, num_classes=num_classes, cond_dim=cond_dim, arch_options=model.arch_options(),
    ).to(device).to(memory_format=torch.channels_last)
    betas = (cfg.beta1, cfg.beta2)
    trainer = GANTrainer(
        generator=generator,
        discriminator=discriminator,
        loss=make_loss(params.model.loss),
        opt_g=make_adam(generator.parameters(), lr=cfg.lr_g, betas=betas),
        opt_d=make_adam(discriminator.parameters(), lr=cfg.lr_d, betas=betas),
        z_dim=spec.z_dim,
        rng=torch.Generator(device=device).manual_seed(cfg.seed),
        amp_dtype=autocast_dtype(device, amp=cfg.amp, cpu_bf16=cfg.cpu_bf16),
        compile=cfg.compile,
        d_steps=cfg.d_steps,
        gp_weight=model.gp_weight,
        r1_gamma=model.r1_gamma,
        r2_gamma=model.resolved_r2_gamma(),
        reg_every=model.reg_every,
        reg_chunk=cfg.resolved_reg_chunk(image_size),
        schedule=RunSchedule(make_schedule(cfg.schedule), cfg.lr_end_ratio, cfg.gamma_end_ratio,
                             total_images=total_steps * cfg.batch_size, images_per_update=cfg.batch_size),
        augment=make_augment(cfg.augment),
        ema=GeneratorEMA(generator, cfg.ema_kimg, cfg.batch_size * cfg.d_steps, cfg.ema_rampup)
        if cfg.ema_kimg > 0 else None,
    )
    return spec, trainer


def batches(
    images: torch.Tensor | ImageSource, batch_size: int, rng: torch.Generator, conditions: Conditions,
    ranks: Ranks = Ranks(), steps: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Full batches of one epoch, drawn by index from a fresh permutation: (images in [-1, 1], their conditions).

    With several processes every rank draws the same permutation (``rng`` is
    seeded alike) and keeps its own slice of each global batch. ``steps``
    (``train.steps_per_epoch``) stops after that many batches.
    """
    take = images.take if isinstance(images, ImageSource) else images.__getitem__
    order = torch.randperm(len(images), device=images.device, generator=rng)
    starts = range(0, len(images) - batch_size + 1, batch_size)
    for start in starts[:steps]:
        index = ranks.shard(order[start : start + batch_size])
        real = to_model_range(take(index)).contiguous(memory_format=torch.channels_last)
        yield real, conditions.of(index)


@dataclass
class TrainingLoop:
    """The training loop's state in one typed object: the run, its config and data, its counters, where it writes.

    ``run`` holds what changes (networks, optimisers, random streams, the epoch
    reached, the best generator); the rest is fixed for the run. The step
    counters and the schedules' inputs derive from ``run.epoch`` and the
    trainer's updates (:class:`~fashiongen.gan.schedules.RunSchedule`), never
    from a second count.
    """

    run: TrainingRun
    cfg: TrainConfig
    paths: TrainPaths
    images: torch.Tensor | ImageSource  # uint8 N×C×H×W training images on the device, or read per batch
    conditions: Conditions
    store: CheckpointStore
    identity: dict  # the run's identity (:mod:`fashiongen.gan.run_identity`), saved in every checkpoint
    steps_per_epoch: int
    ranks: Ranks
    device: torch.device
    fid: FidMonitor | None = None  # rank 0 with train.eval_every > 0

    @property
    def total_steps(self) -> int:
        """Steps (D updates) of the whole run."""
        return self.cfg.epochs * self.steps_per_epoch

    def global_step(self, epoch: int, step: int = 0) -> int:
        """Steps done after ``step`` steps of ``epoch`` (1-based; ``step`` 0 = at its start)."""
        return (epoch - 1) * self.steps_per_epoch + step

    def checkpoint(self, epoch: int) -> dict:
        """What a checkpoint at the end of ``epoch`` stores."""
        return {"identity": self.identity, "global_step": self.global_step(epoch + 1), **self.run.state_dict()}


def train_epochs(loop: TrainingLoop) -> None:
    """Epochs ``run.epoch + 1 .. train.epochs``: train, sample a grid, measure FID, log, checkpoint (rank 0)."""
    run, cfg, paths, ranks, device = loop.run, loop.cfg, loop.paths, loop.ranks, loop.device
    if run.epoch >= cfg.epochs:
        return  # a finished run whose outputs are still to be published
    fixed_z, fixed_cond = noise(GRID_SAMPLES, run.trainer.z_dim, cfg.seed), loop.conditions.grid(GRID_SAMPLES)
    # wall time of the whole training, across resumes: what `dvc exp show` compares budgets by
    wall_before, started = float(run.last.get("train_wall_s", 0.0)), time.perf_counter()
    live = open_live(paths.staging, (run.live_step, run.live_summary) if run.epoch else None) if ranks.is_main else None
    bar = progress_bar(loop.total_steps, "train", initial=loop.global_step(run.epoch + 1), disable=not ranks.is_main)
    try:
        for epoch in range(run.epoch + 1, cfg.epochs + 1):
            run.last = train_one_epoch(loop, epoch, live, bar)
            run.epoch = epoch
            if not ranks.is_main:
                continue
            sampler = ready_sampler(run.trainer, loop.conditions, cfg, device)
            save_grid(paths.staging_samples / f"epoch_{epoch:04d}.png",
                      generate_uint8(sampler, fixed_z, GRID_SAMPLES, device, fixed_cond))
            if loop.fid is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                run.last["fid"] = loop.fid.measure(sampler)
                log.info("epoch %d: FID %.3f (%d samples)", epoch, run.last["fid"], len(loop.fid.z))
                if run.last["fid"] < run.best_fid:
                    run.best = {"state_dict": cpu_state(sampler), "epoch": epoch, "fid": run.last["fid"]}
            run.last["train_wall_s"] = wall_before + time.perf_counter() - started
            log_stats(live, run.last, epoch=epoch)
            run.live_step, run.live_summary = live.step, dict(live.summary)
            bar.set_postfix({k: f"{run.last[k]:.3f}" for k in STAT_NAMES})
            saved = epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs
            if saved:
                loop.store.save(loop.checkpoint(epoch))
            if epoch < cfg.epochs and cfg.resume:
                restart_if_the_load_changed(loop, epoch, saved)
    finally:
        bar.close()
        if live is not None:
            live.end()


def restart_if_the_load_changed(loop: TrainingLoop, epoch: int, saved: bool) -> None:
    """Restart this stage process with the other OpenMP wait policy when the machine's load asks for it.

    The machine turned from idle to shared or back for long enough
    (:func:`fashiongen.runtime.restart_wanted`): the epoch's checkpoint is
    saved (if it was not), and the process replaces itself with the same
    command, which resumes from it bit-identically (same thread count, same
    state). Returns where no restart is wanted.
    """
    load = runtime.restart_wanted()
    if load is None:
        return
    if not saved:
        loop.store.save(loop.checkpoint(epoch))
    log.info("the machine's load changed (%s): restarting from the checkpoint of epoch %d with the other OpenMP "
             "wait policy (the run resumes on the same weights)", load.describe(), epoch)
    runtime.restart_with_other_policy()


def ready_sampler(trainer: GANTrainer, conditions: Conditions, cfg, device) -> torch.nn.Module:
    """The generator to sample now: the EMA average with its BatchNorm statistics recomputed."""
    if trainer.ema is not None:
        recompute_batchnorm(trainer.ema.module, trainer.z_dim, cfg.batch_size, cfg.seed, device, conditions.sample)
    return trainer.sampler


def train_one_epoch(loop: TrainingLoop, epoch: int, live, bar) -> dict[str, float]:
    """One pass over a fresh permutation; returns the statistics of its last logging window.

    ``live`` (dvclive) is None on ranks other than 0; ``bar`` is the progress
    bar. The statistics are averaged over the ranks, so a divergence stops
    every rank at the same step.
    """
    cfg, run, steps = loop.cfg, loop.run, loop.steps_per_epoch
    window = _StatWindow(loop.images.device, loop.ranks)
    drawn = batches(loop.images, cfg.batch_size, run.order_rng, loop.conditions, loop.ranks, steps)
    for step, (real, cond) in enumerate(drawn):
        window.add(run.trainer.step(real, cond), len(real))
        bar.update()
        global_step = loop.global_step(epoch, step + 1)
        # the epoch's last window is logged by the caller, together with the epoch's FID
        if global_step % cfg.log_every == 0 and step < steps - 1:
            stats = check_finite(window.flush(), global_step, loop.store)
            if live is not None:
                log_stats(live, stats, epoch=global_step / steps)
            bar.set_postfix({k: f"{stats[k]:.3f}" for k in STAT_NAMES})
    return check_finite(window.flush(), loop.global_step(epoch + 1), loop.store)


def check_finite(stats: dict[str, float], global_step: int, store: CheckpointStore) -> dict[str, float]:
    """Stop at the first logging window with a NaN or infinite statistic."""
    bad = {k: v for k, v in stats.items() if k in STAT_NAMES and not math.isfinite(v)}
    if bad:
        newest = store.newest()
        good = f"the last good checkpoint is {newest}" if newest else "no checkpoint was written yet"
        values = ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if k in STAT_NAMES)
        raise TrainingDiverged(
            f"training diverged by step {global_step} ({values}); nothing was saved as the model and "
            f"{good}. Lower train.lr_g / train.lr_d or try another model.loss."
        )
    return stats


class _StatWindow:
    """Sums step statistics on the device; one host sync per flush."""

    def __init__(self, device: torch.device, ranks: Ranks = Ranks()):
        self.ranks = ranks  # several processes: the means are averaged over the ranks
        self.sums = torch.zeros(len(STAT_NAMES), device=device)
        self.steps = 0
        self.images = 0
        self.started = time.perf_counter()

    def add(self, stats: torch.Tensor, batch: int) -> None:
        self.sums += stats
        self.steps += 1
        self.images += batch

    def flush(self) -> dict[str, float]:
        means = self.sums / max(self.steps, 1)
        if self.ranks.enabled:
            means = distributed.average_tensor(means)
        elapsed = time.perf_counter() - self.started
        stats = dict(zip(STAT_NAMES, means.tolist()))
        # images of all ranks per second of wall time
        stats["images_per_s"] = self.images * self.ranks.world_size / elapsed if elapsed > 0 else float("nan")
        self.sums.zero_()
        self.steps = self.images = 0
        self.started = time.perf_counter()
        return stats


def log_stats(live, stats: dict, epoch: float) -> None:
    for name, value in stats.items():
        live.log_metric(name, value)
    live.log_metric("epoch", epoch)
    live.next_step()
