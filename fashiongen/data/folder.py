"""A folder of photos as a dataset: scan it into a manifest, split it, decode it in parallel.

``download`` (with ``data.source: folder``) writes ``data/raw/manifest.json``:
every image's path relative to ``data.folder``, its size, the SHA-256 of its
bytes and its class. The folder itself is a DVC dependency of the stage
(``${data.folder}`` in dvc.yaml), so DVC reruns it when a photo is added,
removed or edited; the manifest is byte-identical while the images are, so
what follows reruns only when they really changed. The folder's own location
is not in the manifest: moving it retrains nothing.

Classes are the first-level subfolders when every image sits in one and there
are at least two of them (``shirts/a.jpg``, ``shoes/2024/b.png``); otherwise the
folder is unlabelled and ``condition: label`` is unavailable.

``preprocess`` holds out ``data.test_fraction`` of the images by their content
hash (so duplicates land in the same split and adding images never moves old
ones between splits), decodes them in worker processes and writes each split
to a ``.npy`` file row by row: memory stays flat however large the folder.
An unreadable image is skipped, counted and named in ``meta.json``; a folder
with no readable image is an error.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import io
import itertools
import json
import logging
import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from fashiongen.atomic import atomic_directory, write_json
from fashiongen.data.image_files import decode_image
from fashiongen.data.npy_writer import NpyRowWriter
from fashiongen.errors import DataError
from fashiongen.progress import progress_bar

log = logging.getLogger(__name__)

FOLDER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
MANIFEST_NAME = "manifest.json"
UNLABELLED_CLASS = "image"
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One image of the folder: where it is, what its bytes are, which class it belongs to."""

    path: str
    bytes: int
    sha256: str
    label: int


@dataclass(frozen=True)
class Manifest:
    """The folder's images (sorted by path) and its class names (one, ``image``, when unlabelled)."""

    classes: list[str]
    entries: list[Entry]

    @property
    def labelled(self) -> bool:
        return len(self.classes) > 1


def list_images(root: Path) -> list[str]:
    """Paths (relative, POSIX, sorted) of the JPEG/PNG/WebP files under ``root``; hidden entries skipped."""
    if not root.is_dir():
        raise DataError(
            f"data.folder={root} is not a folder; set data.folder in params.yaml to the folder of images."
        )
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in FOLDER_SUFFIXES:
                found.append(Path(directory, name).relative_to(root).as_posix())
    if not found:
        raise DataError(
            f"data.folder={root} holds no images ({', '.join(sorted(FOLDER_SUFFIXES))}, searched recursively)."
        )
    return sorted(found)


def class_names(paths: list[str]) -> list[str]:
    """The first-level subfolders when every image is inside one and there are ≥ 2; else ``[image]``."""
    tops = {p.split("/", 1)[0] for p in paths if "/" in p}
    if len(tops) >= 2 and all("/" in p for p in paths):
        return sorted(tops)
    return [UNLABELLED_CLASS]


def file_sha256(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def scan_folder(root: Path, threads: int = 8) -> Manifest:
    """List, hash and label every image of ``root`` (hashing is I/O bound: threads)."""
    paths = list_images(root)
    classes = class_names(paths)
    index = {name: i for i, name in enumerate(classes)}
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        hashed = list(progress_bar(len(paths), "scan", iterable=pool.map(lambda p: file_sha256(root / p), paths)))
    entries = [
        Entry(path, size, digest, index.get(path.split("/", 1)[0], 0))
        for path, (size, digest) in zip(paths, hashed)
    ]
    return Manifest(classes, entries)


def write_manifest(raw_dir: Path, manifest: Manifest) -> None:
    """Replace ``raw_dir`` with one holding only the manifest (atomically)."""
    with atomic_directory(raw_dir) as staging:
        write_json(staging / MANIFEST_NAME, {
            "source": "folder",
            "classes": manifest.classes,
            "files": [asdict(e) for e in manifest.entries],
        })
    log.info("%s: %d images, %s", raw_dir / MANIFEST_NAME, len(manifest.entries),
             f"{len(manifest.classes)} classes" if manifest.labelled else "unlabelled")


def read_manifest(raw_dir: Path) -> Manifest:
    path = raw_dir / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(list(raw["classes"]), [Entry(**e) for e in raw["files"]])
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run the download stage first (`dvc repro download`).") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a valid manifest ({exc}); rerun `dvc repro download`.") from None


def is_test(entry: Entry, test_fraction: float) -> bool:
    """Held out by content hash: stable as the folder grows, duplicates on the same side."""
    return int(entry.sha256[:8], 16) / 16**8 < test_fraction


@dataclass(frozen=True)
class DecodeJob:
    path: str
    sha256: str
    size: int
    channels: int


def decode_job(job: DecodeJob) -> tuple[np.ndarray | None, str | None]:
    """(image, None), or (None, why) for a file that changed since the scan or does not decode."""
    try:
        data = Path(job.path).read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if hashlib.sha256(data).hexdigest() != job.sha256:
        return None, "changed since the download stage scanned the folder"
    try:
        return decode_image(io.BytesIO(data), job.size, job.channels, name=job.path), None
    except DataError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a malformed file may break Pillow in any way; skip it, say how
        return None, f"is not a readable image ({type(exc).__name__}: {str(exc)[:120]})"


def decode_chunk(jobs: list[DecodeJob]) -> list[tuple[np.ndarray | None, str | None]]:
    return [decode_job(job) for job in jobs]


def decode_all(jobs: list[DecodeJob], workers: int, chunk: int = 32) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """Results of ``jobs`` in order; ``workers`` > 1 decodes in that many processes.

    At most ``4 × workers`` chunks are in flight: ``Executor.map`` submits
    every job at once, so decoded images could pile up in memory whenever the
    writer fell behind (a slow disk); this way memory is bounded whatever N is.
    """
    if workers <= 1 or len(jobs) < 2:
        yield from map(decode_job, jobs)
        return
    chunks = (jobs[i : i + chunk] for i in range(0, len(jobs), chunk))
    # spawn: the workers start clean (no inherited threads or locks from the parent)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        in_flight = collections.deque(pool.submit(decode_chunk, c) for c in itertools.islice(chunks, 4 * workers))
        while in_flight:
            results = in_flight.popleft().result()
            for more in itertools.islice(chunks, 1):
                in_flight.append(pool.submit(decode_chunk, more))
            yield from results


def prepare_folder(
    raw_dir: Path, out_dir: Path, folder: Path, image_size: int, channels: int,
    test_fraction: float, subset: int | None, workers: int | None, select=None,
) -> dict:
    """Decode the manifest's images into ``out_dir`` (the same layout as Fashion-MNIST's); returns meta.

    ``select(labels, n, num_classes)`` picks the subset of a split (the
    class-balanced first N, shared with Fashion-MNIST).
    """
    manifest = read_manifest(raw_dir)
    workers = workers or len(os.sched_getaffinity(0)) or 1  # the cores this process may use, not the host's
    counts, skipped = {}, []
    with atomic_directory(out_dir) as staging:
        for split in ("train", "test"):
            entries = [e for e in manifest.entries if is_test(e, test_fraction) == (split == "test")]
            if subset is not None and select is not None and subset < len(entries):
                keep = select(np.array([e.label for e in entries]), subset, len(manifest.classes))
                entries = [entries[i] for i in keep]
            if not entries:
                raise DataError(
                    f"data.folder={folder}: no images fall in the {split} split "
                    f"({len(manifest.entries)} images, data.test_fraction={test_fraction}); add images or change it."
                )
            counts[split], split_skipped = write_split(staging, split, entries, folder, image_size, channels, workers)
            skipped += split_skipped
        meta = {
            "source": "folder",
            "classes": manifest.classes,
            "num_classes": len(manifest.classes),
            "labelled": manifest.labelled,
            "channels": channels,
            "image_size": image_size,
            "counts": counts,
            "subset": subset,
            "test_fraction": test_fraction,
            "skipped": skipped,
            "skipped_count": len(skipped),
        }
        write_json(staging / "meta.json", meta)
    if skipped:
        log.warning("skipped %d unreadable image(s) of %d (listed in %s/meta.json): %s", len(skipped),
                    len(skipped) + sum(counts.values()), out_dir, "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5]))
    return meta


def write_split(
    staging: Path, split: str, entries: list[Entry], folder: Path, image_size: int, channels: int, workers: int,
) -> tuple[int, list[dict]]:
    """Decode ``entries`` into ``{split}_images.npy`` / ``{split}_labels.npy``; returns (count, skipped)."""
    jobs = [DecodeJob(str(folder / e.path), e.sha256, image_size, channels) for e in entries]
    labels, skipped = [], []
    with NpyRowWriter(staging / f"{split}_images.npy", len(jobs), (channels, image_size, image_size)) as writer:
        results = progress_bar(len(jobs), f"decode {split}", iterable=decode_all(jobs, workers))
        for entry, (image, problem) in zip(entries, results):
            if image is None:
                skipped.append({"path": entry.path, "reason": problem})
                continue
            writer.append(image)
            labels.append(entry.label)
        if not labels:
            raise DataError(
                f"data.folder={folder}: none of the {len(entries)} {split} images could be read "
                f"(first problem: {skipped[0]['path']}: {skipped[0]['reason']})."
            )
    np.save(staging / f"{split}_labels.npy", np.array(labels, dtype=np.int64), allow_pickle=False)
    log.info("%s: %d images %s, %d skipped", split, len(labels), (channels, image_size, image_size), len(skipped))
    return len(labels), skipped
