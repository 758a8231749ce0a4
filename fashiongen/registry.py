"""The model-registry entry of the published generator: a DVC artifact with what a user needs to choose it.

The evaluate stage writes ``models/dvc.yaml``, beside the generator it
describes, with one artifact, ``generator`` (DVC 3's ``artifacts:`` section):
path ``generator.pt``, type ``model`` (so DVC's model registry lists it), a
description, labels, and ``meta``: the condition kind, classes, image size,
channels and noise size, the FID it scored beside the real-data floor, the
ruler they were measured with, and a digest of the params it was made with
(those its file records: the params the run used).
DVC reads artifacts from every ``dvc.yaml`` of a repository; this one is
addressed as ``models:generator``::

    gto register models:generator --version v1.0.0 && git push origin --tags   # publish a version
    dvc artifacts get REPO models:generator --rev v1.0.0 -o generator.pt       # fetch it anywhere

(``gto`` comes with DVC.) The file is written here, atomically, rather than
with dvclive's ``log_artifact``, which needs a git repository with a commit
and writes a metrics file of its own beside the entry.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from fashiongen.atomic import atomic_write

ARTIFACT = "generator"
HEADER = "# Written by the evaluate stage (fashiongen/registry.py) after every run: do not edit by hand.\n"


def params_digest(params: dict[str, Any]) -> str:
    """A short SHA-256 (hex, 16 characters) of params as plain values (key order does not count)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def registry_entry(generator: Path, spec: dict[str, Any], classes: list[str], metrics: dict[str, Any],
                   params: dict[str, Any] | None) -> dict[str, Any]:
    """The ``artifacts:`` section for ``generator`` (a path relative to the ``dvc.yaml`` it goes in).

    ``spec``: the generator's config (:meth:`~fashiongen.gan.artifact.GeneratorSpec.to_dict`); ``metrics``: the
    evaluate stage's scores (``fid``, ``fid_floor``, ``features``...); ``params``: the params the generator file
    records (``LoadedGenerator.params``; None or empty: no digest).
    """
    condition = spec["condition"]
    meta: dict[str, Any] = {
        "condition": condition,
        "classes": list(classes),
        "image_size": int(spec["image_size"]),
        "channels": int(spec["channels"]),
        "z_dim": int(spec["z_dim"]),
        "arch": spec.get("arch", "dcgan"),
        "fid": float(metrics["fid"]),
        "fid_floor": float(metrics["fid_floor"]),
        "recall": float(metrics["recall"]),
        "features": metrics.get("features"),
        "num_samples": int(metrics["num_samples"]),
    }
    if params:
        meta["params_digest"] = params_digest(params)
    size = f"{spec['image_size']} px {'grey' if spec['channels'] == 1 else 'RGB'}"
    return {
        ARTIFACT: {
            "path": generator.as_posix(),
            "type": "model",
            "desc": (f"FashionGen generator: {condition} model, {len(classes)} classes, {size}; FID "
                     f"{meta['fid']:.2f} beside a real-data floor of {meta['fid_floor']:.2f} ({meta['features']})"),
            "labels": ["fashiongen", "gan", condition, spec.get("arch", "dcgan")],
            "meta": meta,
        }
    }


def write_registry(dvcyaml: Path, generator: Path, spec: dict[str, Any], classes: list[str],
                   metrics: dict[str, Any], params: dict[str, Any] | None = None) -> None:
    """Write ``dvcyaml`` (e.g. ``models/dvc.yaml``) with the artifact of ``generator``, atomically."""
    relative = Path(generator).resolve().relative_to(Path(dvcyaml).resolve().parent)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    text = io.StringIO()
    yaml.dump({"artifacts": registry_entry(relative, spec, classes, metrics, params)}, text)
    with atomic_write(dvcyaml, "w") as handle:
        handle.write(HEADER + text.getvalue())
