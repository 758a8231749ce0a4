"""The IDX reader: exact on good files, a named error on anything else."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fashiongen.data.idx import IdxFormatError, expect_shape, parse_idx
from helpers import encode_idx


def test_round_trip():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    parsed = parse_idx(encode_idx(array))
    assert parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed, array)


def test_labels_file():
    np.testing.assert_array_equal(parse_idx(encode_idx(np.array([3, 1, 4], np.uint8))), [3, 1, 4])


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "first two bytes"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "declares 0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "truncated inside its header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 4) + b"\x00\x00", "truncated: header shape (4,) needs 4 data bytes, found 2"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x00\x00", "longer than its header says"),
    ],
)
def test_malformed_headers_are_named(data, fragment):
    with pytest.raises(IdxFormatError) as info:
        parse_idx(data, name="train-images-idx3-ubyte")
    assert "train-images-idx3-ubyte" in str(info.value)
    assert fragment in str(info.value)


def test_expect_shape_rejects_wrong_image_size():
    array = parse_idx(encode_idx(np.zeros((2, 27, 28), np.uint8)))
    with pytest.raises(IdxFormatError, match=r"items have shape \(27, 28\), expected \(28, 28\)"):
        expect_shape(array, (28, 28), "x")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_bytes_parse_or_raise_idx_error(data):
    try:
        array = parse_idx(data)
    except IdxFormatError:
        return
    # whatever parses must be self-consistent with its header
    assert array.size * array.dtype.itemsize == len(data) - 4 - 4 * data[3]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple),
    st.integers(0, 20),
    st.data(),
)
def test_fuzz_truncating_or_extending_a_valid_file_is_detected(shape, cut, data):
    valid = encode_idx(np.zeros(shape, np.uint8))
    damaged = data.draw(st.sampled_from([valid[: max(0, len(valid) - cut - 1)], valid + b"\x00" * (cut + 1)]))
    with pytest.raises(IdxFormatError):
        parse_idx(damaged)
