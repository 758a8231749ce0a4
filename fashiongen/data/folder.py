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
retrains nothing.

Classes are the first-level subfolders when every image sits in one and there
are at least two of them (``shirts/a.jpg``, ``shoes/2024/b.png``), in natural
order (``2`` before ``10``); otherwise the folder is unlabelled and
``condition: label`` is unavailable.

``preprocess`` holds out ``data.test_fraction`` of the images by their content
hash (so duplicates land in the same split and adding images never moves old
ones between splits), decodes them in worker processes and writes each split
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
import json
import logging
import multiprocessing
import os
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from fashiongen.atomic import atomic_directory, write_json
from fashiongen.data.folder_scan import FolderListing, Problem, display_path, natural_key, walk_folder
from fashiongen.data.image_files import DEFAULT_BACKGROUND, UnreadableImage, read_image, unreadable_reason
from fashiongen.data.npy_writer import NpyRowWriter
from fashiongen.errors import DataError
from fashiongen.progress import progress_bar

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
UNLABELLED_CLASS = "image"
OUTSIDE_CLASSES = "(outside the class folders)"
EXAMPLES = 10  # names listed per kind of unused file in meta.json and the log
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
    """The folder's images (sorted by path), its class names (one, ``image``, when unlabelled), and the rest.

    ``skipped`` holds files meant as images that cannot be read at all (a link
    to nothing, no permission), ``not_images`` the other files, ``ignored``
    operating-system litter and hidden entries, each with its reason.
    """

    classes: list[str]
    entries: list[Entry]
    skipped: list[Problem] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)
    ignored: list[Problem] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return len(self.classes) > 1

    def owner(self, path: str) -> str:
        """The class a file under the folder belongs to (:data:`OUTSIDE_CLASSES` for one outside every class)."""
        if not self.labelled:
            return self.classes[0]
        top = path.split("/", 1)[0]
        return top if "/" in path and top in self.classes else OUTSIDE_CLASSES


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


def class_names(paths: list[str]) -> list[str]:
    """The first-level subfolders (natural order) when every image is inside one and there are ≥ 2; else ``[image]``."""
    tops = {p.split("/", 1)[0] for p in paths if "/" in p}
    if len(tops) >= 2 and all("/" in p for p in paths):
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
    return [UNLABELLED_CLASS]


def file_sha256(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def scan_folder(root: Path, threads: int = 8) -> Manifest:
    """List, hash and label every image of ``root`` (hashing is I/O bound: threads); account for the rest."""
    listing = list_folder(root)
    hashed = list(progress_bar(len(listing.candidates), "scan", iterable=_hash_files(root, listing.candidates, threads)))
    readable = [(path, result) for path, result in zip(listing.candidates, hashed) if not isinstance(result, str)]
    skipped = listing.skipped + [Problem(path, result) for path, result in zip(listing.candidates, hashed)
                                 if isinstance(result, str)]
    classes = class_names([path for path, _ in readable])
    index = {name: i for i, name in enumerate(classes)}
    entries = [Entry(path, size, digest, index.get(path.split("/", 1)[0], 0)) for path, (size, digest) in readable]
    return Manifest(classes, entries, sorted(skipped, key=lambda p: p.path), listing.not_images, listing.ignored)


def _hash_files(root: Path, paths: list[str], threads: int, window: int = 1024) -> Iterator[tuple[int, str] | str]:
    """:func:`_try_sha256` of each path in order, ``window`` files at a time.

    ``Executor.map`` submits every task at once: a future per file (about
    1.8 KB each, 88 MB for 50,000 files) would make the stage's memory grow
    with the folder. Submitting a window at a time keeps it flat.
    """
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(paths), window):
            yield from pool.map(lambda p: _try_sha256(root / p), paths[start : start + window])


def _try_sha256(path: Path) -> tuple[int, str] | str:
    try:
        return file_sha256(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"


def write_manifest(raw_dir: Path, manifest: Manifest) -> None:
    """Replace ``raw_dir`` with one holding only the manifest (atomically)."""
    with atomic_directory(raw_dir) as staging:
        write_json(staging / MANIFEST_NAME, {
            "source": "folder",
            "classes": manifest.classes,
            "files": [asdict(e) for e in manifest.entries],
            "skipped": [asdict(p) for p in manifest.skipped],
            "not_images": manifest.not_images,
            "ignored": [asdict(p) for p in manifest.ignored],
        })
    log.info("%s: %d images, %s; %d unreadable, %d not images, %d ignored", raw_dir / MANIFEST_NAME,
             len(manifest.entries), f"{len(manifest.classes)} classes" if manifest.labelled else "unlabelled",
             len(manifest.skipped), len(manifest.not_images), len(manifest.ignored))


def read_manifest(raw_dir: Path) -> Manifest:
    path = raw_dir / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(
            list(raw["classes"]), [Entry(**e) for e in raw["files"]],
            [Problem(**p) for p in raw.get("skipped", [])], list(raw.get("not_images", [])),
            [Problem(**p) for p in raw.get("ignored", [])],
        )
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


def decode_all(jobs: list[DecodeJob], workers: int, chunk: int = 32) -> Iterator[Decoded]:
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


def default_workers(workers: int | None) -> int:
    return workers or len(os.sched_getaffinity(0)) or 1  # the cores this process may use, not the host's


def split_entries(manifest: Manifest, split: str, test_fraction: float, subset: int | None, select=None) -> list[Entry]:
    """The entries of one split (held out by content hash), cut to ``subset`` by ``select`` when given."""
    entries = [e for e in manifest.entries if is_test(e, test_fraction) == (split == "test")]
    if subset is not None and select is not None and subset < len(entries):
        keep = select(np.array([e.label for e in entries]), subset, len(manifest.classes))
        entries = [entries[i] for i in keep]
    return entries


@dataclass
class SplitResult:
    """What decoding one split gave: images written, files skipped (path, reason), source modes of the used ones."""

    count: int
    skipped: list[dict]
    used: list[str]
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
        for split in ("train", "test"):
            entries = split_entries(manifest, split, test_fraction, subset, select)
            if not entries:
                raise DataError(
                    f"data.folder={folder}: no images fall in the {split} split "
                    f"({len(manifest.entries)} images, data.test_fraction={test_fraction}); add images or change it."
                )
            jobs = [DecodeJob(str(folder / e.path), e.sha256, image_size, channels, background) for e in entries]
            results[split] = write_split(staging, split, entries, jobs, workers)
        skipped = sorted([{"path": p.path, "reason": p.reason} for p in manifest.skipped]
                         + [s for r in results.values() for s in r.skipped], key=lambda s: s["path"])
        files = account_for_files(manifest, skipped, [p for r in results.values() for p in r.used])
        meta = {
            "source": "folder",
            "classes": manifest.classes,
            "num_classes": len(manifest.classes),
            "labelled": manifest.labelled,
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
    log_account(files, skipped, out_dir)
    return meta


def write_split(staging: Path, split: str, entries: list[Entry], jobs: list[DecodeJob], workers: int) -> SplitResult:
    """Decode ``jobs`` (one per entry) into ``{split}_images.npy`` / ``{split}_labels.npy``."""
    channels, image_size = jobs[0].channels, jobs[0].size
    labels, skipped, used, modes = [], [], [], collections.Counter()
    with NpyRowWriter(staging / f"{split}_images.npy", len(jobs), (channels, image_size, image_size)) as writer:
        results = progress_bar(len(jobs), f"decode {split}", iterable=decode_all(jobs, workers))
        for entry, decoded in zip(entries, results):
            if decoded.image is None:
                skipped.append({"path": entry.path, "reason": decoded.problem})
                continue
            writer.append(decoded.image)
            labels.append(entry.label)
            used.append(entry.path)
            modes[decoded.mode] += 1
        if not labels:
            raise DataError(
                f"data.folder: none of the {len(entries)} {split} images could be read "
                f"(first problem: {display_path(skipped[0]['path'])}: {skipped[0]['reason']})."
            )
    np.save(staging / f"{split}_labels.npy", np.array(labels, dtype=np.int64), allow_pickle=False)
    log.info("%s: %d images %s, %d skipped", split, len(labels), (channels, image_size, image_size), len(skipped))
    return SplitResult(len(labels), skipped, used, modes)


def account_for_files(manifest: Manifest, skipped: list[dict], used: list[str]) -> dict:
    """Every file of the folder counted once, per class: used, skipped, not an image, ignored, or left out by subset.

    ``skipped`` are the unreadable files (scan and decode), ``used`` the paths
    of the images written to the prepared arrays.
    """
    kinds = ("used", "skipped", "not_images", "ignored", "subset_left_out")
    per_class = {name: dict.fromkeys(kinds, 0) for name in manifest.classes}

    def add(path: str, kind: str) -> None:
        per_class.setdefault(manifest.owner(path), dict.fromkeys(kinds, 0))[kind] += 1

    used_set, skipped_set = set(used), {s["path"] for s in skipped}
    for path in used:
        add(path, "used")
    for item in skipped:
        add(item["path"], "skipped")
    for path in manifest.not_images:
        add(path, "not_images")
    for problem in manifest.ignored:
        add(problem.path, "ignored")
    for entry in manifest.entries:
        if entry.path not in used_set and entry.path not in skipped_set:
            add(entry.path, "subset_left_out")
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
        log.info("ignored %d operating-system or hidden entries: %s", files["ignored"],
                 ", ".join(f"{n} {reason}" for reason, n in files["ignored_reasons"].items()))
