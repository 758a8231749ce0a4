"""The state of one training run, and whether a checkpoint may continue it.

:class:`TrainingRun` is everything that determines the rest of a run: the
trainer (networks, optimisers, EMA, random streams), the stream that draws the
data order, the epoch reached, the best generator so far (by in-training FID),
the last statistics and dvclive's position. ``state_dict()`` is what a
checkpoint stores and ``load_state_dict()`` what a resume restores: one pair.

:func:`resume_plan` decides what a checkpoint means for the run about to start:

- ``resume``: same identity, interrupted before its last epoch: continue;
- ``publish``: same identity and its last epoch checkpointed: write the
  outputs from it, train nothing. Either its outputs were never published
  (killed in between), or they were and DVC reruns the stage for a change the
  run cannot see: a param it does not use (``model.clusters`` on a label
  model), a comment in the code, ``dvc repro -f``. The same run gives the
  same outputs, so it is published again in seconds (``train.resume: false``
  trains it again from scratch). Not when ``train.log_every`` (the logs it
  publishes were written while training), ``train.device``, ``train.amp`` or
  ``train.compile`` (they change the numbers) changed: :data:`PUBLISHED_WITH`;
- ``extend``: with ``train.extend``, a finished run of the same identity but
  fewer epochs: continue it up to ``train.epochs``;
- ``fresh``: anything else (another identity, a run of more epochs than
  asked): train from scratch, with the reason logged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from fashiongen.gan.checkpoints import reseed_value, set_generator_state
from fashiongen.gan.run_identity import identity_differences, without_epochs
from fashiongen.gan.trainer import GANTrainer


@dataclass
class TrainingRun:
    """A run's state between epochs (see the module doc); ``epoch`` is the last one completed."""

    trainer: GANTrainer
    order_rng: torch.Generator  # draws each epoch's permutation (the trainer's own stream in one process)
    seed: int  # train.seed: reseeds a stream that cannot resume on this device
    epoch: int = 0
    last: dict[str, float] = field(default_factory=dict)  # statistics of the last logging window (+ fid, train_wall_s)
    best: dict[str, Any] | None = None  # the best epoch's generator: {"state_dict", "epoch", "fid"}
    live_step: int = 0
    live_summary: dict[str, Any] = field(default_factory=dict)
    # what the run was started with beyond its identity, to name what changed since: {"params": every param
    # (model.condition resolved), "source": the training code's byte digest}; saved, never restored
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def best_fid(self) -> float:
        """The lowest in-training FID so far (inf before the first)."""
        fid = self.best["fid"] if self.best else None
        return math.inf if fid is None else fid

    def state_dict(self) -> dict[str, Any]:
        separate_order = self.order_rng is not self.trainer.rng
        return {
            "epoch": self.epoch,
            "trainer": self.trainer.state_dict(),
            "order_rng": self.order_rng.get_state() if separate_order else None,
            "order_rng_device": self.order_rng.device.type,
            "last": dict(self.last),
            "best": self.best,
            "live_step": self.live_step,
            "live_summary": dict(self.live_summary),
            "record": dict(self.record),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        fallback = reseed_value(self.seed, self.epoch)
        self.trainer.load_state_dict(state["trainer"], fallback_seed=fallback)
        if self.order_rng is not self.trainer.rng:
            # a one-process checkpoint drew its permutation from the trainer's stream
            saved = state["order_rng"] if state.get("order_rng") is not None else state["trainer"]["rng"]["trainer"]
            set_generator_state(self.order_rng, saved, state.get("order_rng_device"), fallback ^ 1, "the data order stream")
        self.last = dict(state["last"])
        self.best = state.get("best")
        self.live_step = int(state["live_step"])
        self.live_summary = dict(state["live_summary"])


Action = Literal["resume", "publish", "extend", "fresh"]


# train.* params outside the identity (a run interrupted under other values still resumes) that a finished run
# must share to be published again: the logs' spacing is in its outputs, and the device, bf16 autocast and
# torch.compile change its numbers (someone who changes them wants that run)
PUBLISHED_WITH = ("train.log_every", "train.device", "train.amp", "train.compile")


def resume_plan(
    checkpoint: dict[str, Any] | None, identity: dict[str, Any], epochs: int, *, resume: bool, extend: bool,
    published: bool, defaults: dict[str, Any] | None = None, record: dict[str, Any] | None = None,
) -> tuple[Action, str]:
    """What to do with ``checkpoint`` (the newest readable one, or None) for a run of ``identity``; and why.

    ``published``: the checkpoint's run has had its outputs published.
    ``defaults`` fills identity keys the checkpoint lacks (params added since).
    ``record`` (:attr:`TrainingRun.record` of the run about to start) names, in the reason, the params and
    code that changed outside the identity.
    """
    if checkpoint is None:
        return "fresh", "no checkpoint"
    where = checkpoint.get("path", "the checkpoint")
    if not resume:
        return "fresh", "train.resume is false"
    saved, reached = checkpoint["identity"], int(checkpoint["epoch"])
    differences = identity_differences(saved, identity, defaults=defaults)
    if not differences:
        if reached < epochs:
            return "resume", f"resuming from {where} (epoch {reached}, step {checkpoint['global_step']})"
        if not published:
            return "publish", f"{where} ends the run (epoch {reached}); writing its outputs, training nothing"
        unseen = changes_outside_identity(checkpoint.get("record") or {}, record or {})
        made_with = [change for change in unseen if change.split(":")[0] in PUBLISHED_WITH]
        if made_with:
            return "fresh", (f"{where} is a finished run of these params and code, but it was made with other "
                             f"settings ({'; '.join(made_with)}); training again from scratch")
        changed = f"changed since, none of it used by this run: {'; '.join(unseen)}" if unseen else "nothing changed"
        return "publish", (f"{where} is this run, finished (epoch {reached}) and nothing it uses changed ({changed}): "
                           "publishing it again, training nothing (train.resume: false trains it again)")
    if extend and not identity_differences(without_epochs(saved), without_epochs(identity), defaults=defaults):
        if reached < epochs:
            return "extend", f"train.extend: continuing the finished run in {where} from epoch {reached} to {epochs}"
        return "fresh", f"train.extend: {where} has {reached} epochs, not fewer than train.epochs={epochs}; training from scratch"
    return "fresh", f"{where} belongs to another run ({'; '.join(differences)}); training from scratch"


def changes_outside_identity(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed between two :attr:`TrainingRun.record`: ``["model.clusters: 20 -> 7",
    "code: comments, docstrings or layout only"]``.

    Empty where ``saved`` predates records (nothing can be named).
    """
    if not saved or not current:
        return []
    changes = identity_differences(saved.get("params", {}), current.get("params", {}))
    if saved.get("source") != current.get("source"):
        changes.append("code: comments, docstrings or layout only")
    return changes
