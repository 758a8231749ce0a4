"""Write a large ``.npy`` array row by row, never holding it in memory.

``numpy.save`` needs the whole array; ``open_memmap`` keeps every written page
mapped into the process (resident memory grows with the file). This writer
puts numpy's own header first and then appends rows with plain file writes,
which go through the page cache and leave the process's memory flat. When
fewer rows arrive than announced (a folder's unreadable images are skipped),
the header is rewritten, padded to its old length, and the file truncated:
the result is an ordinary ``.npy`` that ``numpy.load(mmap_mode="r")`` maps.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0
_ALIGN = 64


def npy_header(shape: tuple[int, ...], dtype: np.dtype, length: int | None = None) -> bytes:
    """numpy's version-1.0 header for a C-ordered array; ``length`` pads it to that many bytes."""
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)})
    body = text.encode("latin1")
    if length is None:
        length = -(-(len(_MAGIC) + 2 + len(body) + 1 + 16) // _ALIGN) * _ALIGN  # room for the shape to change
    padding = length - len(_MAGIC) - 2 - len(body) - 1
    if padding < 0:
        raise ValueError(f"npy header does not fit in {length} bytes")
    return _MAGIC + struct.pack("<H", length - len(_MAGIC) - 2) + body + b" " * padding + b"\n"


class NpyRowWriter:
    """``with NpyRowWriter(path, capacity, row_shape) as w: w.append(row)``: a uint8 array of the rows appended."""

    def __init__(self, path: Path | str, capacity: int, row_shape: tuple[int, ...], dtype=np.uint8):
        self.path, self.capacity, self.row_shape, self.dtype = Path(path), capacity, tuple(row_shape), np.dtype(dtype)
        self.count = 0
        self._header = npy_header((capacity, *self.row_shape), self.dtype)
        self._handle = None

    def __enter__(self) -> "NpyRowWriter":
        self._handle = open(self.path, "wb")
        self._handle.write(self._header)
        return self

    def append(self, row: np.ndarray) -> None:
        if row.shape != self.row_shape or row.dtype != self.dtype:
            raise ValueError(f"row of shape {row.shape} {row.dtype}, expected {self.row_shape} {self.dtype}")
        if self.count == self.capacity:
            raise ValueError(f"{self.path}: more than the {self.capacity} rows announced")
        self._handle.write(np.ascontiguousarray(row).tobytes())
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        handle, self._handle = self._handle, None
        try:
            if exc_type is None and self.count != self.capacity:
                handle.seek(0)
                handle.write(npy_header((self.count, *self.row_shape), self.dtype, length=len(self._header)))
                handle.truncate(len(self._header) + self.count * self.dtype.itemsize * int(np.prod(self.row_shape)))
        finally:
            handle.close()
