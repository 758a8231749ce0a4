"""Helpers shared by the tests (not fixtures: plain functions)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "fashiongen")


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (the inverse of fashiongen.data.idx.parse_idx)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_gz(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(data)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_fashion_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 28×28 images with labels cycling through the 10 classes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def copy_pipeline(dest: Path) -> Path:
    """A fresh git + DVC repository holding this checkout's pipeline files."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "ci@example.com"], dest)
    run(["git", "config", "user.name", "FashionGen CI"], dest)
    run([sys.executable, "-m", "dvc", "init", "-q"], dest)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], dest)
    return dest


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_prepared(root: Path, n_train: int = 192, n_test: int = 128) -> None:
    """A prepared-data folder of blobs whose brightness depends on the class (simple to start learning)."""
    from fashiongen.atomic import save_npy, write_json

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = (rng.random((n, 1, 28, 28)) * 40 + labels[:, None, None, None] * 20).astype(np.uint8)
        save_npy(root / f"{split}_images.npy", images)
        save_npy(root / f"{split}_labels.npy", labels.astype(np.int64))
    write_json(
        root / "meta.json",
        {"classes": [str(i) for i in range(10)], "num_classes": 10, "channels": 1, "image_size": 28,
         "counts": {"train": n_train, "test": n_test}, "source": "synthetic", "subset": None},
    )


def paths(root: Path, name: str = "run"):
    """The train stage's paths for a run kept under ``root/name``."""
    from fashiongen.gan.training import TrainPaths

    return TrainPaths(
        prepared=root / "prepared",
        evaluator=root / "evaluator.pt",
        generator=root / name / "generator.pt",
        best_generator=root / name / "generator_best.pt",
        checkpoints=root / name / "checkpoints",
        results=root / name / "results",
    )
