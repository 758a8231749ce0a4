"""The train stage: fit a GAN on the prepared images and publish the generator.

:func:`train_gan` reads the prepared data, resolves ``model.condition: auto``
from the data's layout, builds the networks (:func:`fashiongen.gan.training.build_trainer`)
and the run state (:mod:`fashiongen.gan.run_state`), decides from the newest
checkpoint whether to resume, publish again or train afresh, runs the
training loop (:func:`fashiongen.gan.training.train_epochs`) and publishes.
The stage's outputs are replaced only when the run has finished
(:mod:`fashiongen.gan.outputs`), so a run that stops for any reason changes
none of them.

Every ``train.checkpoint_every`` epochs the full training state is saved; a
run that was interrupted resumes from there when its code, the params it uses
and data are the same (:mod:`fashiongen.gan.run_identity`), and in one process
ends with the same weights as a run that was never interrupted; a finished run
of the same identity is published again without training. Anything else
trains from scratch and the log says why. Under torchrun the checkpoint holds
rank 0's random state only, so a resumed run reseeds every rank's noise: it
continues correctly but not bit-identically.
"""

from __future__ import annotations

import contextlib
import logging

import torch

from fashiongen.atomic import reset_directory
from fashiongen.config import Params, unused_params
from fashiongen.data.batches import ImageSource, PreloadBudget, fit_batch_to_split
from fashiongen.data.prepared import load_prepared
from fashiongen.errors import ConfigError
from fashiongen.gan import distributed
from fashiongen.gan.artifact import GeneratorSpec, cpu_state, save_generator_state
from fashiongen.gan.checkpoints import CheckpointStore, shape_differences
from fashiongen.gan.conditions import check_data_fits, encoder_of, kind_for, load_conditions
from fashiongen.gan.distributed import Ranks
from fashiongen.gan.monitor import FidMonitor
from fashiongen.gan.outputs import TrainPaths, publish_logs
from fashiongen.gan.run_identity import identity_defaults, identity_digest, recorded_params, run_identity, source_digest
from fashiongen.gan.run_lock import one_training
from fashiongen.gan.run_state import TrainingRun, resume_plan
from fashiongen.gan.training import ORDER_SEED_SALT, TrainingLoop, build_trainer, ready_sampler, train_epochs
from fashiongen.seeding import seed_everything

log = logging.getLogger(__name__)

__all__ = ["TrainPaths", "train_gan"]


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
    fid = None  # the in-training FID's real features: only for a run that trains (none draws global randomness)
    if cfg.eval_every and ranks.is_main and run.epoch < cfg.epochs:
        fid = FidMonitor(paths.evaluator, images, conditions, cfg.eval_samples, cfg.seed, spec.z_dim, device)
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
