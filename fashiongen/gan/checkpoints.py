"""Training checkpoints: enough state to continue a killed run bit for bit.

A checkpoint holds the training run's state (:class:`fashiongen.gan.run_state.TrainingRun`:
both networks, both optimisers, the EMA, the epoch, every random number
generator's state, the best generator so far, dvclive's step) and the *run
identity* (:mod:`fashiongen.gan.run_identity`): the code, params and data that
determine the trajectory. It is a model file (:mod:`fashiongen.model_files`)
written atomically to ``models/checkpoints/``, which is the train stage's work
area and not a DVC output: DVC never deletes, restores or pulls it, so a
finished run's outputs and the resume state never disturb each other.

Random streams across devices: the trainer's generator lives on the training
device, and a CUDA generator's state (Philox, 16 bytes) cannot be loaded into a
CPU generator (MT19937, 5,056 bytes) or the other way round. A checkpoint
records the device type of each stream; resumed on another type, that stream
is reseeded from ``train.seed`` and the epoch (:func:`reseed_value`) and the
log says so: the run continues correctly, but not bit-identically to an
uninterrupted run on one device. The CPU-side streams (torch, NumPy, Python)
always resume exactly.
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashiongen.atomic import write_json
from fashiongen.model_files import TRAIN_CHECKPOINT, read_model_file, save_model_file

log = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch_(\d{4,})\.pt$")
PUBLISHED_NAME = "published.json"
RESEED_SALT = 0x6A09E667  # a stream reseeded on another device differs from any seed a run starts with


def capture_rng(trainer_rng: torch.Generator) -> dict[str, Any]:
    """The state of every RNG a training step may draw from, with the trainer stream's device type."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "trainer": trainer_rng.get_state(),
        "trainer_device": trainer_rng.device.type,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def reseed_value(seed: int, epoch: int) -> int:
    """The seed of a stream that cannot resume on this device: a function of ``train.seed`` and the epoch."""
    return (seed * 1_000_003 + epoch) ^ RESEED_SALT


def set_generator_state(generator: torch.Generator, state: torch.Tensor, saved_device: str | None,
                        fallback_seed: int, what: str) -> bool:
    """Load ``state`` into ``generator``, or reseed it with ``fallback_seed`` when it was another device's stream.

    ``saved_device`` is the device type the state was captured on (None for
    checkpoints that did not record it: then the state's size decides).
    Returns True when the stream resumed exactly.
    """
    current = generator.device.type
    foreign = saved_device is not None and saved_device != current
    if not foreign and state.numel() != generator.get_state().numel():
        foreign = True
    if not foreign:
        generator.set_state(state)
        return True
    log.warning(
        "%s was a %s random stream and this run is on %s: it is reseeded (train.seed, epoch) instead; "
        "training continues correctly but not bit-identically to an uninterrupted run",
        what, saved_device or "another device's", current,
    )
    generator.manual_seed(fallback_seed)
    return False


def restore_rng(state: dict[str, Any], trainer_rng: torch.Generator, fallback_seed: int = 0) -> None:
    """Restore :func:`capture_rng`'s streams; a foreign-device trainer stream is reseeded (see the module doc)."""
    set_generator_state(trainer_rng, state["trainer"], state.get("trainer_device"), fallback_seed, "the trainer's noise stream")
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached"])
    )
    random.setstate(_as_tuples(state["python"]))


def _as_tuples(value: Any) -> Any:
    """random.setstate wants tuples; serialisation may hand back lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    return value


def shape_differences(saved: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """``["discriminator.project.weight: (10, 3136) -> (10, 64)", ...]``: tensors whose shape changed.

    Equal params can still mean other networks when the code that builds them
    changed; such a checkpoint cannot be loaded, so it counts as another run.
    """
    differences = []
    for network, tensors in current.items():
        old = saved.get(network, {})
        for name in sorted(set(old) | set(tensors)):
            before = tuple(old[name].shape) if name in old else "<absent>"
            after = tuple(tensors[name].shape) if name in tensors else "<absent>"
            if before != after:
                differences.append(f"{network}.{name}: {before} -> {after}")
    return differences


@dataclass
class CheckpointStore:
    """The checkpoints of one run in ``folder``, newest kept, older pruned to ``keep``.

    ``folder/published.json`` records which checkpoint's run has had its
    outputs published (swapped into ``models/`` and ``results/``): such a run
    is finished, and is never resumed by accident.
    """

    folder: Path
    keep: int = 2

    def path_for(self, epoch: int) -> Path:
        return self.folder / f"epoch_{epoch:04d}.pt"

    def existing(self) -> list[Path]:
        """Checkpoint files, newest (highest epoch) first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [path for _, path in sorted(found, reverse=True)]

    def newest(self) -> Path | None:
        existing = self.existing()
        return existing[0] if existing else None

    def save(self, payload: dict[str, Any]) -> Path:
        path = self.path_for(payload["epoch"])
        save_model_file(path, TRAIN_CHECKPOINT, payload)
        for stale in self.existing()[self.keep :]:
            stale.unlink(missing_ok=True)
        return path

    def clear(self) -> None:
        """Remove every checkpoint, leftover temporary file and the published mark."""
        for path in self.existing():
            path.unlink()
        if self.folder.is_dir():
            for leftover in self.folder.glob(".epoch_*.tmp"):
                leftover.unlink()
        (self.folder / PUBLISHED_NAME).unlink(missing_ok=True)

    def mark_published(self, identity_digest: str, epoch: int) -> None:
        write_json(self.folder / PUBLISHED_NAME, {"identity": identity_digest, "epoch": epoch})

    def is_published(self, identity_digest: str, epoch: int) -> bool:
        try:
            mark = json.loads((self.folder / PUBLISHED_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return mark == {"identity": identity_digest, "epoch": epoch}

    def newest_readable(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads (with ``path`` added), or None; damaged ones are reported and passed over."""
        for path in self.existing():
            try:
                payload = read_model_file(path, TRAIN_CHECKPOINT)
            except Exception as exc:  # a damaged file can raise many exception types
                log.warning("%s is unreadable (%s); trying the previous checkpoint", path, str(exc)[:200])
                continue
            payload["path"] = str(path)
            return payload
        return None
