"""Decode the raw dataset once into compact arrays that training reads directly.

Output (``data/prepared/``): ``{split}_images.npy`` (uint8, N×C×H×W),
``{split}_labels.npy`` (int64, N) and ``meta.json`` (counts, class names, image
size, channels). Training and evaluation never decode an image again; the
``.npy`` files can be memory-mapped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fashiongen.atomic import atomic_directory, save_npy, write_json
from fashiongen.data import fashion_mnist
from fashiongen.data.idx import expect_shape, parse_idx
from fashiongen.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


def balanced_first_n(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """Indices of the first ``n`` items, as evenly spread over the classes as the classes allow.

    Each class gets ``n // num_classes`` items (the first classes one more when
    ``n`` does not divide evenly); a class with fewer items than its share gives
    all it has and the rest is shared out the same way among the others (a
    photo folder's classes are rarely the same size). The items of each class
    are its first occurrences, so the subset is deterministic and its class
    balance does not depend on the file's order. The indices are returned in
    file order; ``n`` at least ``len(labels)`` returns every index.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    available = np.bincount(labels, minlength=num_classes)
    quota = np.zeros(num_classes, dtype=np.int64)
    while (missing := n - int(quota.sum())) > 0:
        open_classes = np.flatnonzero(quota < available)
        share = np.full(len(open_classes), missing // len(open_classes))
        share[: missing % len(open_classes)] += 1
        quota[open_classes] += np.minimum(share, available[open_classes] - quota[open_classes])
    chosen = [np.flatnonzero(labels == cls)[: quota[cls]] for cls in range(num_classes)]
    return np.sort(np.concatenate(chosen))


def read_fashion_mnist_split(raw_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×1×28×28 uint8) and labels (N int64) of one split from the raw IDX files."""
    images_name, labels_name = fashion_mnist.SPLIT_FILES[split]
    images = expect_shape(_read_idx(raw_dir / images_name), fashion_mnist.IMAGE_SHAPE, images_name)
    labels = _read_idx(raw_dir / labels_name)
    if labels.ndim != 1:
        raise DataError(f"{labels_name}: labels must be one-dimensional, got shape {labels.shape}.")
    if len(images) != len(labels):
        raise DataError(f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels.")
    num_classes = len(fashion_mnist.CLASS_NAMES)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{labels_name}: labels outside 0..{num_classes - 1}.")
    return images[:, None, :, :], labels.astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run the download stage first (`dvc repro download`).") from None
    return parse_idx(data, name=str(path))


def prepare_fashion_mnist(raw_dir: Path, out_dir: Path, subset: int | None, check=None) -> dict:
    """Write the prepared arrays and ``meta.json``; returns the metadata.

    Everything is written to a staging folder that replaces ``out_dir`` only
    once complete (and accepted by ``check(staging)``, when given), so a
    failure leaves the previous prepared data intact.
    """
    num_classes = len(fashion_mnist.CLASS_NAMES)
    counts = {}
    with atomic_directory(out_dir) as staging:
        for split in SPLITS:
            images, labels = read_fashion_mnist_split(raw_dir, split)
            if subset is not None and subset < len(labels):
                keep = balanced_first_n(labels, subset, num_classes)
                images, labels = images[keep], labels[keep]
            save_npy(staging / f"{split}_images.npy", np.ascontiguousarray(images))
            save_npy(staging / f"{split}_labels.npy", labels)
            counts[split] = int(len(labels))
            log.info("%s: %d images %s", split, len(labels), images.shape[1:])
        meta = {
            "source": "fashion-mnist",
            "classes": list(fashion_mnist.CLASS_NAMES),
            "num_classes": num_classes,
            "channels": 1,
            "image_size": fashion_mnist.IMAGE_SHAPE[0],
            "counts": counts,
            "subset": subset,
        }
        write_json(staging / "meta.json", meta)
        if check is not None:
            check(staging)  # refuses before the swap: the previous output stays
    return meta
