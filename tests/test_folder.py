"""Folder datasets (issue 8): scanning, splitting, parallel decoding, memory-mapped training data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashiongen.config import parse_params
from fashiongen.data.folder import (
    UNLABELLED_CLASS,
    Layout,
    read_layout,
    is_test,
    list_images,
    prepare_folder,
    read_manifest,
    scan_folder,
    write_manifest,
)
from fashiongen.data.npy_writer import NpyRowWriter
from fashiongen.data.prepare import balanced_first_n
from fashiongen.data.prepared import load_prepared
from fashiongen.errors import ConfigError, DataError
from helpers import make_photo_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("photos"), per_class=20)


def test_listing_finds_nested_images_of_every_format_and_skips_others(photos):
    paths = list_images(photos)
    assert "shoes/nested/odd_0.webp" in paths
    assert any(p.endswith(".jpg") for p in paths) and any(p.endswith(".png") for p in paths)
    assert not any(p.endswith(".txt") or "/." in p or p.startswith(".") for p in paths)
    assert paths == sorted(paths)


def test_classes_are_two_or_more_first_level_subfolders_and_a_few_loose_images_are_left_out():
    assert read_layout(["a/1.png", "b/x/2.png"]) == Layout(["a", "b"], [])
    assert read_layout(["a/1.png", "2.png"]) == Layout([UNLABELLED_CLASS], [])  # one subfolder is no classes
    assert read_layout(["a/1.png", "a/2.png"]) == Layout([UNLABELLED_CLASS], [])
    assert read_layout(["1.png", "2.png"]) == Layout([UNLABELLED_CLASS], [])
    classes = [f"{c}/{i}.png" for c in "abc" for i in range(40)]
    assert read_layout([*classes, "cover.jpg"]) == Layout(["a", "b", "c"], ["cover.jpg"])  # 1 of 121: left out
    loose = [f"{i}.png" for i in range(14)]  # 14 of 134 (more than 10%): the subfolders are not classes
    assert read_layout(classes + loose) == Layout([UNLABELLED_CLASS], [])


def test_manifest_is_byte_identical_for_an_unchanged_folder_and_changes_with_an_image(photos, tmp_path):
    write_manifest(tmp_path / "a", scan_folder(photos))
    write_manifest(tmp_path / "b", scan_folder(photos))
    first = (tmp_path / "a/manifest.json").read_bytes()
    assert first == (tmp_path / "b/manifest.json").read_bytes()
    assert str(photos) not in first.decode()  # moving the folder retrains nothing
    manifest = read_manifest(tmp_path / "a")
    assert manifest.labelled and manifest.classes == ["bags", "shirts", "shoes"]
    extra = photos / "bags" / "extra.png"
    (photos / "bags" / "bag_0.png").rename(extra)
    try:
        write_manifest(tmp_path / "c", scan_folder(photos))
    finally:
        extra.rename(photos / "bags" / "bag_0.png")
    assert (tmp_path / "c/manifest.json").read_bytes() != first


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="is not a folder; set data.folder"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images"):
        scan_folder(tmp_path / "empty")


def test_split_is_by_content_so_duplicates_stay_together(photos):
    manifest = scan_folder(photos)
    copies = [e for e in manifest.entries if e.path in ("bags/bag_0.png", "bags/bag_copy.png")]
    assert copies[0].sha256 == copies[1].sha256 and is_test(copies[0], 0.3) == is_test(copies[1], 0.3)
    by_hash = {}
    for entry in manifest.entries:
        by_hash.setdefault(entry.sha256, set()).add(is_test(entry, 0.3))
    assert all(len(sides) == 1 for sides in by_hash.values())
    share = np.mean([is_test(e, 0.3) for e in manifest.entries])
    assert 0.1 < share < 0.5


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_decodes_to_64px_rgb_skipping_and_counting_the_corrupt_file(photos, tmp_path, workers):
    write_manifest(tmp_path / "raw", scan_folder(photos))
    meta = prepare_folder(tmp_path / "raw", tmp_path / "prepared", photos, 64, 3, 0.3, None, workers)
    assert meta["skipped_count"] == 1 and meta["skipped"][0]["path"] == "shirts/corrupt.jpg"
    assert "not a readable image" in meta["skipped"][0]["reason"]
    data = load_prepared(tmp_path / "prepared")
    train, test = data.split("train"), data.split("test")
    assert train.images.shape[1:] == (3, 64, 64) and train.images.dtype == np.uint8
    assert len(train) + len(test) == sum(meta["counts"].values()) == 3 * 20 + 2 + 1  # + the nested webps and the duplicate
    assert set(np.unique(train.labels)) == {0, 1, 2}
    # the colour of each class survives decoding: bags red, shirts green, shoes blue
    for label, channel in ((0, 0), (1, 1), (2, 2)):
        mean = train.images[train.labels == label].reshape(-1, 3, 64 * 64).mean(axis=(0, 2))
        assert mean.argmax() == channel


def test_prepare_is_the_same_with_one_or_two_workers(photos, tmp_path):
    write_manifest(tmp_path / "raw", scan_folder(photos))
    prepare_folder(tmp_path / "raw", tmp_path / "one", photos, 32, 3, 0.3, None, 1)
    prepare_folder(tmp_path / "raw", tmp_path / "two", photos, 32, 3, 0.3, None, 2)
    for name in ("train_images.npy", "train_labels.npy", "test_images.npy", "meta.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_a_file_changed_after_the_scan_is_skipped_not_silently_used(photos, tmp_path):
    write_manifest(tmp_path / "raw", scan_folder(photos))
    target = photos / "bags" / "bag_2.png"
    original = target.read_bytes()
    target.write_bytes(original + b"\0")
    try:
        meta = prepare_folder(tmp_path / "raw", tmp_path / "prepared", photos, 32, 3, 0.3, None, 1)
    finally:
        target.write_bytes(original)
    assert {"path": "bags/bag_2.png", "reason": "changed since the download stage scanned the folder"} in meta["skipped"]


def test_no_readable_image_is_an_error_and_keeps_the_previous_output(tmp_path):
    folder = tmp_path / "junk"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(6):
            (folder / cls / f"{i}.jpg").write_bytes(b"not a jpeg %d" % i)
    write_manifest(tmp_path / "raw", scan_folder(folder))
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "meta.json").write_text("previous")
    with pytest.raises(DataError, match="could be read"):
        prepare_folder(tmp_path / "raw", tmp_path / "prepared", folder, 32, 3, 0.5, None, 1)
    assert (tmp_path / "prepared" / "meta.json").read_text() == "previous"


def test_subset_is_class_balanced_for_folders(photos, tmp_path):
    write_manifest(tmp_path / "raw", scan_folder(photos))
    meta = prepare_folder(tmp_path / "raw", tmp_path / "prepared", photos, 32, 3, 0.3, 9, 1, select=balanced_first_n)
    per_class = np.bincount(np.load(tmp_path / "prepared" / "train_labels.npy"), minlength=3).tolist()
    assert sum(per_class) == meta["counts"]["train"]
    # three of each class were chosen; the corrupt shirt, if among them, is skipped after the choice
    assert per_class in ([3, 3, 3], [3, 2, 3])


def test_row_writer_writes_a_loadable_npy_and_shrinks_when_rows_are_missing(tmp_path):
    rows = np.arange(5 * 3 * 4 * 4, dtype=np.uint8).reshape(5, 3, 4, 4)
    with NpyRowWriter(tmp_path / "full.npy", 5, (3, 4, 4)) as writer:
        for row in rows:
            writer.append(row)
    assert np.array_equal(np.load(tmp_path / "full.npy"), rows)
    with NpyRowWriter(tmp_path / "short.npy", 1000, (3, 4, 4)) as writer:
        for row in rows[:3]:
            writer.append(row)
    loaded = np.load(tmp_path / "short.npy", mmap_mode="r")
    assert loaded.shape == (3, 3, 4, 4) and np.array_equal(loaded, rows[:3])
    with pytest.raises(ValueError, match="expected"):
        with NpyRowWriter(tmp_path / "bad.npy", 2, (3, 4, 4)) as writer:
            writer.append(rows[0, 0])


def test_folder_params_are_validated():
    with pytest.raises(ConfigError, match="data.folder"):
        parse_params({"data": {"source": "folder", "folder": ""}})
    assert parse_params({"data": {"source": "folder"}}).data.folder == "data/photos"
    with pytest.raises(ConfigError, match="Fashion-MNIST is 28 px"):
        parse_params({"data": {"image_size": 64}})
    with pytest.raises(ConfigError, match="not supported for folders"):
        parse_params({"data": {"source": "folder", "folder": "x", "image_size": 100}})
    params = parse_params({"data": {"source": "folder", "folder": "x"}})
    assert params.data.resolved_image_size() == 64 and params.data.resolved_channels() == 3
    assert parse_params({}).data.resolved_image_size() == 28


def test_meta_records_the_skipped_files(photos, tmp_path):
    write_manifest(tmp_path / "raw", scan_folder(photos))
    prepare_folder(tmp_path / "raw", tmp_path / "prepared", photos, 32, 3, 0.3, None, 1)
    meta = json.loads((tmp_path / "prepared" / "meta.json").read_text())
    assert meta["labelled"] is True and meta["skipped_count"] == 1


def test_encoding_condition_on_an_unlabelled_folder_is_refused_with_the_reason(tmp_path):
    from fashiongen.atomic import save_npy, write_json
    from fashiongen.pipeline.train_encoder import train_encoder

    prepared = tmp_path / "prepared"
    for split in ("train", "test"):
        save_npy(prepared / f"{split}_images.npy", np.zeros((8, 3, 32, 32), dtype=np.uint8))
        save_npy(prepared / f"{split}_labels.npy", np.zeros(8, dtype=np.int64))
    write_json(prepared / "meta.json", {"classes": [UNLABELLED_CLASS], "num_classes": 1, "labelled": False,
                                        "channels": 3, "image_size": 32, "counts": {"train": 8, "test": 8}})
    params = parse_params({"model": {"condition": "encoding"}})
    with pytest.raises(ConfigError, match="has no class labels .* the encoder learns by classifying"):
        train_encoder(params, prepared, tmp_path / "encoder.pt", tmp_path / "metrics.json")
    assert not (tmp_path / "encoder.pt").exists()


def test_meta_json_states_the_layout_and_the_loose_image_left_out(photos, tmp_path):
    """Issue 37 item 2: the decision taken from the layout is in meta.json, with the file that decided it."""
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    shutil.copyfile(photos / "bags" / "bag_1.jpg", folder / "cover.jpg")
    write_manifest(tmp_path / "raw", scan_folder(folder))
    meta = prepare_folder(tmp_path / "raw", tmp_path / "prepared", folder, 32, 3, 0.3, None, 1)
    assert meta["classes"] == ["bags", "shirts", "shoes"] and meta["labelled"]
    assert meta["layout"] == {
        "labelled": True, "classes": 3, "loose_images": 1, "loose_examples": ["cover.jpg"],
        "why": "labelled: 3 class folders (first-level subfolders holding images); 1 image(s) beside them, in no "
               "class, left out: cover.jpg"}
    assert meta["files"]["per_class"]["(outside the class folders)"]["ignored"] == 2  # cover.jpg and .hidden/


def test_prepared_arrays_follow_content_not_names(photos, tmp_path):
    """Issue 37 item 3: renaming a photo or moving it within its class changes no prepared byte."""
    import hashlib
    import shutil

    def prepared_of(folder, name):
        write_manifest(tmp_path / f"raw-{name}", scan_folder(folder))
        out = tmp_path / f"prepared-{name}"
        prepare_folder(tmp_path / f"raw-{name}", out, folder, 32, 3, 0.3, None, 1)
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    before = prepared_of(folder, "before")
    (folder / "bags" / "bag_4.png").rename(folder / "bags" / "zz_renamed.png")
    (folder / "shoes" / "deeper").mkdir()
    (folder / "shoes" / "shoe_5.jpg").rename(folder / "shoes" / "deeper" / "a_moved.jpg")
    (folder / "shirts" / "shirt_2.png").rename(folder / "shirts" / "0_first.png")
    assert prepared_of(folder, "after") == before
