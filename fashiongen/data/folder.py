"""A folder of photos as a dataset: scan it into a manifest, split it, decode it in parallel.

``download`` (with ``data.source: folder``) writes ``data/raw/manifest.json``:
every image's path relative to ``data.folder``, its size, the SHA-256 of its
bytes and its class, and every other entry of the folder with what became of
it (skipped with a reason, not an image, or ignored as operating-system
litter; :mod:`fashiongen.data.folder_scan` decides which). The folder itself
is a DVC dependency of the stage (``${data.folder}`` in dvc.yaml), so DVC
reruns it when a photo is added, removed or edited; the manifest is
byte-identical while the images are, so what follows reruns only when they
really changed. The folder's own location is not in the manifest: moving it
retrains nothing. The manifest's format and in-memory columns are
:mod:`fashiongen.data.manifest`'s; nothing here keeps a Python object per image.

Classes are the first-level subfolders when at least two of them hold images
(``shirts/a.jpg``, ``shoes/2024/b.png``), in natural order (``2`` before
``10``). A few images at the top level beside the class folders (a
``cover.jpg``; at most :data:`LOOSE_SHARE` of the images) belong to no class:
they are left out and named (in the manifest's ``ignored``, in ``meta.json``'s
``layout``, in the log and in ``check-folder``), so one stray file never turns
a labelled folder into an unlabelled one. With more loose images than that,
or fewer than two subfolders, the folder is unlabelled and ``condition: label``
is unavailable; :func:`describe_layout` says which files decided it.

``preprocess`` holds out ``data.test_fraction`` of the images by their content
hash (so duplicates land in the same split and adding images never moves old
ones between splits), orders each split by content (so a renamed or moved
photo changes no prepared byte and nothing after ``preprocess`` reruns), decodes them in worker processes and writes each split
to a ``.npy`` file row by row: memory stays flat however large the folder.
An unreadable image is skipped, counted and named in ``meta.json``, whose
``files`` section accounts for every file (used / skipped / not images /
ignored, per class); a folder with no readable image is an error. Every output
is byte-identical whatever ``data.workers`` and wherever the folder is.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import io
import itertools
import logging
import multiprocessing
import os
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from fashiongen.atomic import atomic_directory, write_json
from fashiongen.data.manifest import (  # noqa: F401 - the manifest's names, re-exported for the folder's users
    DIGEST_BYTES,
    MANIFEST_NAME,
    OUTSIDE_CLASSES,
    UNLABELLED_CLASS,
    Entry,
    Manifest,
    hash_fraction,
    read_manifest,
    write_manifest,
)
from fashiongen.data.folder_scan import FolderListing, Problem, display_path, natural_key, unreadable, walk_folder
from fashiongen.data.image_files import DEFAULT_BACKGROUND, UnreadableImage, read_image, unreadable_reason
from fashiongen.data.npy_writer import NpyRowWriter
from fashiongen.errors import DataError
from fashiongen.progress import progress_bar

log = logging.getLogger(__name__)

EXAMPLES = 10  # names listed per kind of unused file in meta.json and the log


def list_folder(root: Path) -> FolderListing:
    """Every entry under ``root`` classified (:func:`fashiongen.data.folder_scan.walk_folder`); errors if no image."""
    if not root.is_dir():
        raise DataError(
            f"data.folder={root} is not a folder; set data.folder in params.yaml to the folder of images."
        )
    listing = walk_folder(root)
    if not listing.candidates:
        found = f"{len(listing.not_images)} other file(s)"
        if listing.not_images:
            found += f" such as {', '.join(display_path(p) for p in listing.not_images[:3])}"
        raise DataError(
            f"data.folder={root} holds no images (JPEG, PNG, WebP, GIF, BMP or TIFF, searched recursively; "
            f"found {found}, {len(listing.skipped)} unreadable and {len(listing.ignored)} ignored)."
        )
    return listing


def list_images(root: Path) -> list[str]:
    """Paths (relative, POSIX, sorted) of the image files under ``root``; see :func:`list_folder`."""
    return list_folder(root).candidates


LOOSE_SHARE = 0.1  # images beside class folders, as a share of all images, up to which they are left out
LOOSE_REASON = "an image beside the class folders, in no class: left out (move it into a class folder to use it)"


@dataclass(frozen=True)
class Layout:
    """What a folder's layout decides: its classes (``[image]`` when unlabelled) and the loose images left out."""

    classes: list[str]
    loose: list[str]


def read_layout(paths: list[str]) -> Layout:
    """The classes of the images at ``paths`` (relative, POSIX) and the top-level images left out of them.

    Labelled when at least two first-level subfolders hold images and the
    images beside them are at most :data:`LOOSE_SHARE` of all; otherwise
    unlabelled (``[image]``), every image used. Raises :class:`DataError` for
    class folders whose names differ only in their Unicode form.
    """
    tops = {p.split("/", 1)[0] for p in paths if "/" in p}
    loose = [p for p in paths if "/" not in p]
    if len(tops) < 2 or len(loose) > LOOSE_SHARE * len(paths):
        return Layout([UNLABELLED_CLASS], [])
    return Layout(class_names(tops), loose)


def class_names(tops: set[str]) -> list[str]:
    """The class folders ``tops`` in natural order; a :class:`DataError` for two Unicode forms of one name."""
    spellings = collections.defaultdict(list)
    for name in tops:
        spellings[unicodedata.normalize("NFC", name)].append(name)
    clash = next((sorted(names) for names in spellings.values() if len(names) > 1), None)
    if clash:
        raise DataError(
            f"class folders {' and '.join(ascii(n) for n in clash)} are one name in two Unicode forms "
            "(NFC and NFD), so `--label` could not tell them apart; merge or rename one."
        )
    return sorted(tops, key=natural_key)


def describe_layout(manifest: Manifest) -> dict:
    """Why ``manifest``'s folder is labelled or not, with the files that decided it (for meta.json, the log, check-folder)."""
    loose = [p.path for p in manifest.ignored if p.reason == LOOSE_REASON]
    paths = manifest.paths
    tops = sorted({p.split("/", 1)[0] for p in paths if "/" in p}, key=natural_key)
    top_level = [p for p in paths if "/" not in p]
    if manifest.labelled:
        why = f"labelled: {len(manifest.classes)} class folders (first-level subfolders holding images)"
        if loose:
            why += (f"; {len(loose)} image(s) beside them, in no class, left out: "
                    f"{_examples(loose)}")
    elif len(tops) >= 2:
        why = (f"unlabelled: {len(top_level)} of {len(paths)} images sit at the top level beside {len(tops)} subfolders "
               f"(more than {LOOSE_SHARE:.0%}: {_examples(top_level)}), so the subfolders are not read as classes; "
               "move those images into class folders for labels")
    elif tops:
        why = (f"unlabelled: only one subfolder holds images ({display_path(tops[0])}/); "
               "labels need two or more class folders")
    else:
        why = "unlabelled: no subfolders; put the images in one subfolder per class for labels"
    return {"labelled": manifest.labelled, "classes": len(manifest.classes), "why": why,
            "loose_images": len(loose), "loose_examples": loose[:EXAMPLES]}


def _examples(paths: list[str], n: int = 3) -> str:
    return ", ".join(display_path(p) for p in paths[:n]) + (", ..." if len(paths) > n else "")


def file_sha256(path: Path | str) -> tuple[int, bytes]:
    """(size in bytes, SHA-256 digest: 32 bytes) of the file at ``path``; raises ``OSError``.

    ``hashlib.file_digest`` reads into one 256 KB buffer (``read(1 MB)`` would
    allocate 1 MB per call, per hashing thread, however small the file).
    """
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return handle.tell(), digest.digest()


def scan_folder(root: Path, threads: int = 8) -> Manifest:
    """List, hash and label every image of ``root`` (hashing is I/O bound: threads); account for the rest.

    The hashes go straight into the manifest's columns (no object per file is
    kept), so memory grows by about 130 bytes a file (tracemalloc, 4,000 files).
    """
    listing = list_folder(root)
    n = len(listing.candidates)
    sizes, digests = np.zeros(n, dtype=np.int64), np.zeros((n, DIGEST_BYTES), dtype=np.uint8)
    readable, problems = np.ones(n, dtype=bool), []
    hashed = progress_bar(n, "scan", iterable=_hash_files(root, listing.candidates, threads))
    for i, result in enumerate(hashed):
        if isinstance(result, str):
            readable[i] = False
            problems.append(Problem(listing.candidates[i], result))
        else:
            sizes[i], digests[i] = result[0], np.frombuffer(result[1], dtype=np.uint8)
    paths = listing.candidates if readable.all() else list(itertools.compress(listing.candidates, readable))
    sizes, digests = sizes[readable], digests[readable]
    layout = read_layout(paths)
    ignored = listing.ignored
    if layout.loose:
        kept = np.array(["/" in path for path in paths], dtype=bool)
        paths, sizes, digests = list(itertools.compress(paths, kept)), sizes[kept], digests[kept]
        ignored = sorted(ignored + [Problem(path, LOOSE_REASON) for path in layout.loose], key=lambda p: p.path)
    index = {name: i for i, name in enumerate(layout.classes)}
    labels = np.fromiter((index.get(path.split("/", 1)[0], 0) for path in paths), dtype=np.int64, count=len(paths))
    skipped = sorted(listing.skipped + problems, key=lambda p: p.path)
    return Manifest(layout.classes, paths, sizes, digests, labels, skipped, listing.not_images, ignored)


def _hash_files(root: Path, paths: list[str], threads: int, window: int = 256) -> Iterator[tuple[int, bytes] | str]:
    """:func:`_try_sha256` of each path in order, ``window`` files at a time.

    ``Executor.map`` submits every task at once: a future per file (about
    1.8 KB each, 88 MB for 50,000 files) would make the stage's memory grow
    with the folder. Submitting a window at a time keeps it flat.
    """
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(paths), window):
            # os.path.join, not pathlib: ``root / p`` interns every name, and the interned table never shrinks
            yield from pool.map(lambda p: _try_sha256(os.path.join(root, p)), paths[start : start + window])


def _try_sha256(path: Path | str) -> tuple[int, bytes] | str:
    try:
        return file_sha256(path)
    except OSError as exc:
        return unreadable(exc.strerror or type(exc).__name__)


def is_test(entry: Entry, test_fraction: float) -> bool:
    """Held out by content hash (:func:`fashiongen.data.manifest.hash_fraction`); see :meth:`Manifest.held_out`."""
    return int(entry.sha256[:8], 16) / 16**8 < test_fraction


@dataclass(frozen=True)
class DecodeJob:
    """One image to decode: its location, the SHA-256 (hex) the scan saw, the training size and channels."""

    path: str
    sha256: str
    size: int
    channels: int
    background: tuple[int, int, int] = DEFAULT_BACKGROUND


@dataclass(frozen=True)
class Decoded:
    """What became of one image: its pixels (C×H×W uint8) and source mode/size, or why it was skipped."""

    image: np.ndarray | None
    problem: str | None
    mode: str | None = None
    width: int = 0
    height: int = 0


def decode_job(job: DecodeJob) -> Decoded:
    """The decoded image, or why not: the file changed since the scan, or does not decode.

    The reason never holds the file's location or an object's address, so
    ``meta.json`` is the same whichever process decoded the file and wherever
    the folder is.
    """
    try:
        data = Path(job.path).read_bytes()
    except OSError as exc:
        return Decoded(None, f"cannot be read ({exc.strerror or type(exc).__name__})")
    if hashlib.sha256(data).hexdigest() != job.sha256:
        return Decoded(None, "changed since the download stage scanned the folder")
    try:
        decoded = read_image(io.BytesIO(data), job.size, job.channels, name="", background=job.background)
    except UnreadableImage as exc:
        return Decoded(None, exc.reason)
    except Exception as exc:  # noqa: BLE001 - a malformed file may break Pillow in any way; skip it, say how
        return Decoded(None, unreadable_reason(exc))
    return Decoded(decoded.pixels, None, decoded.mode, decoded.width, decoded.height)


def decode_chunk(jobs: list[DecodeJob]) -> list[Decoded]:
    return [decode_job(job) for job in jobs]


def decode_jobs(manifest: Manifest, indices: Iterable[int], folder: Path, size: int, channels: int,
                background: tuple[int, int, int] = DEFAULT_BACKGROUND) -> Iterator[DecodeJob]:
    """The :class:`DecodeJob` of each image ``indices`` names, made as they are consumed (not all at once)."""
    for i in indices:
        yield DecodeJob(os.path.join(folder, manifest.paths[i]), manifest.sha256(i), size, channels, background)


def decode_all(jobs: Iterable[DecodeJob], workers: int, chunk: int = 32) -> Iterator[Decoded]:
    """Results of ``jobs`` in order; ``workers`` > 1 decodes in that many processes.

    ``jobs`` is consumed a chunk at a time, and at most ``4 × workers`` chunks
    are in flight: ``Executor.map`` submits every job at once, so decoded
    images could pile up in memory whenever the writer fell behind (a slow
    disk); this way memory is bounded whatever N is.
    """
    jobs = iter(jobs)
    chunks = iter(lambda: list(itertools.islice(jobs, chunk)), [])
    first = next(chunks, [])
    if workers <= 1 or len(first) < 2:
        yield from map(decode_job, itertools.chain(first, jobs))
        return
    chunks = itertools.chain([first], chunks)
    # spawn: the workers start clean (no inherited threads or locks from the parent)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        in_flight = collections.deque(pool.submit(decode_chunk, c) for c in itertools.islice(chunks, 4 * workers))
        while in_flight:
            results = in_flight.popleft().result()
            for more in itertools.islice(chunks, 1):
                in_flight.append(pool.submit(decode_chunk, more))
            yield from results


def default_workers(workers: int | None) -> int:
    return workers or len(os.sched_getaffinity(0)) or 1  # the cores this process may use, not the host's


LEFT_OUT, USED, DECODE_SKIPPED = 0, 1, 2  # what became of a manifest's image in preprocess (int8 codes)


def split_indices(manifest: Manifest, split: str, test_fraction: float, subset: int | None, select=None) -> np.ndarray:
    """int64 indices into ``manifest`` of one split's images (held out by content hash), cut to ``subset`` by ``select``.

    In content order (:func:`content_order`), so the prepared arrays, and all
    that is trained on them, do not change when a photo is renamed or moved
    within its class.
    """
    indices = np.flatnonzero(manifest.held_out(test_fraction) == (split == "test"))
    indices = indices[content_order(manifest.digests[indices], manifest.labels[indices])]
    if subset is not None and select is not None and subset < len(indices):
        indices = indices[select(manifest.labels[indices], subset, len(manifest.classes))]
    return indices


def content_order(digests: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Positions that sort images by their SHA-256 (uint8 N×32), then their class (int64 N): names play no part."""
    words = np.ascontiguousarray(digests).view(">u8").reshape(len(digests), DIGEST_BYTES // 8)
    return np.lexsort((labels, *(words[:, k] for k in reversed(range(words.shape[1])))))  # the last key sorts first


@dataclass
class SplitResult:
    """What decoding one split gave: images written, files skipped (path, reason), source modes of the used ones."""

    count: int
    skipped: list[dict]
    modes: collections.Counter


def prepare_folder(
    raw_dir: Path, out_dir: Path, folder: Path, image_size: int, channels: int,
    test_fraction: float, subset: int | None, workers: int | None, select=None,
    background: Sequence[int] = DEFAULT_BACKGROUND, check: Callable[[Path], None] | None = None,
) -> dict:
    """Decode the manifest's images into ``out_dir`` (the same layout as Fashion-MNIST's); returns meta.

    ``select(labels, n, num_classes)`` picks the subset of a split (the
    class-balanced first N, shared with Fashion-MNIST). ``background`` (RGB,
    0..255) is what transparent pixels are composited over.
    """
    manifest = read_manifest(raw_dir)
    workers = default_workers(workers)
    background = tuple(int(v) for v in background)
    results = {}
    with atomic_directory(out_dir) as staging:
        fate = np.full(len(manifest), LEFT_OUT, dtype=np.int8)
        for split in ("train", "test"):
            indices = split_indices(manifest, split, test_fraction, subset, select)
            if not len(indices):
                raise DataError(
                    f"data.folder={folder}: no images fall in the {split} split "
                    f"({len(manifest)} images, data.test_fraction={test_fraction}); add images or change it."
                )
            jobs = decode_jobs(manifest, indices, folder, image_size, channels, background)
            results[split] = write_split(staging, split, manifest, indices, jobs, workers, fate)
        skipped = sorted([{"path": p.path, "reason": p.reason} for p in manifest.skipped]
                         + [s for r in results.values() for s in r.skipped], key=lambda s: s["path"])
        files = account_for_files(manifest, skipped, fate)
        meta = {
            "source": "folder",
            "classes": manifest.classes,
            "num_classes": len(manifest.classes),
            "labelled": manifest.labelled,
            "layout": describe_layout(manifest),
            "channels": channels,
            "image_size": image_size,
            "alpha_background": list(background),
            "counts": {split: r.count for split, r in results.items()},
            "subset": subset,
            "test_fraction": test_fraction,
            "skipped": skipped,
            "skipped_count": len(skipped),
            "modes": dict(sorted(sum((r.modes for r in results.values()), collections.Counter()).items())),
            "files": files,
        }
        write_json(staging / "meta.json", meta)
        if check is not None:
            check(staging)  # refuses before the swap: the previous output stays
    log.info("classes: %s", meta["layout"]["why"])
    log_account(files, skipped, out_dir)
    return meta


def write_split(staging: Path, split: str, manifest: Manifest, indices: np.ndarray, jobs: Iterable[DecodeJob],
                workers: int, fate: np.ndarray) -> SplitResult:
    """Decode ``jobs`` (one per image ``indices`` names) into ``{split}_images.npy`` / ``{split}_labels.npy``.

    Sets ``fate[i]`` (int8, one per manifest image) to :data:`USED` or :data:`DECODE_SKIPPED` for each image.
    """
    jobs = iter(jobs)
    first = next(jobs)
    shape = (first.channels, first.size, first.size)
    labels, count, skipped, modes = np.empty(len(indices), dtype=np.int64), 0, [], collections.Counter()
    with NpyRowWriter(staging / f"{split}_images.npy", len(indices), shape) as writer:
        results = decode_all(itertools.chain([first], jobs), workers)
        for i, decoded in zip(indices, progress_bar(len(indices), f"decode {split}", iterable=results)):
            if decoded.image is None:
                skipped.append({"path": manifest.paths[i], "reason": decoded.problem})
                fate[i] = DECODE_SKIPPED
                continue
            writer.append(decoded.image)
            labels[count], count = manifest.labels[i], count + 1
            fate[i] = USED
            modes[decoded.mode] += 1
        if not count:
            raise DataError(
                f"data.folder: none of the {len(indices)} {split} images could be read "
                f"(first problem: {display_path(skipped[0]['path'])}: {skipped[0]['reason']})."
            )
    np.save(staging / f"{split}_labels.npy", labels[:count], allow_pickle=False)
    log.info("%s: %d images %s, %d skipped", split, count, shape, len(skipped))
    return SplitResult(count, skipped, modes)


def account_for_files(manifest: Manifest, skipped: list[dict], fate: np.ndarray) -> dict:
    """Every file of the folder counted once, per class: used, skipped, not an image, ignored, or left out by subset.

    ``skipped`` are the unreadable files (scan and decode); ``fate`` (int8, one
    per manifest image) says which images were written to the prepared arrays
    (:data:`USED`), failed to decode (:data:`DECODE_SKIPPED`, also in
    ``skipped``) or were left out (:data:`LEFT_OUT`). Images are counted by
    their labels, the other files by the folder they sit in.
    """
    kinds = ("used", "skipped", "not_images", "ignored", "subset_left_out")
    per_class = {name: dict.fromkeys(kinds, 0) for name in manifest.classes}

    def add(path: str, kind: str) -> None:
        per_class.setdefault(manifest.owner(path), dict.fromkeys(kinds, 0))[kind] += 1

    for kind, code in (("used", USED), ("subset_left_out", LEFT_OUT)):
        counts = np.bincount(manifest.labels[fate == code], minlength=len(manifest.classes))
        for name, count in zip(manifest.classes, counts.tolist()):
            per_class[name][kind] += count
    for item in skipped:
        add(item["path"], "skipped")
    for path in manifest.not_images:
        add(path, "not_images")
    for problem in manifest.ignored:
        add(problem.path, "ignored")
    totals = {kind: sum(counts[kind] for counts in per_class.values()) for kind in kinds}
    return {
        **totals,
        "per_class": per_class,
        "not_image_examples": manifest.not_images[:EXAMPLES],
        "ignored_examples": [asdict(p) for p in manifest.ignored[:EXAMPLES]],
        "ignored_reasons": dict(sorted(collections.Counter(p.reason for p in manifest.ignored).items())),
    }


def log_account(files: dict, skipped: list[dict], out_dir: Path) -> None:
    """The scan's summary in the log: one line per class, then the skipped files and the files that are not images."""
    log.info("files: %d used, %d skipped, %d not images, %d ignored, %d left out by data.subset",
             files["used"], files["skipped"], files["not_images"], files["ignored"], files["subset_left_out"])
    for name, counts in files["per_class"].items():
        log.info("  %s: %s", display_path(name), ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v))
    if skipped:
        log.warning("skipped %d unreadable image(s) of %d (listed in %s/meta.json): %s", len(skipped),
                    len(skipped) + files["used"], out_dir,
                    "; ".join(f"{display_path(s['path'])}: {s['reason']}" for s in skipped[:5]))
    if files["not_images"]:
        log.warning("%d file(s) are not images and were not used: %s%s", files["not_images"],
                    ", ".join(display_path(p) for p in files["not_image_examples"][:5]),
                    ", ..." if files["not_images"] > 5 else "")
    if files["ignored"]:
        log.info("ignored %d entries (leftovers, hidden, loose images): %s", files["ignored"],
                 ", ".join(f"{n} {reason}" for reason, n in files["ignored_reasons"].items()))
