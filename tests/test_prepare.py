"""preprocess: raw IDX -> uint8 N×C×H×W arrays, int64 labels, meta.json."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fashiongen.data.fashion_mnist import CLASS_NAMES, SPLIT_FILES
from fashiongen.data.prepare import balanced_first_n, prepare_fashion_mnist
from fashiongen.data.prepared import load_prepared
from fashiongen.errors import DataError
from helpers import encode_idx, fake_fashion_split


def write_raw(raw, n_train=100, n_test=50):
    raw.mkdir(parents=True, exist_ok=True)
    splits = {"train": fake_fashion_split(n_train, 0), "test": fake_fashion_split(n_test, 1)}
    for split, (images, labels) in splits.items():
        images_name, labels_name = SPLIT_FILES[split]
        (raw / images_name).write_bytes(encode_idx(images))
        (raw / labels_name).write_bytes(encode_idx(labels))
    return splits


def test_arrays_and_meta(tmp_path):
    splits = write_raw(tmp_path / "raw")
    meta = prepare_fashion_mnist(tmp_path / "raw", tmp_path / "prepared", subset=None)
    data = load_prepared(tmp_path / "prepared")
    train = data.split("train")
    assert train.images.shape == (100, 1, 28, 28) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.images[:, 0], splits["train"][0])
    assert meta == json.loads((tmp_path / "prepared" / "meta.json").read_text())
    assert meta["counts"] == {"train": 100, "test": 50}
    assert meta["classes"] == list(CLASS_NAMES) and meta["image_size"] == 28 and meta["channels"] == 1


def test_subset_is_class_balanced_and_in_file_order(tmp_path):
    write_raw(tmp_path / "raw")
    prepare_fashion_mnist(tmp_path / "raw", tmp_path / "prepared", subset=30)
    labels = load_prepared(tmp_path / "prepared").split("train").labels
    assert len(labels) == 30
    assert np.bincount(labels, minlength=10).tolist() == [3] * 10


@given(st.integers(10, 200), st.integers(0, 2**31 - 1))
def test_balanced_first_n_properties(n, seed):
    labels = np.random.default_rng(seed).integers(0, 10, size=400)
    counts = np.bincount(labels, minlength=10)
    if (counts < n // 10 + 1).any():
        return  # too few of some class for this n; covered by the error test
    index = balanced_first_n(labels, n, 10)
    assert len(index) == n and (np.diff(index) > 0).all()
    per_class = np.bincount(labels[index], minlength=10)
    assert per_class.max() - per_class.min() <= 1
    for cls in range(10):  # the first occurrences of each class
        np.testing.assert_array_equal(index[labels[index] == cls], np.flatnonzero(labels == cls)[: per_class[cls]])


def test_a_class_short_of_its_share_gives_all_it_has_and_the_others_fill_the_subset():
    # a photo folder's classes: 100 shirts, 5 bags, 5 shoes; data.subset 60 = 20 each if it could be
    labels = np.array([0] * 100 + [1] * 5 + [2] * 5)
    index = balanced_first_n(labels, 60, 3)
    assert np.bincount(labels[index], minlength=3).tolist() == [50, 5, 5]
    np.testing.assert_array_equal(index, np.concatenate([np.arange(50), np.arange(100, 110)]))
    # shortfall shared evenly among the open classes, the first ones one more
    labels = np.array([0] * 10 + [1] * 2 + [2] * 10)
    assert np.bincount(labels[balanced_first_n(labels, 13, 3)], minlength=3).tolist() == [6, 2, 5]
    assert balanced_first_n(labels, 22, 3).tolist() == list(range(22))  # n >= the split: every item


def test_missing_raw_file_names_the_stage_to_run(tmp_path):
    with pytest.raises(DataError, match=r"missing; run the download stage"):
        prepare_fashion_mnist(tmp_path / "raw", tmp_path / "prepared", None)


def test_mismatched_counts_are_an_error(tmp_path):
    write_raw(tmp_path / "raw")
    (tmp_path / "raw" / SPLIT_FILES["train"][1]).write_bytes(encode_idx(np.zeros(99, np.uint8)))
    with pytest.raises(DataError, match="has 100 images but .* has 99 labels"):
        prepare_fashion_mnist(tmp_path / "raw", tmp_path / "prepared", None)


def test_out_of_range_labels_are_an_error(tmp_path):
    write_raw(tmp_path / "raw")
    (tmp_path / "raw" / SPLIT_FILES["test"][1]).write_bytes(encode_idx(np.full(50, 12, np.uint8)))
    with pytest.raises(DataError, match=r"labels outside 0..9"):
        prepare_fashion_mnist(tmp_path / "raw", tmp_path / "prepared", None)
