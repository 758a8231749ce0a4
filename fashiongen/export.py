"""``fashiongen export``: the trained generator as ONNX or TorchScript, for use outside this repository.

The exported graph is the generator in eval mode (BatchNorm uses its running
statistics), with a dynamic batch size:

- input ``z``: float32 (B × z_dim), standard-normal noise (truncate it for
  less variety: :mod:`fashiongen.analysis.truncation`);
- input ``cond`` (conditional models only): int64 class indices (B,) for
  ``label`` models, float32 encodings (B × dim) for ``encoding`` models (made
  by the experiment's encoder, ``models/encoder.pt``);
- output ``images``: float32 (B × C × H × W) in [-1, 1]; uint8 pixels are
  ``round((x + 1) × 127.5)`` clipped to [0, 255].

A JSON file beside it (``PATH.json``) says the same in machine-readable form,
with the class names. ONNX is written by torch's ``torch.export``-based
exporter (``torch.onnx.export(dynamo=True)``, needs the ``onnx`` and
``onnxscript`` packages; runs offline) and runs in onnxruntime; TorchScript
by ``torch.jit.trace`` and loads with ``torch.jit.load`` without FashionGen.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from pathlib import Path

import torch

from fashiongen.atomic import atomic_write, write_json
from fashiongen.config import condition_traits
from fashiongen.errors import FashionGenError
from fashiongen.gan.artifact import GeneratorSpec, LoadedGenerator
from fashiongen.gan.sampling import noise

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 18
EXAMPLE_BATCH = 2


def description_path(out: Path) -> Path:
    """Where the JSON description of ``out`` goes: ``out`` + ``.json``."""
    return out.with_name(out.name + ".json")


def takes_condition(spec: GeneratorSpec) -> bool:
    """Whether the exported generator has a ``cond`` input (a condition the caller gives)."""
    return condition_traits(spec.condition).asked_for


def example_condition(spec: GeneratorSpec, batch: int, seed: int) -> torch.Tensor:
    """``batch`` valid conditions for ``spec``'s generator (export traces it with them): int64 class indices
    cycling through the classes, float32 standard-normal encodings, or ``batch`` × 0."""
    traits = condition_traits(spec.condition)
    if not traits.asked_for:
        return torch.empty(batch, 0)
    if traits.encoder:
        return torch.randn(batch, spec.cond_dim, generator=torch.Generator().manual_seed(seed + 1))
    return torch.arange(batch, dtype=torch.long) % spec.num_classes


def condition_input(spec: GeneratorSpec) -> dict | None:
    """The exported generator's ``cond`` input (name, dtype, shape, meaning); None when it takes none."""
    traits = condition_traits(spec.condition)
    if not traits.asked_for:
        return None
    if traits.encoder:
        return {"name": "cond", "dtype": "float32", "shape": ["batch", spec.cond_dim],
                "meaning": f"encoding of a real image by encoder {spec.encoder} (models/encoder.pt)"}
    return {"name": "cond", "dtype": "int64", "shape": ["batch"], "meaning": "class index into 'classes'"}


def example_inputs(loaded: LoadedGenerator, batch: int = EXAMPLE_BATCH, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Valid inputs of ``batch`` rows: (z,) or (z, cond), on the CPU."""
    spec = loaded.spec
    z = noise(batch, spec.z_dim, seed)
    return (z, example_condition(spec, batch, seed)) if takes_condition(spec) else (z,)


def input_names(loaded: LoadedGenerator) -> list[str]:
    return ["z", "cond"] if takes_condition(loaded.spec) else ["z"]


def describe(loaded: LoadedGenerator, fmt: str) -> dict:
    """The JSON description of an exported generator: what its inputs and output mean."""
    spec = loaded.spec
    inputs = [{"name": "z", "dtype": "float32", "shape": ["batch", spec.z_dim],
               "meaning": "noise, standard normal N(0, 1) per component"}]
    cond = condition_input(spec)
    if cond:
        inputs.append(cond)
    return {
        "format": fmt,
        "condition": spec.condition,
        "inputs": inputs,
        "output": {"name": "images", "dtype": "float32", "shape": ["batch", spec.channels, spec.image_size, spec.image_size],
                   "value_range": [-1.0, 1.0], "to_uint8": "round((x + 1) * 127.5), clipped to [0, 255]"},
        "z_dim": spec.z_dim,
        "classes": loaded.classes,
        "image_shape": [spec.channels, spec.image_size, spec.image_size],
        "generator": spec.to_dict(),
    }


def export_generator(loaded: LoadedGenerator, fmt: str, out: Path) -> tuple[Path, Path]:
    """Write ``loaded``'s generator to ``out`` as ``fmt`` (onnx | torchscript) and its description beside it.

    Both files are written atomically; returns (model path, description path).
    Raises :class:`FashionGenError` for an unknown format.
    """
    if fmt not in FORMATS:
        raise FashionGenError(f"--format {fmt!r} is not supported; use one of {', '.join(FORMATS)}.")
    module = loaded.module.to("cpu").eval()
    if not takes_condition(loaded.spec):
        module = NoiseOnly(module).eval()  # G(z, c) with an empty c: the exported file takes z alone
    example = example_inputs(loaded)
    if fmt == "onnx":
        write_onnx(module, example, input_names(loaded), out)
    else:
        _export_torchscript(module, example, out)
    write_json(description_path(out), describe(loaded, fmt))
    return out, description_path(out)


class NoiseOnly(torch.nn.Module):
    """An unconditional generator as ``G(z)``: its empty condition (B × 0) made from ``z`` inside the graph."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z, z[:, :0])


def write_onnx(module: torch.nn.Module, example: tuple, names: list[str], out: Path) -> None:
    """Export ``module`` traced on ``example`` (inputs named ``names``, dynamic batch size) to ONNX at ``out``, atomically."""
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in names)  # by position: the forward's own argument names may differ
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message=".*axis name.*")
        program = torch.onnx.export(module, example, dynamo=True, input_names=names, output_names=["images"],
                                    dynamic_shapes=dynamic, opset_version=OPSET, verbose=False)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.onnx"
        program.save(str(path), external_data=False)
        with atomic_write(out) as handle:
            handle.write(path.read_bytes())


def _export_torchscript(module: torch.nn.Module, example: tuple, out: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch 2.14 deprecates TorchScript; it still works
        traced = torch.jit.trace(module, example)
        with atomic_write(out) as handle:
            torch.jit.save(traced, handle)


def load_description(path: Path) -> dict:
    """The JSON written beside an exported model."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
