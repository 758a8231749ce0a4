"""A photo folder's manifest: its images as columns, written and read one file per line.

The ``download`` stage writes ``data/raw/manifest.json``; ``preprocess``,
``fashiongen check-folder`` and the trainability checks read it. A folder may
hold hundreds of thousands of photos, so nothing here keeps a Python object per
file: the images are columns (their paths in one list, sizes and labels in
int64 arrays, SHA-256 digests as one N×32 uint8 array), the file is written a
line at a time and read a line at a time into those columns: about 130 bytes a
file (its path string and 48 bytes of numbers; tracemalloc, tests/test_manifest.py),
against ~360 kept and ~540 at the peak of reading for a dataclass per file and
``json.loads`` of the whole document.

The file is one JSON document (``json.load`` and ``jq`` read it), laid out so
that it can also be read line by line: the header keys, then one line per
image in ``files`` (``path``, ``bytes``, ``sha256`` in hex, ``label``: an index
into ``classes``), then the other entries of the folder (``skipped``,
``not_images``, ``ignored``), one per line. Keys are sorted and non-ASCII
characters escaped, so the same folder always gives the same bytes. A manifest
written by another FashionGen version, or damaged, is refused with a
:class:`~fashiongen.errors.DataError` that says to rerun ``dvc repro download``.
"""

from __future__ import annotations

import array
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Sequence

import numpy as np

from fashiongen.atomic import atomic_directory, atomic_write
from fashiongen.data.folder_scan import Problem
from fashiongen.errors import DataError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2  # 1 (unversioned): one indented JSON document, a dict per file
UNLABELLED_CLASS = "image"
OUTSIDE_CLASSES = "(outside the class folders)"
DIGEST_BYTES = 32  # SHA-256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One image of the folder: where it is, what its bytes are, which class it belongs to."""

    path: str
    bytes: int
    sha256: str
    label: int


class Entries(Sequence[Entry]):
    """A manifest's images as :class:`Entry` objects, each built when it is accessed (none are stored)."""

    def __init__(self, manifest: "Manifest"):
        self._manifest = manifest

    def __len__(self) -> int:
        return len(self._manifest.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._manifest.entry(index)


@dataclass(frozen=True, eq=False)
class Manifest:
    """The folder's images (sorted by path) as columns, its class names (one, ``image``, when unlabelled), and the rest.

    ``paths``: N relative POSIX paths; ``sizes``: int64 (N,), bytes;
    ``digests``: uint8 (N, 32), the SHA-256 of each file; ``labels``: int64
    (N,), indices into ``classes``. ``skipped`` holds files meant as images
    that cannot be read at all (a link to nothing, no permission),
    ``not_images`` the other files, ``ignored`` operating-system litter and
    hidden entries, each with its reason. :attr:`entries` gives the images
    as :class:`Entry` objects, built on access.
    """

    classes: list[str]
    paths: list[str]
    sizes: np.ndarray
    digests: np.ndarray
    labels: np.ndarray
    skipped: list[Problem] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)
    ignored: list[Problem] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.paths)
        if self.sizes.shape != (n,) or self.labels.shape != (n,) or self.digests.shape != (n, DIGEST_BYTES):
            raise ValueError(f"manifest columns disagree: {n} paths, sizes {self.sizes.shape}, "
                             f"labels {self.labels.shape}, digests {self.digests.shape}")

    @classmethod
    def from_entries(cls, classes: list[str], entries: Sequence[Entry], skipped: list[Problem] = (),
                     not_images: list[str] = (), ignored: list[Problem] = ()) -> "Manifest":
        """A manifest of ``entries`` (for tests and small folders: this does hold them all once)."""
        digests = np.frombuffer(b"".join(bytes.fromhex(e.sha256) for e in entries), dtype=np.uint8)
        return cls(list(classes), [e.path for e in entries], np.array([e.bytes for e in entries], dtype=np.int64),
                   digests.reshape(len(entries), DIGEST_BYTES), np.array([e.label for e in entries], dtype=np.int64),
                   list(skipped), list(not_images), list(ignored))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def entries(self) -> Entries:
        return Entries(self)

    def entry(self, index: int) -> Entry:
        return Entry(self.paths[index], int(self.sizes[index]), self.sha256(index), int(self.labels[index]))

    def sha256(self, index: int) -> str:
        """The SHA-256 of image ``index`` in hex (64 characters)."""
        return self.digests[index].tobytes().hex()

    @property
    def labelled(self) -> bool:
        return len(self.classes) > 1

    def owner(self, path: str) -> str:
        """The class a file under the folder belongs to (:data:`OUTSIDE_CLASSES` for one outside every class)."""
        if not self.labelled:
            return self.classes[0]
        top = path.split("/", 1)[0]
        return top if "/" in path and top in self.classes else OUTSIDE_CLASSES

    def held_out(self, test_fraction: float) -> np.ndarray:
        """bool (N,): the images of the test split, by content hash (see :func:`hash_fraction`)."""
        return hash_fraction(self.digests) < test_fraction


def hash_fraction(digests: np.ndarray) -> np.ndarray:
    """float64 in [0, 1): the first 4 bytes of each SHA-256 digest (uint8 N×32) as a fraction of 2**32.

    A file is held out for testing when this is below ``data.test_fraction``:
    stable as the folder grows, duplicates on the same side. Exact in float64,
    so equal to ``int(hex[:8], 16) / 16**8``.
    """
    first = np.ascontiguousarray(digests[:, :4]).view(">u4").reshape(-1)
    return first.astype(np.float64) / 2.0**32


def write_manifest(raw_dir: Path, manifest: Manifest) -> None:
    """Replace ``raw_dir`` with one holding only the manifest (atomically), written a line at a time."""
    with atomic_directory(raw_dir) as staging, atomic_write(staging / MANIFEST_NAME, "w") as handle:
        _write_lines(handle, manifest)
    log.info("%s: %d images, %s; %d unreadable, %d not images, %d ignored", raw_dir / MANIFEST_NAME,
             len(manifest), f"{len(manifest.classes)} classes" if manifest.labelled else "unlabelled",
             len(manifest.skipped), len(manifest.not_images), len(manifest.ignored))


def _write_lines(handle: IO[str], manifest: Manifest) -> None:
    handle.write("{\n")
    for key, value in (("manifest_version", MANIFEST_VERSION), ("source", "folder"), ("classes", manifest.classes)):
        handle.write(f"{json.dumps(key)}: {json.dumps(value)},\n")
    sections = (
        ("files", len(manifest), lambda i: _dumps(vars(manifest.entry(i)))),
        ("skipped", len(manifest.skipped), lambda i: _dumps(vars(manifest.skipped[i]))),
        ("not_images", len(manifest.not_images), lambda i: json.dumps(manifest.not_images[i])),
        ("ignored", len(manifest.ignored), lambda i: _dumps(vars(manifest.ignored[i]))),
    )
    for s, (key, count, line) in enumerate(sections):
        handle.write(f"{json.dumps(key)}: [\n")
        for i in range(count):
            handle.write(line(i) + (",\n" if i < count - 1 else "\n"))
        handle.write("]" + (",\n" if s < len(sections) - 1 else "\n"))
    handle.write("}\n")


def _dumps(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


def read_manifest(raw_dir: Path) -> Manifest:
    """The manifest in ``raw_dir``, read a line at a time into columns.

    Raises :class:`DataError` when it is missing (run ``download``), of another
    version, or not a manifest (rerun ``download``).
    """
    path = raw_dir / MANIFEST_NAME
    try:
        with open(path, encoding="utf-8") as handle:
            return _read_lines(enumerate(handle, start=1))
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run the download stage first (`dvc repro download`).") from None
    except _OtherVersion as exc:
        raise DataError(f"{path} was written by another FashionGen version ({exc}); "
                        "rerun `dvc repro download`.") from None
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a valid manifest ({exc}); rerun `dvc repro download`.") from None


class _OtherVersion(Exception):
    pass


Lines = Iterator[tuple[int, str]]  # (line number, line with its newline)


def _read_lines(lines: Lines) -> Manifest:
    _expect(lines, "{\n")
    number, line = _next(lines)
    if not line.startswith('"manifest_version": '):
        raise _OtherVersion("an unversioned manifest, from before version 2")
    version = _key_line(number, line)["manifest_version"]
    if version != MANIFEST_VERSION:
        raise _OtherVersion(f"manifest_version {version!r}; this version reads {MANIFEST_VERSION}")
    header = {**_key_line(*_next(lines)), **_key_line(*_next(lines))}
    if header.get("source") != "folder" or not all(isinstance(c, str) for c in header["classes"]):
        raise ValueError("the header does not name a folder source and its classes")
    classes = header["classes"]
    _expect(lines, '"files": [\n')
    paths, sizes, labels, digests = [], array.array("q"), array.array("q"), bytearray()
    for record in _list_items(lines, "],\n"):
        if not isinstance(record["path"], str) or type(record["label"]) is not int:
            raise TypeError(f"a file record has a path {record['path']!r} and a label {record['label']!r}")
        paths.append(record["path"])
        sizes.append(record["bytes"])
        labels.append(record["label"])
        digest = bytes.fromhex(record["sha256"])
        if len(digest) != DIGEST_BYTES:
            raise ValueError(f"the sha256 of {record['path']!r} is not 64 hex digits")
        digests += digest
    label_column = _int64(labels)
    if len(label_column) and not (0 <= label_column.min() and label_column.max() < len(classes)):
        raise ValueError(f"a label is outside the {len(classes)} classes")
    rest = {}
    for key, close in (("skipped", "],\n"), ("not_images", "],\n"), ("ignored", "]\n")):
        _expect(lines, f"{json.dumps(key)}: [\n")
        rest[key] = list(_list_items(lines, close))
    _expect(lines, "}\n")
    return Manifest(
        classes, paths, _int64(sizes), np.frombuffer(digests, dtype=np.uint8).reshape(-1, DIGEST_BYTES),
        label_column, [Problem(**p) for p in rest["skipped"]], [str(p) for p in rest["not_images"]],
        [Problem(**p) for p in rest["ignored"]],
    )


def _int64(values: array.array) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int64).copy() if values else np.zeros(0, dtype=np.int64)


def _next(lines: Lines) -> tuple[int, str]:
    return next(lines, (0, ""))


def _expect(lines: Lines, text: str) -> None:
    number, line = _next(lines)
    if line != text:
        raise ValueError(f"{_where(number)}: expected {text.strip()!r}, found {line.strip()[:40]!r}")


def _where(number: int) -> str:
    return f"line {number}" if number else "it ends early (truncated)"


def _key_line(number: int, line: str) -> dict:
    """A ``"key": value,`` line as ``{key: value}``."""
    if not line.endswith(",\n"):
        raise ValueError(f"{_where(number)}: expected '\"key\": value,', found {line.strip()[:40]!r}")
    return json.loads("{" + line[:-2] + "}")


def _list_items(lines: Lines, close: str) -> Iterator:
    """The values of the list opened by the previous line, one a line, up to its ``close`` line."""
    for number, line in lines:
        if line == close:
            return
        try:
            yield json.loads(line[:-2] if line.endswith(",\n") else line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    raise ValueError(_where(0))
