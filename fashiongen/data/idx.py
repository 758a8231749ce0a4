"""Reader for the IDX format of (Fashion-)MNIST, strict about its header.

The format: two zero bytes, a type code, the number of dimensions, one
big-endian uint32 per dimension, then the data. A file whose header is wrong
or whose length disagrees with its dimensions raises :class:`IdxFormatError`
naming the file, instead of being reshaped into garbage.
"""

from __future__ import annotations

import struct

import numpy as np

from fashiongen.errors import DataError

# IDX type codes -> big-endian numpy dtypes.
_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_DIMS = 8


class IdxFormatError(DataError):
    """The bytes are not a well-formed IDX file."""


def parse_idx(data: bytes, name: str = "IDX file") -> np.ndarray:
    """Decode IDX ``data`` into an array of its declared shape (a read-only view)."""
    if len(data) < 4:
        raise IdxFormatError(f"{name}: {len(data)} bytes is too short for an IDX header.")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise IdxFormatError(f"{name}: not an IDX file (its first two bytes are not zero).")
    if type_code not in _DTYPES:
        raise IdxFormatError(f"{name}: unknown IDX type code 0x{type_code:02x}.")
    if not 1 <= ndim <= _MAX_DIMS:
        raise IdxFormatError(f"{name}: IDX header declares {ndim} dimensions (1 to {_MAX_DIMS} allowed).")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(f"{name}: truncated inside its header.")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise IdxFormatError(
            f"{name}: {problem}: header shape {shape} needs {expected} data bytes, found {actual}."
        )
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)


def expect_shape(array: np.ndarray, trailing: tuple[int, ...], name: str) -> np.ndarray:
    """Check the per-item shape (e.g. 28×28 images), whatever the item count."""
    if array.shape[1:] != trailing:
        raise IdxFormatError(
            f"{name}: items have shape {array.shape[1:]}, expected {trailing}."
        )
    return array
