"""The trained generator as a file: everything needed to rebuild it, nothing else.

``models/generator.pt`` is a dict with ``format``, ``config`` (a
:class:`GeneratorSpec` as a plain dict: architecture, sizes), ``state_dict``,
``classes`` and ``params`` (the resolved params.yaml it was trained with). It
holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` and rebuilds without params.yaml.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fashiongen.atomic import save_torch
from fashiongen.errors import CheckpointError
from fashiongen.models import factory as models

FORMAT = "fashiongen.generator.v1"


@dataclass(frozen=True)
class GeneratorSpec:
    """The shape of a generator: enough to rebuild it before loading weights."""

    z_dim: int
    width: int
    channels: int
    image_size: int
    arch: str = "dcgan"
    condition: str = "none"  # none | label | encoding
    num_classes: int = 0
    cond_dim: int = 0  # class embedding size (label) or encoding size (encoding)
    encoder: str | None = None  # id of the encoder whose encodings it was trained on (encoding)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "checkpoint") -> "GeneratorSpec":
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - names
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(data)
        if unknown or missing:
            raise CheckpointError(
                f"{source}: generator config has unknown fields {sorted(unknown)} or lacks "
                f"{sorted(missing)}; it was written by an incompatible FashionGen version."
            )
        return cls(**data)


def build_generator(spec: GeneratorSpec) -> nn.Module:
    try:
        return models.build_generator(
            spec.arch, spec.z_dim, spec.width, spec.channels, spec.image_size,
            condition=spec.condition, num_classes=spec.num_classes, cond_dim=spec.cond_dim,
        )
    except ValueError as exc:
        raise CheckpointError(f"cannot build the generator: {exc}") from None


def save_generator(
    path: Path | str, generator: nn.Module, spec: GeneratorSpec, classes: list[str], params: dict,
    extra: dict | None = None,
) -> None:
    """Write ``generator`` (the EMA average when training kept one) with its config; ``extra`` records e.g. the epoch."""
    save_generator_state(path, cpu_state(generator), spec, classes, params, extra)


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module``'s tensors (safe to keep while training goes on)."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in module.state_dict().items()}


def save_generator_state(
    path: Path | str, state: dict[str, torch.Tensor], spec: GeneratorSpec, classes: list[str], params: dict,
    extra: dict | None = None,
) -> None:
    """Write a generator's tensors with its config (the format :func:`load_generator` reads)."""
    save_torch(
        path,
        {"format": FORMAT, "config": spec.to_dict(), "state_dict": state, "classes": classes, "params": params,
         "info": extra or {}},
    )


@dataclass
class LoadedGenerator:
    """A generator in eval mode with the metadata saved beside it."""

    module: nn.Module
    spec: GeneratorSpec
    classes: list[str]
    params: dict


def load_generator(path: Path | str, device: torch.device | str = "cpu") -> LoadedGenerator:
    """Rebuild a generator from ``path``; every failure names the file and the problem."""
    path = Path(path)
    payload = _read_payload(path)
    spec = GeneratorSpec.from_dict(payload["config"], source=str(path))
    module = build_generator(spec)
    mismatches = state_dict_mismatches(module.state_dict(), payload["state_dict"])
    if mismatches:
        raise CheckpointError(
            f"{path}: its weights do not fit its config {spec.to_dict()}: " + "; ".join(mismatches[:5])
            + ("; ..." if len(mismatches) > 5 else "")
            + ". The file was assembled from different runs; retrain with `dvc repro train`."
        )
    module.load_state_dict(payload["state_dict"])
    module.to(device).eval()
    return LoadedGenerator(module=module, spec=spec, classes=list(payload.get("classes", [])), params=payload.get("params", {}))


def state_dict_mismatches(expected: dict, found: dict) -> list[str]:
    """Human-readable differences between the tensors a config needs and those a file holds."""
    problems = [f"missing {name}" for name in expected if name not in found]
    problems += [f"unexpected {name}" for name in found if name not in expected]
    problems += [
        f"{name} has shape {tuple(found[name].shape)}, the config needs {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in found and tuple(found[name].shape) != tuple(tensor.shape)
    ]
    return problems


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; train a generator first (`dvc repro train`).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
            "it may be truncated or corrupt: retrain with `dvc repro train`."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a FashionGen generator (format {found!r}, expected {FORMAT!r}).")
    return payload
