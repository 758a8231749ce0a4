"""Images read by index, in batches: the one path every stage reads the prepared images through.

A prepared split is a ``.npy`` file of uint8 N×C×H×W rows (``data/prepared``).
A stage holds up to ``data.preload_max_gb`` of its images in (device) memory,
one :class:`PreloadBudget` per stage, and reads the rest batch by batch from
the file. Fashion-MNIST (47 MB) always fits and is gathered on the device,
the fastest path on CPU and GPU alike; a folder of 100k photos at 128 px
(~5 GB) does not, and then each batch costs one batch of memory.

Rows beyond the budget are read with positional reads (``readinto`` at the
row's offset in the memory-mapped file), rows in file order and consecutive
rows in one read. Reading through the mapping itself would leave every page
it touched mapped into the process: after one epoch its resident memory
(VmRSS, VmHWM) holds the whole file, which is exactly what bounded memory
must avoid. The page cache still serves repeated reads; it is the kernel's,
reclaimable, and not counted as the process's memory.

Views compose without copying images:

- :class:`ImageSource`: one split (preloaded or read per batch);
- :class:`Subset`: the rows ``index`` of another view (a real set, a floor);
- :class:`Joined`: views one after the other (a real set from both splits);
- :class:`Rotations`: every image turned by 0/90/180/270 degrees, 4N rows
  drawn as (image, turn) pairs and turned per batch, never four copies.

Every view has ``len()``, ``device`` and ``take(index) -> uint8 tensor`` (the
rows in the order asked, on ``device``); :func:`iter_batches` reads a view in
consecutive batches. The same index gives the same tensor whichever path
(preloaded or read per batch) a row takes, so no result depends on the
budget (``tests/test_batches.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from fashiongen.config import DataConfig, Params
from fashiongen.data.prepared import PreparedData

log = logging.getLogger(__name__)

GIB = 1 << 30
DIGEST_CHUNK_BYTES = 64 << 20  # rows hashed per read: 64 MB, whatever the image size
# Images a network sees at once in inference (features, samples): at most this many pixels (H×W) per batch.
# A batch of 1000 RGB images at 128 px through the evaluator's first layer is ~5 GB of activations; 2**20
# pixels is 64 such images (~0.3 GB), while 1,337 Fashion-MNIST images fit, so their batches of 1000 are as before.
MAX_BATCH_PIXELS = 1 << 20


def fit_batch_to_split(params: Params, n_images: int, world_size: int = 1) -> Params:
    """``params`` with ``train.batch_size`` lowered to the training split's size when the split is smaller.

    A photo folder of a few hundred images may hold fewer training images
    than the default batch (128); each step then uses all of them (rounded
    down to a multiple of ``world_size``), as the evaluator's and encoder's
    training do, and a warning says so. The returned params are what the run
    records. Below two images per process nothing changes: the caller refuses.
    """
    batch = params.train.batch_size
    fitted = n_images - n_images % world_size
    if n_images >= batch or fitted < 2 * world_size:
        return params
    log.warning("train.batch_size=%d exceeds the %d training images: every step uses %d of them "
                "(one step per epoch; raise train.epochs for more steps)", batch, n_images, fitted)
    return params.model_copy(update={"train": params.train.model_copy(update={"batch_size": fitted})})


class Images(Protocol):
    """What every view offers: uint8 rows N×C×H×W read by index."""

    device: torch.device

    def __len__(self) -> int: ...

    def take(self, index: torch.Tensor | np.ndarray) -> torch.Tensor: ...


class PreloadBudget:
    """The bytes of images one stage may still hold in memory (``data.preload_max_gb``, in GiB).

    A split is preloaded whole when it fits what is left, else read per batch;
    the budget is the stage's, so two splits never hold more than it together.
    """

    def __init__(self, max_gb: float):
        if max_gb < 0:
            raise ValueError(f"a preload budget of {max_gb} GB: it must be >= 0")
        self.left = max_gb * GIB

    @classmethod
    def of(cls, data: DataConfig) -> "PreloadBudget":
        return cls(data.preload_max_gb)

    def claim(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more fit; if so they are counted against the budget."""
        if nbytes > self.left:
            return False
        self.left -= nbytes
        return True


def _npy_file(images: np.ndarray) -> tuple[str, int] | None:
    """(path, byte offset of row 0) of an array that is a whole ``.npy`` file memory-mapped; None otherwise."""
    if not isinstance(images, np.memmap) or not images.filename or not images.flags.c_contiguous:
        return None
    try:
        size = os.path.getsize(images.filename)
    except OSError:
        return None
    # np.load(mmap_mode="r") maps the whole array: header + data is the file (a view of it is not)
    return (images.filename, images.offset) if images.offset + images.nbytes == size else None


class ImageSource:
    """One split's uint8 N×C×H×W images on ``device``: held in memory when they fit the budget, else read per batch.

    Args:
        images: the split, usually memory-mapped (``PreparedData.split``); a plain array works too.
        device: where :meth:`take` puts the rows (and where preloaded images live).
        preload: a :class:`PreloadBudget` shared by the stage, or a size in GiB for this split alone.
    """

    def __init__(self, images: np.ndarray, device: torch.device | str = "cpu",
                 preload: PreloadBudget | float = 0.0):
        self.device = torch.device(device)
        self.shape = tuple(images.shape)
        self._array = images
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * images.itemsize
        self._file = _npy_file(images)
        budget = preload if isinstance(preload, PreloadBudget) else PreloadBudget(preload)
        self.in_memory = budget.claim(images.nbytes)
        self._tensor = torch.from_numpy(self.read(np.arange(len(images)))).to(self.device) if self.in_memory else None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self._array.nbytes

    def take(self, index: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The rows at ``index`` (int, any order, repeats allowed), uint8 on :attr:`device`."""
        if self._tensor is not None:
            return self._tensor[torch.as_tensor(index).to(self.device)]
        rows = self.read(np.asarray(torch.as_tensor(index).cpu(), dtype=np.int64))
        return torch.from_numpy(rows).to(self.device, non_blocking=True)

    def read(self, index: np.ndarray) -> np.ndarray:
        """The rows at ``index`` as a new array, read from the file (never through the mapping)."""
        if self._file is None:
            return np.array(self._array[index])
        unique, inverse = np.unique(index, return_inverse=True)
        if len(unique) and (unique[0] < 0 or unique[-1] >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} images")
        rows = np.empty((len(unique), *self.shape[1:]), dtype=self._array.dtype)
        buffer = memoryview(rows.reshape(-1).view(np.uint8))
        # runs of consecutive rows are read at once
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        path, offset = self._file
        with open(path, "rb", buffering=0) as handle:
            for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(unique)]):
                handle.seek(offset + int(unique[start]) * self._row_bytes)
                _read_exactly(handle, buffer[start * self._row_bytes : stop * self._row_bytes], path)
        if len(unique) == len(index) and (unique == index).all():
            return rows
        return rows[inverse.reshape(-1)]


def _read_exactly(handle, view: memoryview, path: str) -> None:
    done = 0
    while done < len(view):
        got = handle.readinto(view[done:])
        if not got:
            raise OSError(f"{path} ended early: it was changed while being read; rerun `dvc repro preprocess`")
        done += got


@dataclass(frozen=True)
class Subset:
    """The rows ``index`` (int64) of ``images``, in that order."""

    images: Images
    index: np.ndarray

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return len(self.index)

    def take(self, index: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.images.take(self.index[np.asarray(torch.as_tensor(index).cpu())])


@dataclass(frozen=True)
class Joined:
    """Views one after the other: row ``len(parts[0])`` is row 0 of ``parts[1]``."""

    parts: Sequence[Images]

    @property
    def device(self) -> torch.device:
        return self.parts[0].device

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def take(self, index: torch.Tensor | np.ndarray) -> torch.Tensor:
        index = np.asarray(torch.as_tensor(index).cpu(), dtype=np.int64)
        starts = np.cumsum([0] + [len(part) for part in self.parts])
        which = np.searchsorted(starts, index, side="right") - 1
        pieces = {p: self.parts[p].take(index[which == p] - starts[p]) for p in np.unique(which)}
        first = next(iter(pieces.values()))
        out = torch.empty((len(index), *first.shape[1:]), dtype=first.dtype, device=first.device)
        for p, rows in pieces.items():
            out[torch.from_numpy(np.flatnonzero(which == p)).to(out.device)] = rows
        return out


ROTATIONS = 4  # 0, 90, 180, 270 degrees


@dataclass(frozen=True)
class Rotations:
    """Every image of ``images`` turned by 0/90/180/270 degrees: 4N rows, read N at a time at most.

    Row ``i`` is image ``i mod N`` turned ``i div N`` quarter turns
    counter-clockwise (``numpy.rot90`` on the H, W axes), so the rows are
    those of the four turned copies concatenated, without making them: each
    batch reads its images once and turns them (:func:`rotation_labels`).
    """

    images: Images

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return ROTATIONS * len(self.images)

    def take(self, index: torch.Tensor | np.ndarray) -> torch.Tensor:
        index = torch.as_tensor(index)
        n = len(self.images)
        rows = self.images.take(index % n)
        turns = (index // n).to(rows.device)
        for k in range(1, ROTATIONS):
            chosen = turns == k
            if chosen.any():
                rows[chosen] = torch.rot90(rows[chosen], k, dims=(2, 3))
        return rows


def rotation_labels(n_images: int) -> np.ndarray:
    """The turn (0-3) of each row of :class:`Rotations` over ``n_images`` images: int64, 4 × ``n_images``."""
    return np.repeat(np.arange(ROTATIONS, dtype=np.int64), n_images)


@dataclass(frozen=True)
class Labelled:
    """Images (any view) and their int64 class labels, one per row."""

    images: Images
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def labelled_split(data: PreparedData, name: str, device: torch.device | str, budget: PreloadBudget) -> Labelled:
    """Split ``name`` of ``data``: its images on ``device`` (preloaded while ``budget`` lasts, else read per batch), its labels."""
    split = data.split(name)
    return Labelled(ImageSource(split.images, device, budget), np.array(split.labels))  # labels: small, copied


def bounded_batch(batch_size: int, image_size: int) -> int:
    """``batch_size``, capped so that a batch holds at most :data:`MAX_BATCH_PIXELS` pixels of ``image_size``² images (>= 1)."""
    return max(1, min(batch_size, MAX_BATCH_PIXELS // (image_size * image_size)))


def image_size(images: Images) -> int:
    """The width in px of the images of a view (0 for an empty one)."""
    return int(images.take(torch.arange(1)).shape[-1]) if len(images) else 0


def iter_batches(images: Images, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive batches of ``batch_size`` rows (the last may be shorter), uint8 on ``images.device``."""
    for start in range(0, len(images), batch_size):
        yield images.take(torch.arange(start, min(start + batch_size, len(images))))


def as_images(images: np.ndarray | torch.Tensor | Images) -> Images:
    """A view of ``images``: arrays (memory-mapped or not) are read per batch, never preloaded."""
    if isinstance(images, np.ndarray):
        return ImageSource(images)
    if isinstance(images, torch.Tensor):
        return _TensorImages(images)
    return images


@dataclass(frozen=True)
class _TensorImages:
    tensor: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __len__(self) -> int:
        return len(self.tensor)

    def take(self, index: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.tensor[torch.as_tensor(index).to(self.tensor.device)]


class RowsOut:
    """Per-batch outputs (features, logits, ...) written into tensors of ``n`` rows allocated once, on the CPU.

    Collecting a list of small per-batch tensors and concatenating them at the
    end leaves, after every batch, a small long-lived allocation above the
    batch's large temporary ones; with the stages' allocator settings
    (:func:`fashiongen.runtime.keep_freed_memory`) the heap then fragments and
    grows with the number of batches (measured: the evaluate stage's peak grew
    by 1.6 GB between 6,000 and 20,000 training images at 128 px). One
    allocation per output, made with the first batch, keeps it flat.
    """

    def __init__(self, n: int):
        self.n, self.filled, self.out = n, 0, None

    def add(self, *parts: torch.Tensor) -> None:
        if self.out is None:
            self.out = [torch.empty((self.n, *part.shape[1:]), dtype=part.dtype) for part in parts]
        for out, part in zip(self.out, parts):
            out[self.filled : self.filled + len(part)] = part
        self.filled += len(parts[0])

    def result(self, count: int) -> list[torch.Tensor]:
        """The ``count`` outputs (empty tensors when no batch came)."""
        if self.filled != self.n:
            raise ValueError(f"{self.filled} rows were added, {self.n} expected")
        return self.out if self.out is not None else [torch.empty(0) for _ in range(count)]


def rows_per_chunk(images: Images, chunk_bytes: int = DIGEST_CHUNK_BYTES) -> int:
    """How many rows of ``images`` make about ``chunk_bytes`` (at least 1)."""
    if not len(images):
        return 1
    row = images.take(torch.arange(1))
    return max(1, chunk_bytes // max(1, row.numel() * row.element_size()))


def update_digest(digest: "hashlib._Hash", images: Images, chunk_bytes: int = DIGEST_CHUNK_BYTES) -> None:
    """Feed the rows of ``images`` to ``digest`` in order, chunk by chunk: the bytes of the whole C-contiguous array."""
    for batch in iter_batches(images, rows_per_chunk(images, chunk_bytes)):
        digest.update(batch.cpu().contiguous().numpy().data)


def sha256_of_images(images: np.ndarray | Images) -> str:
    """SHA-256 (hex) of ``images``' bytes as one C-contiguous array, read chunk by chunk."""
    digest = hashlib.sha256()
    update_digest(digest, as_images(images))
    return digest.hexdigest()
