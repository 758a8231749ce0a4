"""Training checkpoints: enough state to continue a killed run bit for bit.

A checkpoint holds both networks, both optimisers, the epoch and step, every
random number generator's state (the trainer's own, torch's CPU and CUDA
generators, NumPy's and Python's), dvclive's step, and the *run identity*:
the params and data fingerprint that determine the training trajectory. It is
written atomically (temp file, fsync, rename) to ``models/checkpoints/``.

On start, the train stage resumes from the newest checkpoint that loads and
whose run identity equals the current one. A checkpoint that does not load
(truncated, corrupt) is reported and the previous one tried. A checkpoint of
another run (other params or data, or networks of other shapes because the
code that builds them changed) is reported with what differs, and training
starts afresh.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashiongen.atomic import save_torch

log = logging.getLogger(__name__)

FORMAT = "fashiongen.train-checkpoint.v1"
_NAME = re.compile(r"^epoch_(\d{4,})\.pt$")


def capture_rng(trainer_rng: torch.Generator) -> dict[str, Any]:
    """The state of every RNG a training step may draw from."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "trainer": trainer_rng.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any], trainer_rng: torch.Generator) -> None:
    trainer_rng.set_state(state["trainer"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
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


def identity_differences(
    saved: dict[str, Any], current: dict[str, Any], prefix: str = "", defaults: dict[str, Any] | None = None
) -> list[str]:
    """``["train.lr_g: 0.0002 -> 0.0001", ...]``: where two run identities differ.

    ``defaults`` (same layout) fills keys that ``saved`` lacks: params added
    since the checkpoint was written, whose defaults keep the old behaviour.
    """
    defaults = defaults or {}
    differences = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        old, new = saved.get(key, defaults.get(key, "<absent>")), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            differences += identity_differences(old, new, prefix=f"{name}.", defaults=defaults.get(key))
        elif old != new:
            differences.append(f"{name}: {old!r} -> {new!r}")
    return differences


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
    """The checkpoints of one run in ``folder``, newest kept, older pruned to ``keep``."""

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
        save_torch(path, {"format": FORMAT, **payload})
        for stale in self.existing()[self.keep :]:
            stale.unlink(missing_ok=True)
        return path

    def clear(self) -> None:
        for path in self.existing():
            path.unlink()
        for leftover in self.folder.glob(".epoch_*.tmp") if self.folder.is_dir() else []:
            leftover.unlink()

    def load_resumable(
        self, identity: dict[str, Any], networks: dict[str, dict] | None = None, defaults: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The newest readable checkpoint of this run, or None (with the reason logged).

        ``networks`` (``{"generator": state_dict, ...}``) are the networks it
        must load into; a checkpoint whose tensors have other shapes is of
        another run, as one of other params is. ``defaults`` stand in for
        identity keys the checkpoint lacks (see :func:`identity_differences`).
        """
        for path in self.existing():
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
                if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                    raise ValueError(f"not a FashionGen training checkpoint ({FORMAT})")
            except Exception as exc:  # a damaged file can raise many exception types
                log.warning("%s is unreadable (%s: %s); trying the previous checkpoint", path, type(exc).__name__, str(exc)[:120])
                continue
            differences = identity_differences(payload["identity"], identity, defaults=defaults)
            if differences:
                log.info("%s belongs to another run (%s); training from scratch", path, "; ".join(differences))
                return None
            differences = shape_differences(payload["trainer"], networks) if networks else []
            if differences:
                log.info("%s was written for networks of other shapes (%s); training from scratch",
                         path, "; ".join(differences[:3]))
                return None
            log.info("resuming from %s (epoch %d, step %d)", path, payload["epoch"], payload["global_step"])
            payload["path"] = str(path)
            return payload
        return None
