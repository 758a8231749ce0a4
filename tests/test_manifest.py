"""The folder manifest (fashiongen/data/manifest.py): columns, its line-by-line format, refusals, flat memory."""

import hashlib
import json
import os
import re
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from fashiongen.atomic import write_json
from fashiongen.data.folder import is_test, scan_folder
from fashiongen.data.folder_scan import Problem
from fashiongen.data.manifest import MANIFEST_NAME, Entry, Manifest, hash_fraction, read_manifest, write_manifest
from fashiongen.errors import DataError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of PNGs (one nested, one duplicate), a dangling link, a text file and OS litter."""
    root = tmp_path_factory.mktemp("manifest") / "photos"
    for label, name in enumerate(("shirts", "shoes")):
        (root / name / "nested").mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (6, 4), (40 * i, 100 * label, 7)).save(root / name / f"{i}.png")
        Image.new("RGB", (5, 5), (1, 2, 3)).save(root / name / "nested" / "deep.png")
    (root / "shoes" / "copy.png").write_bytes((root / "shirts" / "0.png").read_bytes())
    os.symlink(root / "gone.png", root / "shoes" / "dangling.png")
    (root / "shirts" / "notes.txt").write_text("sizes")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


@pytest.fixture(scope="module")
def written(folder, tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw") / "raw"
    manifest = scan_folder(folder)
    write_manifest(raw, manifest)
    return manifest, raw


def test_scan_fills_the_columns_with_each_file_s_size_digest_and_class(folder, written):
    manifest, _ = written
    assert manifest.classes == ["shirts", "shoes"]
    assert manifest.paths[:3] == ["shirts/0.png", "shirts/1.png", "shirts/2.png"] and len(manifest) == 13
    assert manifest.sizes.dtype == np.int64 and manifest.labels.dtype == np.int64
    assert manifest.digests.dtype == np.uint8 and manifest.digests.shape == (13, 32)
    for i, path in enumerate(manifest.paths):
        data = (folder / path).read_bytes()
        assert manifest.sha256(i) == hashlib.sha256(data).hexdigest() and manifest.sizes[i] == len(data)
        assert manifest.classes[manifest.labels[i]] == path.split("/")[0]
    assert [(p.path, p.reason) for p in manifest.skipped] == [
        ("shoes/dangling.png", "is a symbolic link to nothing (its target is missing)")]
    assert manifest.not_images == ["shirts/notes.txt"]
    assert [p.path for p in manifest.ignored] == [".DS_Store"]


def test_the_manifest_reads_back_as_written_and_is_one_json_document(written):
    manifest, raw = written
    again = read_manifest(raw)
    assert again.classes == manifest.classes and again.paths == manifest.paths
    for column in ("sizes", "digests", "labels"):
        assert np.array_equal(getattr(again, column), getattr(manifest, column)), column
    assert (again.skipped, again.not_images, again.ignored) == (manifest.skipped, manifest.not_images, manifest.ignored)
    assert list(again.entries) == list(manifest.entries)
    document = json.loads((raw / MANIFEST_NAME).read_text(encoding="utf-8"))  # what jq or a person reads
    assert document["manifest_version"] == 2 and document["classes"] == ["shirts", "shoes"]
    assert document["files"][0] == {"path": "shirts/0.png", "bytes": int(manifest.sizes[0]),
                                     "sha256": manifest.sha256(0), "label": 0}
    assert document["not_images"] == ["shirts/notes.txt"] and len(document["files"]) == 13
    lines = (raw / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    assert sum(line.startswith('{"bytes": ') for line in lines) == 13  # one line per image


def test_entries_are_built_on_access_from_the_columns():
    entries = [Entry(f"a/{i}.png", 10 + i, hashlib.sha256(b"%d" % i).hexdigest(), i % 2) for i in range(5)]
    manifest = Manifest.from_entries(["a", "b"], entries)
    assert len(manifest.entries) == 5 and manifest.entries[4] == entries[4] and manifest.entries[-1] == entries[-1]
    assert manifest.entries[1:3] == entries[1:3] and list(manifest.entries) == entries
    assert not any(isinstance(value, list) and value and isinstance(value[0], Entry) for value in vars(manifest).values())


def test_held_out_is_the_first_8_hex_digits_as_a_fraction_exactly():
    rng = np.random.default_rng(0)
    digests = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    digests[0], digests[1] = 0, 255
    hexes = [d.tobytes().hex() for d in digests]
    assert hash_fraction(digests).tolist() == [int(h[:8], 16) / 16**8 for h in hexes]
    entries = [Entry(f"{i}.png", 1, h, 0) for i, h in enumerate(hexes)]
    manifest = Manifest.from_entries(["image"], entries)
    for fraction in (0.0, 0.1, 0.5, 1.0):
        assert manifest.held_out(fraction).tolist() == [is_test(e, fraction) for e in entries]


def test_the_same_folder_gives_the_same_bytes(folder, written, tmp_path):
    _, raw = written
    write_manifest(tmp_path / "again", scan_folder(folder))
    assert (tmp_path / "again" / MANIFEST_NAME).read_bytes() == (raw / MANIFEST_NAME).read_bytes()


def test_a_manifest_of_the_previous_format_is_refused_with_the_fix(written, tmp_path):
    manifest, _ = written
    write_json(tmp_path / MANIFEST_NAME, {  # what FashionGen wrote before the manifest had a version
        "source": "folder", "classes": manifest.classes, "files": [vars(e) for e in manifest.entries],
        "skipped": [vars(p) for p in manifest.skipped], "not_images": manifest.not_images,
        "ignored": [vars(p) for p in manifest.ignored],
    })
    with pytest.raises(DataError, match=r"manifest.json was written by another FashionGen version \(an unversioned "
                                         r"manifest, from before version 2\); rerun `dvc repro download`"):
        read_manifest(tmp_path)


def corruptions(text: str) -> dict[str, str | bytes]:
    first_file = re.compile(r'^\{"bytes": (\d+), .*,$', re.M)
    return {
        "empty": "",
        "truncated": text[: len(text) // 2],
        "no closing brace": text[: text.rindex("}")],
        "not UTF-8": b"\xff\xfe" + text.encode(),
        "broken line": first_file.sub(lambda m: m.group(0)[:-2] + ",", text, count=1),
        "short sha256": re.sub(r'"sha256": "[0-9a-f]{64}"', '"sha256": "abcd"', text, count=1),
        "label outside the classes": text.replace('"label": 1,', '"label": 7,', 1),
        "size as text": first_file.sub(lambda m: m.group(0).replace(m.group(1), f'"{m.group(1)}"', 1), text, count=1),
        "unknown key": text.replace('"reason": ', '"why": ', 1),
        "a file record that is a list": first_file.sub('["shirts/0.png", 1],', text, count=1),
        "a list left open": text.replace("\n],\n", "\n", 1),
    }


@pytest.mark.parametrize("kind", list(corruptions("{}")))
def test_a_damaged_manifest_is_refused_with_the_fix(written, tmp_path, kind):
    _, raw = written
    broken = corruptions((raw / MANIFEST_NAME).read_text(encoding="utf-8"))[kind]
    target = tmp_path / MANIFEST_NAME
    target.write_bytes(broken if isinstance(broken, bytes) else broken.encode())
    with pytest.raises(DataError, match=r"manifest.json is not a valid manifest \(.*\); rerun `dvc repro download`"):
        read_manifest(tmp_path)


def test_a_manifest_of_a_later_version_is_refused(written, tmp_path):
    _, raw = written
    text = (raw / MANIFEST_NAME).read_text(encoding="utf-8").replace('"manifest_version": 2,', '"manifest_version": 3,')
    (tmp_path / MANIFEST_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"another FashionGen version \(manifest_version 3; this version reads 2\); "
                                        r"rerun `dvc repro download`"):
        read_manifest(tmp_path)


# --- memory: no Python object per file -------------------------------------------------------------------------
# Issue 22's bar (peak RSS +20% at most from 5,000 to 50,000 photos) leaves ~250 bytes per file at the
# stages' peak. A dataclass or dict per file costs 300-600 bytes; the columns about 130 (the path string,
# 49 bytes of numbers). Measured with tracemalloc, so the bounds hold on any machine.

N_FILES = 4000


def synthetic_manifest(n: int) -> Manifest:
    rng = np.random.default_rng(1)
    paths = [f"class_{i % 2}/photo_{i:06d}.jpg" for i in range(n)]
    return Manifest(["class_0", "class_1"], paths, rng.integers(100, 10**6, n), rng.integers(0, 256, (n, 32), dtype=np.uint8),
                    np.arange(n, dtype=np.int64) % 2, [Problem("x.jpg", "cannot be read")], ["notes.txt"], [])


def traced(function):
    """(result, bytes still allocated, peak bytes) of ``function()``, as tracemalloc counts them.

    Still allocated leaves out the interpreter's table of interned strings (pathlib interns names): it is
    global, and grows in one step whenever it fills, whichever call happens to fill it.
    """
    tracemalloc.start(16)
    try:
        result = function()
        _, peak = tracemalloc.get_traced_memory()
        kept = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, "*pathlib.py", all_frames=True)])
    finally:
        tracemalloc.stop()
    return result, sum(stat.size for stat in kept.statistics("filename")), peak


def test_writing_and_reading_a_manifest_allocate_no_object_per_file(tmp_path):
    manifest = synthetic_manifest(N_FILES)
    _, _, write_peak = traced(lambda: write_manifest(tmp_path / "raw", manifest))
    assert write_peak / N_FILES < 60  # asdict() of every entry: ~600 B a file
    read, kept, read_peak = traced(lambda: read_manifest(tmp_path / "raw"))
    assert read.paths == manifest.paths and np.array_equal(read.digests, manifest.digests)
    assert kept / N_FILES < 200 and read_peak / N_FILES < 250  # json.loads of the whole document: ~540 B a file


def test_scanning_a_folder_keeps_about_a_path_and_49_bytes_per_file(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(N_FILES // 2):
            (tmp_path / name / f"photo_{i:06d}.jpg").write_bytes(b"%d" % i)  # content does not matter to the scan
    scan_folder(tmp_path, threads=1)  # imports and one-off caches before measuring
    manifest, kept, _ = traced(lambda: scan_folder(tmp_path, threads=1))
    assert len(manifest) == N_FILES and manifest.sha256(0) == hashlib.sha256(b"0").hexdigest()
    assert kept / N_FILES < 250  # an Entry dataclass and a hex string per file: ~360 B a file
