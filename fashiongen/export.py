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

import json
import tempfile
from pathlib import Path

import torch

from fashiongen.atomic import atomic_write, write_json
from fashiongen.errors import FashionGenError
from fashiongen.gan.artifact import LoadedGenerator
from fashiongen.gan.conditions import condition_kind

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 18
EXAMPLE_BATCH = 2


def description_path(out: Path) -> Path:
    """Where the JSON description of ``out`` goes: ``out`` + ``.json``."""
    return out.with_name(out.name + ".json")


def example_inputs(loaded: LoadedGenerator, batch: int = EXAMPLE_BATCH, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Valid inputs of ``batch`` rows: (z,) or (z, cond), on the CPU."""
    from fashiongen.gan.sampling import noise

    spec, kind = loaded.spec, condition_kind(loaded.spec.condition)
    z = noise(batch, spec.z_dim, seed)
    return (z, kind.example(spec, batch, seed)) if kind.conditional else (z,)


def input_names(loaded: LoadedGenerator) -> list[str]:
    return ["z", "cond"] if condition_kind(loaded.spec.condition).conditional else ["z"]


def describe(loaded: LoadedGenerator, fmt: str) -> dict:
    """The JSON description of an exported generator: what its inputs and output mean."""
    spec = loaded.spec
    inputs = [{"name": "z", "dtype": "float32", "shape": ["batch", spec.z_dim],
               "meaning": "noise, standard normal N(0, 1) per component"}]
    condition_input = condition_kind(spec.condition).describe(spec)
    if condition_input:
        inputs.append(condition_input)
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
    if not condition_kind(loaded.spec.condition).conditional:
        module = NoiseOnly(module).eval()  # G(z, c) with an empty c: the exported file takes z alone
    example = example_inputs(loaded)
    if fmt == "onnx":
        _export_onnx(module, example, input_names(loaded), out)
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


def _export_onnx(module: torch.nn.Module, example: tuple, names: list[str], out: Path) -> None:
    import contextlib
    import io
    import warnings

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
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch 2.14 deprecates TorchScript; it still works
        traced = torch.jit.trace(module, example)
        with atomic_write(out) as handle:
            torch.jit.save(traced, handle)


def load_description(path: Path) -> dict:
    """The JSON written beside an exported model."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
