"""``fashiongen export --format web --out DIR``: the generator in a web page that runs in the browser, offline.

DIR opens from ``file://`` or any static server, with no network: every file
the page runs is in DIR, loaded by classic ``<script>`` tags (browsers refuse
ES modules and ``fetch`` from ``file://``), the binaries inlined as base64:

- ``index.html``, ``app.js`` (the page), ``noise.js`` (FashionGen's noise
  stream, :func:`fashiongen.gan.sampling.noise` bit for bit), ``latent.js``
  (reads ``fashiongen project`` latent files), ``style.css``;
- ``model.js``: the page's ONNX graph and what the model is (``meta.json`` holds
  the same description without the graph, for tools);
- ``generator.onnx``: the same graph as a file, for other runtimes;
- ``ort/``: onnxruntime-web :data:`fashiongen.web_runtime.VERSION` (MIT
  licence, ``ort/LICENSE.txt``), from :mod:`fashiongen.web_runtime`.

The page's graph is the generator in eval mode on noise and *condition rows*
(``from_code``, :mod:`fashiongen.analysis.interpolation`): inputs ``z``
(float32, B × z_dim) and, for generators that take a condition, ``code``
(float32, B × width): a class's learned embedding row (label models; the rows
ship in the metadata) or an encoding (encoding models; a bank of example
encodings of held-out photos ships with their thumbnails). Rows rather than
class indices let the page walk from one class to another as ``fashiongen
interpolate --to`` does. Output ``images``: float32 (B × C × H × W) in [-1, 1].

A seed typed in the page draws the noise ``fashiongen generate --seed`` draws,
so image ``i`` of a grid is image ``i`` of ``fashiongen generate --seed S --n N
[--label L] [--truncation PSI]`` (within one grey level: WebAssembly's float
arithmetic differs from PyTorch's in the last bits).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from torch import nn

from fashiongen import __version__
from fashiongen.analysis.interpolation import condition_code, from_code
from fashiongen.atomic import atomic_directory
from fashiongen.config import condition_traits
from fashiongen.data.encodings import load_encodings
from fashiongen.data.prepared import load_prepared
from fashiongen.errors import FashionGenError
from fashiongen.export import NoiseOnly, example_condition, write_onnx
from fashiongen.file_digest import file_digest, file_sha256
from fashiongen.gan.artifact import LoadedGenerator
from fashiongen.gan.sampling import noise
from fashiongen.registry import ARTIFACT, params_digest
from fashiongen.web_folder import FORMAT, META_FILE, PAGE, PAGE_ASSETS, check_target
from fashiongen.web_runtime import FILES as RUNTIME_FILES
from fashiongen.web_runtime import PACKAGE as RUNTIME_PACKAGE
from fashiongen.web_runtime import VERSION as RUNTIME_VERSION

FORMAT_VERSION = 1
BANK_SIZE = 32
RUNTIME_LICENSE = """onnxruntime-web {version} (https://www.npmjs.com/package/onnxruntime-web), copied unchanged
except that ort-wasm-simd-threaded.mjs and .wasm are wrapped in ort/glue.js and ort/wasm.js as strings.

MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


class FromCode(nn.Module):
    """``G`` on noise and condition rows: ``forward(z, code)`` is ``from_code(generator, z, code)``."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return from_code(self.generator, z, code)


def page_graph(loaded: LoadedGenerator) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str]]:
    """The module the page runs, example inputs to trace it with, and its input names (``z`` [, ``code``])."""
    module = loaded.module.to("cpu").eval()
    z = noise(2, loaded.spec.z_dim, 0)
    if not condition_traits(loaded.spec.condition).asked_for:
        return NoiseOnly(module).eval(), (z,), ["z"]
    rows = condition_code(module, example_condition(loaded.spec, 2, 0))
    return FromCode(module).eval(), (z, rows.detach()), ["z", "code"]


@torch.no_grad()
def class_rows(loaded: LoadedGenerator) -> list[list[float]] | None:
    """Each class's condition row (classes × width, float32 values as floats) for label models; None otherwise."""
    traits = condition_traits(loaded.spec.condition)
    if not (traits.asked_for and traits.class_code):
        return None
    rows = condition_code(loaded.module.to("cpu").eval(), torch.arange(loaded.spec.num_classes))
    return rows.float().tolist()


def encoding_bank(loaded: LoadedGenerator, encodings: Path, prepared: Path, size: int = BANK_SIZE) -> list[dict]:
    """Up to ``size`` held-out photos for an encoding model's page: name, encoding row, PNG thumbnail (data URI).

    Taken round-robin over the classes of the test split, in file order. Raises
    :class:`~fashiongen.errors.DataError` when ``encodings`` or ``prepared`` lack the test split or were made by
    another encoder (then run ``dvc repro`` or pass the experiment's folders).
    """
    rows = np.asarray(load_encodings(encodings, "test", encoder_id=loaded.spec.encoder))
    data = load_prepared(prepared)
    split = data.split("test")
    if len(split) != len(rows):
        raise FashionGenError(f"{encodings} has {len(rows)} test encodings but {prepared} has {len(split)} test "
                              "images; they come from different runs: run `dvc repro encode`.")
    picked = _round_robin(np.asarray(split.labels), size)
    classes = data.classes
    return [{"name": f"{classes[int(split.labels[i])] if data.labelled else 'photo'} #{int(i)}",
             "code": rows[i].astype(np.float32).tolist(), "thumbnail": _png_data_uri(np.asarray(split.images[i]))}
            for i in picked]


def _round_robin(labels: np.ndarray, size: int) -> list[int]:
    queues = [list(np.flatnonzero(labels == label)) for label in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < size and any(queues):
        for queue in queues:
            if queue and len(picked) < size:
                picked.append(int(queue.pop(0)))
    return picked


def _png_data_uri(image: np.ndarray) -> str:
    """uint8 C × H × W -> a PNG data URI."""
    array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def page_metadata(loaded: LoadedGenerator, checkpoint: Path, inputs: list[str], bank: list[dict] | None) -> dict[str, Any]:
    """What the page shows and needs: the model's kind, classes, shapes, scores and provenance.

    ``scores``: FID beside the floor, recall and the ruler from the registry entry beside ``checkpoint``
    (:func:`published_scores`), or None when that entry describes another generator.
    """
    spec = loaded.spec
    traits = condition_traits(spec.condition)
    rows = class_rows(loaded)
    width = len(rows[0]) if rows else (len(bank[0]["code"]) if bank else 0)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fashiongen": __version__,
        "condition": spec.condition,
        "condition_input": "class" if rows else "encoding" if traits.asked_for else "none",
        "classes": list(loaded.classes),
        "labelled": bool(traits.class_code and traits.asked_for),
        "image_size": int(spec.image_size),
        "channels": int(spec.channels),
        "z_dim": int(spec.z_dim),
        "code_width": width,
        "inputs": inputs,
        "class_rows": rows,
        "bank": bank,
        "scores": published_scores(checkpoint, loaded.params),
        "generator_sha256": file_sha256(checkpoint),
        "commit": _commit_of(checkpoint),
        "runtime": f"{RUNTIME_PACKAGE} {RUNTIME_VERSION}",
    }


def published_scores(checkpoint: Path, params: dict | None) -> dict[str, Any] | None:
    """FID, its floor, recall, the ruler and N from the registry entry beside ``checkpoint`` (``models/dvc.yaml``,
    :mod:`fashiongen.registry`), when it describes this generator (same file name and params digest); else None."""
    try:
        entry = YAML(typ="safe", pure=True).load(Path(checkpoint).with_name("dvc.yaml").read_text(encoding="utf-8"))
        artifact = entry["artifacts"][ARTIFACT]
        meta = artifact["meta"]
    except (OSError, YAMLError, KeyError, TypeError):
        return None
    if artifact.get("path") != Path(checkpoint).name or not params or meta.get("params_digest") != params_digest(params):
        return None
    return {key: meta.get(key) for key in ("fid", "fid_floor", "recall", "features", "num_samples")}


def _commit_of(checkpoint: Path) -> str | None:
    """The git commit (short) whose ``dvc.lock`` records this very generator file (same MD5); None if none does."""
    checkpoint = Path(checkpoint).resolve()
    try:
        top = Path(_git(checkpoint.parent, "rev-parse", "--show-toplevel"))
        relative = checkpoint.relative_to(top).as_posix()
        lock = YAML(typ="safe", pure=True).load(_git(top, "show", "HEAD:dvc.lock"))
        recorded = {out["path"]: out.get("md5") for stage in lock["stages"].values() for out in stage.get("outs", [])}
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError, YAMLError, KeyError, TypeError, AttributeError):
        return None
    if recorded.get(relative) != file_digest(checkpoint, "md5"):
        return None
    return _git(top, "rev-parse", "--short=12", "HEAD")


def _git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, check=True).stdout.strip()


def export_web(loaded: LoadedGenerator, checkpoint: Path, out: Path, runtime: Path, *,
               encodings: Path = Path("data/encodings"), prepared: Path = Path("data/prepared"),
               bank_size: int = BANK_SIZE) -> Path:
    """Write the page folder ``out`` (replacing an earlier export there atomically); returns its ``index.html``.

    ``runtime``: the folder of onnxruntime-web's files (:func:`fashiongen.web_runtime.runtime_folder`).
    ``encodings``/``prepared``: where an encoding model's example bank comes from (unused otherwise).
    Raises :class:`FashionGenError` when ``out`` is a file or holds files an export did not write
    (:func:`fashiongen.web_folder.check_target`); :class:`~fashiongen.errors.DataError` when an encoding
    model's bank cannot be read (:func:`encoding_bank`).
    """
    out = Path(out)
    check_target(out)
    module, example, names = page_graph(loaded)
    bank = (encoding_bank(loaded, encodings, prepared, bank_size)
            if condition_traits(loaded.spec.condition).encoder else None)
    meta = page_metadata(loaded, checkpoint, names, bank)
    with tempfile.TemporaryDirectory() as scratch:
        graph = Path(scratch) / "generator.onnx"
        write_onnx(module, example, names, graph)
        with atomic_directory(out) as staging:
            _write_page(staging, meta, graph.read_bytes(), runtime)
    return out / PAGE


def _write_page(folder: Path, meta: dict, graph: bytes, runtime: Path) -> None:
    assets = resources.files("fashiongen") / "web"
    for name in PAGE_ASSETS:
        (folder / name).write_bytes((assets / name).read_bytes())
    (folder / "generator.onnx").write_bytes(graph)
    (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    page_data = dict(meta, onnx=base64.b64encode(graph).decode())
    _write_script(folder / "model.js", "FASHIONGEN_MODEL", json.dumps(page_data))
    ort = folder / "ort"
    ort.mkdir()
    runtime_names = [Path(name).name for name in RUNTIME_FILES]
    shutil.copyfile(runtime / "ort.wasm.min.js", ort / "ort.wasm.min.js")
    glue = next(name for name in runtime_names if name.endswith(".mjs"))
    wasm = next(name for name in runtime_names if name.endswith(".wasm"))
    _write_script(ort / "glue.js", "FASHIONGEN_ORT_GLUE", json.dumps((runtime / glue).read_text(encoding="utf-8")))
    _write_script(ort / "wasm.js", "FASHIONGEN_ORT_WASM", json.dumps(base64.b64encode((runtime / wasm).read_bytes()).decode()))
    (ort / "LICENSE.txt").write_text(RUNTIME_LICENSE.format(version=RUNTIME_VERSION), encoding="utf-8")


def _write_script(path: Path, name: str, value_json: str) -> None:
    """A classic script that sets ``window[name]`` to a JSON value (the way to ship data to a ``file://`` page)."""
    path.write_text(f"window.{name} = {value_json};\n", encoding="utf-8")
