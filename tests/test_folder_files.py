"""Real photo folders (issue 16): every pixel right, every file accounted for, outputs that depend on the images only."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from fashiongen.config import parse_params
from fashiongen.data.folder import (
    class_names,
    prepare_folder,
    read_manifest,
    scan_folder,
    split_indices,
    write_manifest,
)
from fashiongen.data.image_files import read_image
from fashiongen.errors import ConfigError, DataError
from fashiongen.generation import resolve_label, user_image
from helpers import REPO_ROOT, doc_block

WHITE, BLUE = (255, 255, 255), (0, 0, 255)
PALETTE = [0, 0, 0, 10, 20, 30, 40, 50, 60, 200, 100, 50]


def solid(mode: str, value, size=(8, 8)) -> Image.Image:
    image = Image.new(mode, size, value)
    if mode in ("P", "PA"):
        image.putpalette(PALETTE)
    return image


def halves(mode: str, left, right, size=64) -> Image.Image:
    """A size×size image of ``mode``: left half ``left``, right half ``right`` (exact at the training size)."""
    dtype = {"I": np.int32, "F": np.float32}[mode]
    values = np.full((size, size), left, dtype=dtype)
    values[:, size // 2 :] = right
    return Image.fromarray(values, mode)


# file name -> (image, save options, expected RGB over white, expected RGB over blue); None = same as over white
MODE_FILES = {
    "one_bit.png": (solid("1", 1), {}, (255, 255, 255), None),
    "grey_L.png": (solid("L", 100), {}, (100, 100, 100), None),
    "grey_L_trns.png": (solid("L", 10), {"transparency": 10}, WHITE, BLUE),
    "grey_alpha_LA.png": (solid("LA", (100, 0)), {}, WHITE, BLUE),
    "grey_alpha_LA_opaque.png": (solid("LA", (100, 255)), {}, (100, 100, 100), None),
    "palette_P.png": (solid("P", 1), {}, (10, 20, 30), None),
    "palette_P_trns.png": (solid("P", 3), {"transparency": 3}, WHITE, BLUE),
    "palette_PA.tif": (solid("PA", (3, 0)), {}, WHITE, BLUE),
    "palette_PA_opaque.tif": (solid("PA", (3, 255)), {}, (200, 100, 50), None),
    "rgb.png": (solid("RGB", (1, 2, 3)), {}, (1, 2, 3), None),
    "rgb_trns.png": (solid("RGB", (1, 2, 3)), {"transparency": (1, 2, 3)}, WHITE, BLUE),
    "rgba_clear.png": (solid("RGBA", (200, 100, 50, 0)), {}, WHITE, BLUE),
    "rgba_half.png": (solid("RGBA", (200, 100, 50, 128)), {}, (227, 177, 152), (100, 50, 152)),
    "cmyk.tif": (solid("CMYK", (255, 0, 0, 0)), {}, (0, 255, 255), None),
    "ycbcr.tif": (solid("YCbCr", (100, 128, 128)), {}, (100, 100, 100), None),
    # 16-bit: v / 257 (the grey garment: 20000 of 65535 is 78, not white)
    "grey16_I16.png": (Image.fromarray(np.full((8, 8), 20000, np.uint16)), {}, (78, 78, 78), None),
    "grey16_I16B.tif": (solid("I;16B", 50 * 257), {}, (50, 50, 50), None),
    "grey32_I_16bit_range.tif": (Image.fromarray(np.full((8, 8), 51400, np.int32), "I"), {}, (200, 200, 200), None),
    "float_F_unit.tif": (Image.fromarray(np.full((8, 8), 0.2, np.float32), "F"), {}, (51, 51, 51), None),
}
# two-tone images whose range is outside the type's usual one: min..max of the image -> 0..255
RANGE_FILES = {
    "grey32_I_wide.tif": (halves("I", -1000, 3000), (0, 255)),
    "float_F_wide.tif": (halves("F", -2.0, 6.0), (0, 255)),
}


@pytest.fixture(scope="module")
def mode_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    for cls in ("a", "b"):
        (root / cls).mkdir()
    for name, (image, options, _, _) in MODE_FILES.items():
        image.save(root / "a" / name, **options)
    for name, (image, _) in RANGE_FILES.items():
        image.save(root / "b" / name)
    for i in range(4):
        Image.new("RGB", (40, 20), (i, 60, 90)).save(root / "b" / f"plain_{i}.png")
    return root


def prepared_rows(raw: Path, prepared: Path, test_fraction: float) -> dict[str, np.ndarray]:
    """Each used image's row in the prepared arrays, by its path in the folder."""
    manifest, meta = read_manifest(raw), json.loads((prepared / "meta.json").read_text())
    skipped = {s["path"] for s in meta["skipped"]}
    rows = {}
    for split in ("train", "test"):
        images = np.load(prepared / f"{split}_images.npy")
        order = split_indices(manifest, split, test_fraction, None)  # the prepared rows' order: by content
        used = [manifest.paths[i] for i in order if manifest.paths[i] not in skipped]
        assert len(used) == len(images)
        rows.update(zip(used, images))
    return rows


@pytest.fixture(scope="module", params=[WHITE, BLUE], ids=["white", "blue"])
def prepared_modes(request, mode_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared_modes")
    write_manifest(out / "raw", scan_folder(mode_folder))
    meta = prepare_folder(out / "raw", out / "prepared", mode_folder, 64, 3, 0.3, None, 1, background=request.param)
    return request.param, meta, prepared_rows(out / "raw", out / "prepared", 0.3)


def expected_colour(name: str, background) -> tuple:
    _, _, over_white, over_blue = MODE_FILES[name]
    return over_blue if background == BLUE and over_blue is not None else over_white


@pytest.mark.parametrize("name", sorted(MODE_FILES))
def test_every_mode_converts_to_the_right_values_after_preprocess(prepared_modes, name):
    background, meta, rows = prepared_modes
    assert meta["skipped_count"] == 0 and meta["alpha_background"] == list(background)
    image = rows[f"a/{name}"]
    assert image.shape == (3, 64, 64) and image.dtype == np.uint8
    got = tuple(int(v) for v in np.median(image.reshape(3, -1), axis=1))
    assert np.allclose(got, expected_colour(name, background), atol=1), got
    assert image.reshape(3, -1).std(axis=1).max() < 1.0  # a solid colour stays solid


@pytest.mark.parametrize("name", sorted(RANGE_FILES))
def test_wide_range_integer_and_float_images_are_scaled_by_their_min_and_max(prepared_modes, name):
    _, _, rows = prepared_modes
    image = rows[f"b/{name}"]
    low, high = RANGE_FILES[name][1]
    assert (image[:, :, :28] == low).all() and (image[:, :, 36:] == high).all()


def test_meta_counts_the_source_modes(prepared_modes):
    _, meta, _ = prepared_modes
    assert meta["modes"] == {"1": 1, "CMYK": 1, "F": 2, "I": 2, "I;16": 1, "I;16B": 1, "L": 2, "LA": 2, "P": 2, "PA": 2,
                             "RGB": 6, "RGBA": 2, "YCbCr": 1}
    assert sum(meta["modes"].values()) == sum(meta["counts"].values())


def test_generate_like_reads_every_mode_exactly_as_preprocess_did(prepared_modes, mode_folder):
    background, _, rows = prepared_modes
    loaded = SimpleNamespace(spec=SimpleNamespace(image_size=64, channels=3),
                             params={"data": {"source": "folder", "alpha_background": list(background)}})
    for path, row in rows.items():
        assert np.array_equal(user_image(loaded, mode_folder / path), row), path


def test_a_generator_saved_before_alpha_background_existed_composites_over_white(mode_folder):
    loaded = SimpleNamespace(spec=SimpleNamespace(image_size=64, channels=1), params={"data": {"source": "folder"}})
    assert (user_image(loaded, mode_folder / "a" / "rgba_clear.png") == 255).all()
    assert (user_image(loaded, mode_folder / "a" / "grey16_I16.png") == 78).all()  # grey output: the same rule


def test_grey_output_uses_the_same_rules(mode_folder, tmp_path):
    write_manifest(tmp_path / "raw", scan_folder(mode_folder))
    prepare_folder(tmp_path / "raw", tmp_path / "prepared", mode_folder, 32, 1, 0.3, None, 1, background=BLUE)
    rows = prepared_rows(tmp_path / "raw", tmp_path / "prepared", 0.3)
    blue_luma = round(255 * 0.114)  # ITU-R 601-2 luma of (0, 0, 255)
    assert (rows["a/grey16_I16.png"] == 78).all() and (rows["a/rgba_clear.png"] == blue_luma).all()
    assert (rows["a/one_bit.png"] == 255).all() and (rows["a/float_F_unit.tif"] == 51).all()


def test_alpha_background_is_validated():
    assert parse_params({}).data.alpha_background == [255, 255, 255]
    assert parse_params({"data": {"alpha_background": [0, 0, 255]}}).data.alpha_background == [0, 0, 255]
    with pytest.raises(ConfigError, match="data.alpha_background"):
        parse_params({"data": {"alpha_background": [0, 0, 256]}})
    with pytest.raises(ConfigError, match="data.alpha_background"):
        parse_params({"data": {"alpha_background": [0, 0]}})


# --- every file accounted for -------------------------------------------------------------------------------


def png_bytes(colour=(30, 30, 200), size=(24, 24)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    """Two classes of good images, under every kind of name, with links, litter and files that are not images."""
    base = tmp_path_factory.mktemp("messy")
    root, elsewhere = base / "photos", base / "elsewhere"
    for folder in (root / "coats", root / "hats", elsewhere / "more"):
        folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (30, 30), (200, 10 * i, 0)).save(root / "coats" / f"coat_{i}.png")
        Image.new("RGB", (30, 30), (0, 10 * i, 200)).save(root / "hats" / f"hat_{i}.jpg")
    Image.new("RGB", (30, 30), (200, 200, 0)).save(root / "coats" / "UPPER.JPG", format="JPEG")
    Image.new("RGB", (30, 30), (200, 0, 200)).save(root / "coats" / "renamed.jpeg_", format="JPEG")
    (root / "coats" / "no_extension").write_bytes(png_bytes((1, 200, 1)))
    Image.new("RGB", (30, 30), (9, 9, 9)).save(root / "hats" / "webp_data.dat", format="WEBP")
    (elsewhere / "linked.png").write_bytes(png_bytes((5, 5, 5)))
    (elsewhere / "more" / "in_linked_folder.png").write_bytes(png_bytes((6, 6, 6)))
    os.symlink(elsewhere / "linked.png", root / "coats" / "link_to_file.png")
    os.symlink(elsewhere / "more", root / "hats" / "linked_folder")
    os.symlink(root / "hats", root / "hats" / "loop")
    os.symlink(base / "gone.png", root / "coats" / "dangling.png")
    (root / "coats" / "notes.txt").write_text("sizes")
    (root / "hats" / "prices.csv").write_text("a,b")
    (root / "README").write_text("my photos")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "hats" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "hats" / "desktop.ini").write_text("[.ShellClassInfo]")
    (root / "coats" / "._coat_0.png").write_bytes(b"\0\5\26\7 AppleDouble")
    (root / "__MACOSX" / "coats").mkdir(parents=True)
    (root / "__MACOSX" / "coats" / "._coat_0.png").write_bytes(b"\0\5\26\7")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main")
    return root


def test_every_file_is_used_skipped_or_ignored_with_its_reason(messy_folder, tmp_path):
    manifest = scan_folder(messy_folder)
    assert manifest.classes == ["coats", "hats"]
    assert [e.path for e in manifest.entries] == [
        "coats/UPPER.JPG", "coats/coat_0.png", "coats/coat_1.png", "coats/coat_2.png", "coats/link_to_file.png",
        "coats/no_extension", "coats/renamed.jpeg_",
        "hats/hat_0.jpg", "hats/hat_1.jpg", "hats/hat_2.jpg", "hats/linked_folder/in_linked_folder.png",
        "hats/webp_data.dat",
    ]
    assert [(p.path, p.reason) for p in manifest.skipped] == [
        ("coats/dangling.png", "is a symbolic link to nothing (its target is missing)")]
    assert manifest.not_images == ["README", "coats/notes.txt", "hats/prices.csv"]
    assert {p.path: p.reason for p in manifest.ignored} == {
        ".DS_Store": "macOS folder settings (.DS_Store)",
        ".git": "hidden folder (not scanned)",
        "__MACOSX": "macOS archive metadata (__MACOSX)",
        "coats/._coat_0.png": "macOS AppleDouble file (._*)",
        "hats/Thumbs.db": "Windows thumbnail cache (Thumbs.db)",
        "hats/desktop.ini": "Windows folder settings (desktop.ini)",
        "hats/loop": "symbolic link to a folder that contains it (a loop; not followed)",
    }


def test_meta_json_and_the_log_hold_the_scan_summary_per_class(messy_folder, tmp_path, caplog):
    write_manifest(tmp_path / "raw", scan_folder(messy_folder))
    with caplog.at_level("INFO"):
        meta = prepare_folder(tmp_path / "raw", tmp_path / "prepared", messy_folder, 32, 3, 0.5, None, 1)
    files = meta["files"]
    assert files["per_class"] == {
        "coats": {"used": 7, "skipped": 1, "not_images": 1, "ignored": 1, "subset_left_out": 0},
        "hats": {"used": 5, "skipped": 0, "not_images": 1, "ignored": 3, "subset_left_out": 0},
        "(outside the class folders)": {"used": 0, "skipped": 0, "not_images": 1, "ignored": 3, "subset_left_out": 0},
    }
    assert (files["used"], files["skipped"], files["not_images"], files["ignored"]) == (12, 1, 3, 7)
    assert sum(meta["counts"].values()) == 12 and meta["skipped"] == [
        {"path": "coats/dangling.png", "reason": "is a symbolic link to nothing (its target is missing)"}]
    assert files["not_image_examples"] == ["README", "coats/notes.txt", "hats/prices.csv"]
    log = caplog.text
    assert "files: 12 used, 1 skipped, 3 not images, 7 ignored" in log
    assert "coats: 7 used, 1 skipped, 1 not images, 1 ignored" in log
    assert "coats/dangling.png: is a symbolic link to nothing" in log and "README, coats/notes.txt" in log


def test_subset_left_out_images_are_counted(messy_folder, tmp_path):
    from fashiongen.data.prepare import balanced_first_n

    write_manifest(tmp_path / "raw", scan_folder(messy_folder))
    meta = prepare_folder(tmp_path / "raw", tmp_path / "prepared", messy_folder, 32, 3, 0.5, 2, 1,
                          select=balanced_first_n)
    files = meta["files"]
    assert files["used"] == sum(meta["counts"].values()) == 4
    assert files["used"] + files["subset_left_out"] == 12


def two_class_folder(root: Path, per_class: int) -> Path:
    """Classes ``a`` and ``b``, ``per_class`` small distinct PNGs each."""
    for cls, blue in (("a", 0), ("b", 100)):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            (root / cls / f"{i}.png").write_bytes(png_bytes((40 * i, 0, blue)))
    return root


# --- oversized images and JPEG draft decoding ---------------------------------------------------------------


def write_blank_png(path: Path, width: int, height: int) -> None:
    """An 8-bit grey PNG of zeros, written without holding its pixels (19000² compresses to 351 KB)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    compressor, row = zlib.compressobj(9), b"\0" * (width + 1)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


PEAK_RSS_CHILD = """
import json, resource, sys
from pathlib import Path
from fashiongen.data.folder import prepare_folder, scan_folder, write_manifest
folder, out = Path(sys.argv[1]), Path(sys.argv[2])
write_manifest(out / "raw", scan_folder(folder))
meta = prepare_folder(out / "raw", out / "prepared", folder, 32, 3, 0.5, None, 2)
own = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker (an upper bound)
print(json.dumps({"skipped": meta["skipped"], "counts": meta["counts"], "own_mb": own, "worker_mb": workers}))
"""


def test_an_image_above_the_pixel_limit_is_skipped_before_decoding_with_bounded_memory(tmp_path):
    folder = two_class_folder(tmp_path / "photos", 4)
    write_blank_png(folder / "a" / "huge.png", 19000, 19000)
    assert (folder / "a" / "huge.png").stat().st_size < 400_000
    result = subprocess.run([sys.executable, "-c", PEAK_RSS_CHILD, str(folder), str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["skipped"] == [{"path": "a/huge.png", "reason": "is 19000×19000 px (361 Mpx), above the 200 Mpx "
                                  "limit (not decoded); downscale it"}]
    assert sum(report["counts"].values()) == 8
    # decoding it would take 361 MB for its grey pixels alone (the issue measured 2.2 GB)
    assert report["own_mb"] < 200 and report["worker_mb"] < 200, report


def test_large_jpegs_decode_at_reduced_scale_close_to_a_full_decode(tmp_path, monkeypatch):
    from PIL import ImageOps, JpegImagePlugin

    from fashiongen.data.image_files import to_training_mode

    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (24, 16, 3), dtype=np.uint8), np.ones((64, 64, 1), np.uint8))
    big, small = tmp_path / "big.jpg", tmp_path / "small.jpg"
    Image.fromarray(smooth).save(big, quality=92)  # 1024 wide × 1536 tall
    Image.fromarray(smooth[:300:, :200]).save(small, quality=92)
    drafts = []
    original = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: drafts.append((mode, size, original(self, mode, size))) or drafts[-1][2])

    def full_decode(path):
        with Image.open(path) as image:
            image.load()
            fitted = ImageOps.fit(to_training_mode(image, 3), (64, 64), method=Image.Resampling.LANCZOS)
        return np.asarray(fitted).transpose(2, 0, 1)

    drafted = read_image(big, 64, 3, "big.jpg").pixels
    assert [(mode, size) for mode, size, _ in drafts] == [("RGB", (128, 128))]
    assert drafts[0][2][1] == (0, 0, 128, 192)  # decoded at 1/8 scale: 128×192, still ≥ 2× the 64 px output
    difference = np.abs(drafted.astype(int) - full_decode(big).astype(int))
    assert difference.mean() < 1.5 and difference.max() < 24
    # shorter side below 4× the output: no draft, the output is exactly the full decode's
    assert np.array_equal(read_image(small, 64, 3, "small.jpg").pixels, full_decode(small)) and len(drafts) == 1


# --- class names and --label --------------------------------------------------------------------------------


def test_numeric_class_folders_sort_numerically_and_label_means_the_name():
    classes = class_names({"10", "2", "1", "shoes"})
    assert classes == ["1", "2", "10", "shoes"]
    assert resolve_label("10", classes) == 2 and resolve_label("1", classes) == 0 and resolve_label("2", classes) == 1
    assert resolve_label("shoes", classes) == 3
    with pytest.raises(ConfigError, match="names no class.*numbers.*0=1, 1=2, 2=10, 3=shoes"):
        resolve_label("0", classes)  # an index would be ambiguous with names that are numbers


def test_a_class_name_wins_over_an_index_and_unicode_names_match_in_either_form():
    nfd_cafe = unicodedata.normalize("NFD", "café")
    classes = ["ブラウス", nfd_cafe, "Röcke"]
    assert resolve_label("café", classes) == 1  # typed NFC, folder named NFD (macOS)
    assert resolve_label(unicodedata.normalize("NFD", "Röcke"), classes) == 2
    assert resolve_label("ブラウス", classes) == 0 and resolve_label("ﾌﾞﾗｳｽ", classes) == 0  # half-width katakana
    assert resolve_label("röcke", classes) == 2 and resolve_label("2", classes) == 2


def test_unicode_folders_keep_their_spelling_and_two_forms_of_one_name_are_refused(tmp_path):
    nfd = unicodedata.normalize("NFD", "café")
    for name in (nfd, "ブラウス"):
        (tmp_path / "ok" / name).mkdir(parents=True)
        (tmp_path / "ok" / name / "x.png").write_bytes(png_bytes())
    manifest = scan_folder(tmp_path / "ok")
    assert manifest.classes == [nfd, "ブラウス"] and resolve_label("café", manifest.classes) == 0
    for name in (nfd, unicodedata.normalize("NFC", "café")):
        (tmp_path / "clash" / name).mkdir(parents=True)
        (tmp_path / "clash" / name / "x.png").write_bytes(png_bytes())
    with pytest.raises(DataError, match="one name in two Unicode forms"):
        scan_folder(tmp_path / "clash")


# --- outputs depend only on the images ----------------------------------------------------------------------


def make_folder_with_bad_files(root: Path) -> Path:
    for cls, colour in (("a", (200, 0, 0)), ("b", (0, 0, 200))):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (20 + i, 30), colour).save(root / cls / f"{i}.png")
    (root / "a" / "text.png").write_text("not an image at all")  # UnidentifiedImageError (its repr holds an address)
    (root / "a" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "b" / "cut.png").write_bytes(png_bytes()[:60])
    os.symlink(root / "missing.png", root / "b" / "dangling.png")
    return root


def test_prepared_data_is_byte_identical_across_workers_locations_and_runs(tmp_path):
    first = make_folder_with_bad_files(tmp_path / "one" / "photos")
    moved = tmp_path / "two" / "elsewhere" / "photos"
    shutil.copytree(first, moved, symlinks=True)
    outputs = []
    for folder, workers, run in ((first, 1, "a"), (first, 2, "b"), (moved, 2, "c"), (moved, 1, "d"), (first, 1, "e")):
        out = tmp_path / "out" / run
        write_manifest(out / "raw", scan_folder(folder))
        meta = prepare_folder(out / "raw", out / "prepared", folder, 32, 3, 0.4, None, workers)
        outputs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert meta["skipped_count"] == 4
    assert all(output == outputs[0] for output in outputs[1:])
    text = outputs[0]["prepared/meta.json"].decode() + outputs[0]["raw/manifest.json"].decode()
    assert "0x" not in text and str(tmp_path) not in text
    reasons = {s["path"]: s["reason"] for s in meta["skipped"]}
    assert reasons["a/text.png"] == ("is not a readable image (UnidentifiedImageError: not a format Pillow "
                                     "recognises); use a PNG, JPEG or WebP file.")


# --- names that are not UTF-8 --------------------------------------------------------------------------------


def test_names_that_are_not_utf8_are_read_by_the_stages(tmp_path):
    root = two_class_folder(tmp_path / "photos", 3)
    latin1 = os.fsencode(root / "a") + b"/caf\xe9.png"  # as unzipped from an archive made on Windows
    with open(latin1, "wb") as handle:
        handle.write(png_bytes((0, 255, 0)))
    write_manifest(tmp_path / "raw", scan_folder(root))
    manifest_text = (tmp_path / "raw" / "manifest.json").read_text(encoding="utf-8")
    assert "caf\\udce9.png" in manifest_text  # JSON-escaped, valid UTF-8
    meta = prepare_folder(tmp_path / "raw", tmp_path / "prepared", root, 32, 3, 0.5, None, 1)
    assert meta["skipped_count"] == 0 and sum(meta["counts"].values()) == 7
    rows = prepared_rows(tmp_path / "raw", tmp_path / "prepared", 0.5)
    assert tuple(rows[os.fsdecode(b"a/caf\xe9.png")][:, 16, 16]) == (0, 255, 0)


def test_the_readme_commands_find_and_rename_names_that_are_not_utf8(tmp_path):
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    os.mkdir(os.fsencode(root) + b"/r\xf6cke")
    for name in (b"/a/caf\xe9.png", b"/r\xf6cke/\x93quoted\x94.png", b"/a/fine.png"):
        with open(os.fsencode(root) + name, "wb") as handle:
            handle.write(png_bytes())
    script = doc_block("docs/troubleshooting.md", "## Names that are not UTF-8").replace("PHOTOS", str(root))
    found = subprocess.run(["bash", "-c", script.split("\n\n")[0]], capture_output=True, check=True).stdout
    assert found.count(b"\n") == 3 and b"fine.png" not in found  # caf\xe9.png, r\xf6cke, r\xf6cke/\x93quoted\x94.png
    subprocess.run(["bash", "-c", script], capture_output=True, check=True)
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert names == ["a", "a/café.png", "a/fine.png", "röcke", "röcke/“quoted”.png"]
