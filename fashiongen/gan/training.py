"""The train stage: fit a GAN on the prepared images and write the generator.

The training split (up to ``data.preload_max_gb``) is held on the training
device as one uint8 tensor and batches are drawn by index from a seeded
permutation: no DataLoader, no per-image Python, no host-to-device copy per
step; a larger split is read batch by batch from its memory map
(:mod:`fashiongen.data.batches`). Statistics stay on the device and are read
every ``train.log_every`` steps, which is when dvclive, the progress bar and
the NaN check see them.

The loop reads: build the trainer and the run state (:mod:`fashiongen.gan.run_state`),
maybe resume, for each epoch train / sample a grid / measure FID / checkpoint,
then publish. Logs, grids and checkpoints go to the work area
``models/checkpoints/``; the stage's outputs are replaced only when the run
has finished (:mod:`fashiongen.gan.outputs`), so a run that stops for any
reason changes none of them.

Every ``train.checkpoint_every`` epochs the full training state is saved; a
run that was interrupted resumes from there when its code, params and data
are the same (:mod:`fashiongen.gan.run_identity`), and in one process ends
with the same weights as a run that was never interrupted. Anything else
trains from scratch and the log says why. Under torchrun the checkpoint holds
rank 0's random state only, so a resumed run reseeds every rank's noise: it
continues correctly but not bit-identically.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Iterator

import torch

from fashiongen.atomic import reset_directory
from fashiongen.config import Params, TrainConfig, unused_params
from fashiongen.data.batches import ImageSource, PreloadBudget, fit_batch_to_split
from fashiongen.data.prepared import load_prepared
from fashiongen.device import autocast_dtype
from fashiongen.errors import ConfigError, TrainingDiverged
from fashiongen.gan.artifact import GeneratorSpec, build_generator, cpu_state, save_generator_state
from fashiongen.gan.augment import make_augment
from fashiongen import runtime
from fashiongen.gan import distributed
from fashiongen.gan.checkpoints import CheckpointStore, shape_differences
from fashiongen.gan.conditions import Conditions, check_data_fits, encoder_of, kind_for, load_conditions
from fashiongen.gan.distributed import Ranks
from fashiongen.gan.ema import GeneratorEMA, recompute_batchnorm
from fashiongen.gan.live import open_live
from fashiongen.gan.monitor import FidMonitor
from fashiongen.gan.outputs import TrainPaths, publish_logs
from fashiongen.gan.run_lock import one_training
from fashiongen.gan.run_identity import identity_defaults, identity_digest, recorded_params, run_identity, source_digest
from fashiongen.gan.run_state import TrainingRun, resume_plan
from fashiongen.gan.losses import make_loss
from fashiongen.gan.schedules import RunSchedule, make_schedule
from fashiongen.gan.sampling import generate_uint8, noise
from fashiongen.gan.trainer import STAT_NAMES, GANTrainer, make_adam
from fashiongen.images import save_grid, to_model_range
from fashiongen.models.factory import build_discriminator
from fashiongen.progress import progress_bar
from fashiongen.seeding import seed_everything

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


def train_gan(params: Params, paths: TrainPaths) -> dict:
    """Train (or resume), logging to dvclive in the work area; on success publish the outputs; returns the last statistics."""
    cfg = params.train
    ranks, device = distributed.start(cfg.device, cfg.batch_size)
    try:
        with one_training(paths.checkpoints) if ranks.is_main else contextlib.nullcontext():  # rank 0 for all
            return _train_gan(params, paths, ranks, device)
    finally:
        distributed.stop(ranks)


def _train_gan(params: Params, paths: TrainPaths, ranks: Ranks, device: torch.device) -> dict:
    cfg = params.train
    seed_everything(ranks.seed(cfg.seed))
    data = load_prepared(paths.prepared)
    train_images = data.split("train").images  # memory-mapped: ImageSource decides what to load
    params = fit_batch_to_split(params, len(train_images), ranks.world_size)  # a small folder: one batch of all
    cfg = params.train
    steps_per_epoch = min(len(train_images) // cfg.batch_size, cfg.steps_per_epoch or len(train_images))
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={cfg.batch_size} exceeds the {len(train_images)} training images; lower it.")
    kind = kind_for(params.model.condition, data.labelled)
    layout = data.meta.get("layout", {}).get("why") or ("labelled" if data.labelled else "unlabelled")
    log.info("model.condition %s trains a %s model; %s: %s", params.model.condition, kind.name, paths.prepared, layout)
    # auto becomes the kind it trains, which the checkpoints' identity and the generator file record
    params = params.model_copy(update={"model": params.model.model_copy(update={"condition": kind.name})})
    log_unused(params)
    check_data_fits(kind, data, paths.prepared)
    images = ImageSource(train_images, device, PreloadBudget.of(params.data))
    conditions = load_conditions(kind, data.split("train").labels, data.num_classes, paths.encodings, device,
                                 take=images.take, clusters=params.model.clusters, seed=cfg.seed)
    spec, trainer = build_trainer(
        params, data.channels, data.image_size, device, num_classes=conditions.num_classes,
        encoding_dim=conditions.width, encoder=encoder_of(kind, paths.encodings), conditions=conditions,
        total_steps=cfg.epochs * steps_per_epoch,
    )
    run = TrainingRun(trainer, order_rng=trainer.rng, seed=cfg.seed,
                      record={"params": params.model_dump(), "source": source_digest()})
    if ranks.enabled:
        # several processes: a shared permutation stream, and each rank its own noise
        run.order_rng = torch.Generator(device=device).manual_seed(cfg.seed ^ ORDER_SEED_SALT)
        trainer.rng.manual_seed(ranks.seed(cfg.seed))
        trainer.grad_sync = distributed.average_gradients
    fid = None
    if cfg.eval_every and ranks.is_main:
        fid = FidMonitor(paths.evaluator, images, conditions, cfg.eval_samples, cfg.seed, spec.z_dim, device)
    store = CheckpointStore(paths.checkpoints, keep=cfg.keep_checkpoints)
    identity = run_identity(params, train_images, spec.encoder)
    action = plan_start(run, store, identity, cfg)
    # every rank starts from the same epoch (and has read the checkpoint before rank 0 may clear it)
    distributed.check_same_everywhere(ranks, run.epoch, "the epoch to start after",
                                      "models/checkpoints must be one folder that every node sees (a shared filesystem)")

    # Every input has been read and checked: from here on, the work area may change (never the outputs).
    if action == "fresh" and ranks.is_main:
        store.clear()
        reset_directory(paths.staging)
    if ranks.enabled:
        if action != "fresh":
            trainer.rng.manual_seed(ranks.seed(cfg.seed) + run.epoch)  # fresh per-rank noise after a resume
        distributed.broadcast_module(trainer.generator)
        distributed.broadcast_module(trainer.discriminator)
    if ranks.is_main and run.epoch < cfg.epochs:
        log.info("training on %s%s: %d images (%s), %d steps/epoch, epochs %d..%d", device,
                 f" × {ranks.world_size} processes" if ranks.enabled else "", len(images),
                 "in memory" if images.in_memory else "read per batch from the memory-mapped file",
                 steps_per_epoch, run.epoch + 1, cfg.epochs)
    loop = TrainingLoop(run, cfg, paths, images, conditions, store, identity, steps_per_epoch, ranks, device, fid)
    train_epochs(loop)
    distributed.barrier(ranks)
    if ranks.is_main:
        final = cpu_state(ready_sampler(trainer, conditions, cfg, device))
        publish(run, paths, store, identity, spec, data.classes, params, final)
    return run.last


def log_unused(params: Params) -> None:
    """Say which params this run does not use (``model.condition`` resolved): changing them changes nothing."""
    unused = unused_params(params)
    if unused:
        log.info("params this %s run does not use (a change of them publishes the finished run again): %s",
                 params.model.condition, ", ".join(f"{name} ({when} only)" for name, when in unused.items()))


def plan_start(run: TrainingRun, store: CheckpointStore, identity: dict, cfg) -> str:
    """Load the newest checkpoint into ``run`` when :func:`resume_plan` says so; returns the action."""
    checkpoint = store.newest_readable()
    published = checkpoint is not None and store.is_published(identity_digest(checkpoint["identity"]), checkpoint["epoch"])
    action, reason = resume_plan(checkpoint, identity, cfg.epochs, resume=cfg.resume, extend=cfg.extend,
                                 published=published, defaults=identity_defaults(), record=run.record)
    if action != "fresh":
        networks = {"generator": run.trainer.generator.state_dict(), "discriminator": run.trainer.discriminator.state_dict()}
        differences = shape_differences(checkpoint["trainer"], networks)
        if differences:
            action, reason = "fresh", (f"{checkpoint['path']} was written for networks of other shapes "
                                       f"({'; '.join(differences[:3])}); training from scratch")
    log.info("%s", reason)
    if action != "fresh":
        run.load_state_dict(checkpoint)
    return action


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


def publish(run: TrainingRun, paths: TrainPaths, store: CheckpointStore, identity: dict, spec: GeneratorSpec,
            classes: list[str], params: Params, final: dict[str, torch.Tensor]) -> None:
    """Replace the stage's outputs with the finished run's (:mod:`fashiongen.gan.outputs`), then mark it published.

    ``final`` is the last epoch's generator (the EMA average when there is
    one); ``models/generator_best.pt`` is the epoch with the lowest in-training
    FID (the last one without in-training FID), and ``models/generator.pt``
    is the one ``train.select`` names: ``last`` or ``best``.
    """
    epochs, resolved = params.train.epochs, recorded_params(params)
    last = {"state_dict": final, "epoch": epochs, "fid": run.last.get("fid")}
    best = run.best or last
    selected = best if params.train.select == "best" else last
    publish_logs(paths)
    save_generator_state(paths.best_generator, best["state_dict"], spec, classes, resolved,
                         extra={"epoch": best["epoch"], "fid": best["fid"]})
    save_generator_state(paths.generator, selected["state_dict"], spec, classes, resolved,
                         extra={"epoch": selected["epoch"], "fid": selected["fid"], "select": params.train.select})
    store.mark_published(identity_digest(identity), epochs)


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
