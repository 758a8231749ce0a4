"""The two data sources behind the download and preprocess stages: Fashion-MNIST or a folder of photos.

Both end in the same ``data/prepared`` layout (uint8 N×C×H×W arrays, int64
labels, ``meta.json``), so nothing after ``preprocess`` knows which it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fashiongen.config import DataConfig
from fashiongen.data.fashion_mnist import fetch_fashion_mnist
from fashiongen.data.folder import MANIFEST_NAME, prepare_folder, scan_folder, write_manifest
from fashiongen.data.prepare import balanced_first_n, prepare_fashion_mnist


def fetch_raw(cfg: DataConfig, raw_dir: Path, check: Callable | None = None) -> None:
    """Fill ``raw_dir``: the verified IDX files, or the manifest of the folder.

    ``check(manifest)`` (folders) may refuse the scanned folder before anything is written.
    """
    if cfg.source == "folder":
        manifest = scan_folder(Path(cfg.folder))
        if check is not None:
            check(manifest)
        write_manifest(raw_dir, manifest)
        return

    (raw_dir / MANIFEST_NAME).unlink(missing_ok=True)  # left by an earlier folder run: not this source's
    fetch_fashion_mnist(raw_dir, cfg.local_dir, cfg.mirrors, cfg.download_timeout_s)


def prepare(cfg: DataConfig, raw_dir: Path, out_dir: Path, check: Callable[[Path], None] | None = None) -> dict:
    """Decode ``raw_dir`` into ``out_dir``; returns the metadata written to ``meta.json``.

    ``check(staging)`` may refuse the new prepared data (complete in the staging
    folder) before it replaces ``out_dir``: a refusal leaves the previous output as it was.
    """
    if cfg.source == "folder":
        return prepare_folder(
            raw_dir, out_dir, Path(cfg.folder), cfg.resolved_image_size(), cfg.resolved_channels(),
            cfg.test_fraction, cfg.subset, cfg.workers, select=balanced_first_n, background=cfg.alpha_background,
            check=check,
        )
    return prepare_fashion_mnist(raw_dir, out_dir, cfg.subset, check=check)
