"""Obtaining the raw files: verified by the checksum of their decompressed bytes."""

import gzip

import pytest

from fashiongen.data.fashion_mnist import RAW_FILES, RawFile, fetch_fashion_mnist
from fashiongen.errors import DataError
from helpers import sha256, write_gz

PAYLOAD = bytes(range(256)) * 40
SPEC = RawFile("toy-images-idx3-ubyte", len(PAYLOAD), sha256(PAYLOAD))


def fetch(dest, local_dir=None, mirrors=()):
    fetch_fashion_mnist(dest, str(local_dir) if local_dir else None, list(mirrors), 5.0, files=[SPEC])


def leftovers(dest):
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


def test_local_gzip_copy_is_decompressed_and_verified(tmp_path):
    write_gz(tmp_path / "local" / f"{SPEC.name}.gz", PAYLOAD)
    fetch(tmp_path / "raw", tmp_path / "local")
    assert (tmp_path / "raw" / SPEC.name).read_bytes() == PAYLOAD


def test_local_uncompressed_copy_is_accepted(tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / SPEC.name).write_bytes(PAYLOAD)
    fetch(tmp_path / "raw", tmp_path / "local")
    assert (tmp_path / "raw" / SPEC.name).read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("make_bad", "fragment"),
    [
        (lambda p: write_gz(p, b"\xff" + PAYLOAD[1:]), "checksum mismatch"),
        (lambda p: write_gz(p, PAYLOAD[:100]), "truncated (100 of"),
        (lambda p: write_gz(p, PAYLOAD + b"\x00"), "longer than the expected"),
        (lambda p: p.write_bytes(gzip.compress(PAYLOAD)[:200]), "truncated (the gzip stream ends early)"),
        (lambda p: p.write_bytes(b"not gzip at all" * 10), "corrupt gzip data"),
    ],
)
def test_bad_file_is_an_error_naming_it_and_leaves_nothing(tmp_path, make_bad, fragment):
    (tmp_path / "local").mkdir()
    make_bad(tmp_path / "local" / f"{SPEC.name}.gz")
    with pytest.raises(DataError) as info:
        fetch(tmp_path / "raw", tmp_path / "local")
    message = str(info.value)
    assert SPEC.name in message and fragment in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert leftovers(tmp_path / "raw") == []  # no partial or temporary file looks valid


def test_bad_local_copy_falls_back_to_a_mirror(tmp_path):
    write_gz(tmp_path / "local" / f"{SPEC.name}.gz", b"garbage")
    write_gz(tmp_path / "mirror" / f"{SPEC.name}.gz", PAYLOAD)
    fetch(tmp_path / "raw", tmp_path / "local", [(tmp_path / "mirror").as_uri() + "/"])
    assert (tmp_path / "raw" / SPEC.name).read_bytes() == PAYLOAD


def test_unreachable_mirror_is_reported(tmp_path):
    with pytest.raises(DataError, match="download failed"):
        fetch(tmp_path / "raw", None, [(tmp_path / "nowhere").as_uri() + "/"])


def test_existing_valid_output_is_kept_and_a_bad_one_replaced(tmp_path):
    write_gz(tmp_path / "local" / f"{SPEC.name}.gz", PAYLOAD)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / SPEC.name).write_bytes(b"stale")
    fetch(raw, tmp_path / "local")
    assert (raw / SPEC.name).read_bytes() == PAYLOAD


def test_failed_fetch_does_not_touch_an_existing_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / SPEC.name).write_bytes(b"previous")
    write_gz(tmp_path / "local" / f"{SPEC.name}.gz", b"wrong")
    with pytest.raises(DataError):
        fetch(raw, tmp_path / "local")
    assert (raw / SPEC.name).read_bytes() == b"previous"
    assert leftovers(raw) == [SPEC.name]


def test_pinned_sizes_match_the_idx_headers():
    """Sizes are of the decompressed files: header + one byte per pixel or label."""
    sizes = {spec.name: spec.size for spec in RAW_FILES}
    assert sizes["train-images-idx3-ubyte"] == 16 + 60000 * 28 * 28
    assert sizes["t10k-labels-idx1-ubyte"] == 8 + 10000
