"""The trained generator as a file: everything needed to rebuild it, nothing else.

``models/generator.pt`` is a model file (:mod:`fashiongen.model_files`) with
``config`` (a :class:`GeneratorSpec` as a plain dict: architecture, sizes),
``layout`` (the version of the architecture's tensor layout,
:mod:`fashiongen.models.layouts`), ``state_dict``, ``classes`` and ``params``
(the resolved params.yaml it was trained with). It holds only tensors and
plain Python values, so it loads with ``torch.load(weights_only=True)`` and
rebuilds without params.yaml. A file of an older layout is converted on
loading, or refused with the version it has and the one needed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fashiongen.config import CONDITIONS
from fashiongen.errors import CheckpointError
from fashiongen.model_files import GENERATOR, read_model_file, save_model_file
from fashiongen.models import factory as models
from fashiongen.models import layouts


@dataclass(frozen=True)
class GeneratorSpec:
    """The shape of a generator: enough to rebuild it before loading weights."""

    z_dim: int
    width: int
    channels: int
    image_size: int
    arch: str = "dcgan"
    condition: str = "none"  # a trained model.condition (fashiongen.config.CONDITIONS: none | label | encoding | cluster)
    num_classes: int = 0
    cond_dim: int = 0  # class embedding size (label) or encoding size (encoding)
    encoder: str | None = None  # id of the encoder whose encodings it was trained on (encoding)
    modulation: bool = False  # the code also modulates every block (model.g_cond: modulation)
    arch_options: dict[str, Any] = field(default_factory=dict)  # the arch's own shape (ModelConfig.arch_options)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain values; without ``arch_options`` when empty, so older FashionGens read the file."""
        data = dataclasses.asdict(self)
        if not data["arch_options"]:
            del data["arch_options"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "checkpoint") -> "GeneratorSpec":
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - names
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = required - set(data)
        if unknown or missing:
            raise CheckpointError(
                f"{source}: generator config has unknown fields {sorted(unknown)} or lacks "
                f"{sorted(missing)}; it was written by an incompatible FashionGen version."
            )
        return cls(**data)


def build_generator(spec: GeneratorSpec) -> nn.Module:
    """The untrained network ``G(z, c)`` of ``spec``; a :class:`CheckpointError` for an unknown arch or condition."""
    if spec.condition not in CONDITIONS:
        raise CheckpointError(f"cannot build the generator: unknown condition {spec.condition!r} (known: {', '.join(CONDITIONS)}).")
    try:
        return models.build_generator(
            spec.arch, spec.z_dim, spec.width, spec.channels, spec.image_size,
            condition=spec.condition, num_classes=spec.num_classes, cond_dim=spec.cond_dim,
            modulation=spec.modulation, arch_options=spec.arch_options,
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
    """Write a generator's tensors with its config and today's layout version (what :func:`load_generator` reads)."""
    save_model_file(
        path, GENERATOR,
        {"config": spec.to_dict(), "state_dict": state, "classes": classes, "params": params, "info": extra or {}},
        layout=layouts.current(spec.arch),
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
    payload = read_model_file(path, GENERATOR, check_layout=False)
    spec = GeneratorSpec.from_dict(payload["config"], source=str(path))
    params = payload.get("params", {})
    layout = payload.get("layout")
    if layout is None:  # written before layout versions were recorded
        layout = layouts.infer_unversioned(payload["config"], params)
    state = layouts.upgrade(payload["state_dict"], payload["config"], layout, source=str(path))
    module = build_generator(spec)
    mismatches = state_dict_mismatches(module.state_dict(), state)
    if mismatches:
        raise CheckpointError(
            f"{path}: its weights do not fit its config {spec.to_dict()}: " + "; ".join(mismatches[:5])
            + ("; ..." if len(mismatches) > 5 else "")
            + ". The file was assembled from different runs; retrain with `dvc repro train`."
        )
    module.load_state_dict(state)
    module.to(device).eval()
    return LoadedGenerator(module=module, spec=spec, classes=list(payload.get("classes", [])), params=params)


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
