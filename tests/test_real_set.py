"""The real-set rule, the checks that refuse a dataset early, and what the evaluation records (issue 16, item 6)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from helpers import make_evaluator, make_prepared

from fashiongen.config import parse_params
from fashiongen.data.folder import Entry, Manifest, is_test
from fashiongen.data.requirements import dataset_problems, require_trainable_manifest
from fashiongen.errors import DataError
from fashiongen.evaluation import score_generator
from fashiongen.gan.sampling import sample_uint8
from fashiongen.metrics.real_draw import draw_real, pick
from fashiongen.real_set import choose_real_set, plan_real_set

DEFAULTS = parse_params({})


@pytest.mark.parametrize(
    "n_train, n_test, n, expected",
    [
        (60000, 10000, 10000, ("test", 10000, 10000)),  # Fashion-MNIST: N test images vs N training images
        (544, 56, 10000, ("full", 600, 300)),  # 600 photos: every real image, half vs half for the floor
        (18000, 2000, 10000, ("full", 10000, 5000)),  # a small test split of a big folder: N of all images
        (9000, 21000, 10000, ("full", 10000, 5000)),  # test_fraction 0.7: the floor lacks N training images
        (90, 11, 100, ("full", 100, 50)),  # N at its minimum, capped at the images there are
    ],
)
def test_the_real_set_is_the_test_split_when_both_splits_hold_n_else_up_to_n_of_all(n_train, n_test, n, expected):
    real = choose_real_set(n_train, n_test, n)
    assert (real.name, real.count, real.floor_count) == expected and real.num_samples == n


def test_too_few_images_or_too_many_neighbours_are_refused_with_the_fix():
    with pytest.raises(DataError, match=r"at least 100 real images and there are 99 \(89 training \+ 10 test"):
        plan_real_set(89, 10, 10000, 3)
    with pytest.raises(DataError, match=r"evaluate.pr_neighbours=50 needs more than 50 .* holds 50 .*at most 49"):
        plan_real_set(90, 10, 10000, 50)
    assert plan_real_set(90, 10, 10000, 49).floor_count == 50


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from fashiongen.data.prepared import load_prepared

    root = tmp_path_factory.mktemp("small")
    make_prepared(root / "prepared", n_train=150, n_test=20)
    make_evaluator(root / "evaluator.pt")
    return load_prepared(root / "prepared"), root / "evaluator.pt"


def test_the_full_set_draws_from_both_splits_and_the_floor_halves_are_disjoint(small_data):
    data, _ = small_data
    labels = {s: torch.as_tensor(np.array(data.split(s).labels)) for s in ("train", "test")}
    real = draw_real(choose_real_set(150, 20, 10000), data, labels, seed=0)
    train, test = data.split("train"), data.split("test")
    everything = np.concatenate([train.images, test.images])
    drawn = rows(real.images)
    assert len(drawn) == 170 and (np.sort(drawn.reshape(170, -1), 0) == np.sort(everything.reshape(170, -1), 0)).all()
    assert (real.conditions.numpy() == real.labels).all()  # each image keeps its own condition
    first, second = real.halves
    assert len(first) == len(second) == 85 and not set(first) & set(second)


def test_the_test_set_draws_what_the_evaluation_always_drew(small_data):
    # before the rule existed: N test images, then N training images, from one generator seeded by evaluate.seed
    data, _ = small_data
    rng = np.random.default_rng(3)
    test_index, train_index = pick(20, 20, rng), pick(150, 20, rng)
    unconditional = {s: torch.empty(len(data.split(s)), 0) for s in ("train", "test")}
    real = draw_real(choose_real_set(150, 20, 20), data, unconditional, seed=3)
    np.testing.assert_array_equal(rows(real.images), data.split("test").images[test_index])
    np.testing.assert_array_equal(rows(real.floor_images), data.split("train").images[train_index])


def rows(images) -> np.ndarray:
    """Every row of a view (fashiongen.data.batches) as one array: only for a test's few images."""
    return images.take(torch.arange(len(images))).numpy()


class Blobs(torch.nn.Module):
    """A 'generator' of grey blobs whose brightness follows the noise (no training needed)."""

    def forward(self, z, c=None):
        return torch.tanh(z[:, :1, None, None].expand(-1, 1, 28, 28))


def test_score_generator_records_the_real_set_and_scores_n_samples_against_it(small_data):
    from fashiongen.metrics.features import load_evaluator

    data, evaluator_path = small_data
    cfg = parse_params({"evaluate": {"num_samples": 300, "kid_subset_size": 1000}}).evaluate
    metrics, grid = score_generator(Blobs(), 8, cfg, data, load_evaluator(evaluator_path), "cpu")
    # the first 64 of the 300 samples come back for the grid (the others were measured a batch at a time)
    assert torch.equal(grid, sample_uint8(Blobs(), 64, 8, cfg.seed, cond=torch.empty(64, 0)))
    assert (metrics["real_set"], metrics["real_count"], metrics["floor_count"], metrics["num_samples"]) == ("full", 170, 85, 300)
    assert metrics["kid_subset_size"] == 170
    assert all(np.isfinite(metrics[k]) for k in ("fid", "fid_floor", "kid_mean", "kid_mean_floor", "precision", "recall"))


def manifest(counts: dict[str, int]) -> Manifest:
    """A scanned folder with ``counts[name]`` images per class (hashes of their names)."""
    entries = [
        Entry(f"{name}/{i}.png", 100, hashlib.sha256(f"{name}{i}".encode()).hexdigest(), label)
        for label, (name, count) in enumerate(counts.items()) for i in range(count)
    ]
    return Manifest.from_entries(list(counts), entries)


def test_a_folder_that_can_be_scored_passes_the_download_check():
    require_trainable_manifest(manifest({"bags": 34, "shirts": 34, "shoes": 34}), DEFAULTS)


def test_the_download_check_refuses_too_few_images_and_names_the_fix():
    with pytest.raises(DataError, match=r"data.folder=data/photos cannot be trained on(.|\n)*at least 100 real images and there are 60"):
        require_trainable_manifest(manifest({"bags": 20, "shirts": 20, "shoes": 20}), DEFAULTS)


def test_the_download_check_refuses_a_class_the_training_split_never_shows():
    folder = manifest({"bags": 60, "shirts": 60, "belts": 30})
    belts = [e for e in folder.entries if e.path.startswith("belts/")]
    held_out = [e for e in belts if is_test(e, 0.1)][:1]  # keep one belt, one the hash holds out
    folder = Manifest.from_entries(folder.classes, [e for e in folder.entries if not e.path.startswith("belts/")] + held_out)
    assert len(held_out) == 1
    with pytest.raises(DataError, match=r"class\(es\) 'belts' have no image in the training split"):
        require_trainable_manifest(folder, DEFAULTS)


def test_the_check_applies_data_subset_and_evaluate_params():
    folder = manifest({"bags": 100, "shirts": 100, "shoes": 100})
    with pytest.raises(DataError, match=r"there are \d+ \(50 training \+ \d+ test"):  # at most 2 x data.subset
        require_trainable_manifest(folder, parse_params({"data": {"subset": 50}}))
    problems = dataset_problems(np.arange(180) % 3, 20, ["a", "b", "c"], True, parse_params({"evaluate": {"pr_neighbours": 100}}))
    assert problems == [
        "evaluate.pr_neighbours=100 needs more than 100 real images on each side of the real-vs-real floor, which "
        "holds 100 (full real set of 200): set evaluate.pr_neighbours to at most 99 (default 3) or add images"
    ]


def test_an_empty_test_split_is_refused():
    problems = dataset_problems(np.zeros(150, dtype=np.int64), 0, ["image"], False, DEFAULTS)
    assert len(problems) == 1 and problems[0].startswith("the split holds 150 training and 0 test images")


def test_a_batch_larger_than_the_training_split_becomes_the_whole_split():
    from fashiongen.data.batches import fit_batch_to_split

    assert fit_batch_to_split(DEFAULTS, 95).train.batch_size == 95
    assert fit_batch_to_split(DEFAULTS, 95, world_size=2).train.batch_size == 94  # a multiple of the processes
    assert fit_batch_to_split(DEFAULTS, 500) is DEFAULTS
    assert fit_batch_to_split(DEFAULTS, 1) is DEFAULTS  # nothing to fit: training refuses it


def test_the_preview_grid_cycles_through_the_classes_the_training_split_holds():
    from fashiongen.gan.conditions import Conditions, condition_kind

    labels = np.array([0, 2, 2, 0, 2])  # class 1 absent
    codes = torch.arange(5, dtype=torch.float32)[:, None]
    grid = Conditions(condition_kind("encoding"), codes, labels, 3).grid(16)
    assert grid[:, 0].tolist() == [0, 0, 1, 1] * 4  # rows: first image of class 0, of class 2, then again
    assert Conditions(condition_kind("label"), torch.as_tensor(labels), labels, 3).grid(8).tolist() == [0, 2] * 4


def test_preprocess_refuses_its_params_before_writing_anything(tmp_path):
    # 102 photos are enough for the download stage; data.subset 50 leaves 50 training + ~10 test images
    from helpers import make_small_photo_folder

    photos = make_small_photo_folder(tmp_path / "photos", per_class=34)
    done = preprocess_over_a_previous_output(tmp_path, photos, "  subset: 50\n")
    assert done.returncode == 2
    assert "at least 100 real images and there are" in done.stderr and "(50 training + " in done.stderr
    assert (tmp_path / "data/prepared/meta.json").read_text() == "the previous run's"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["prepared", "raw"]  # no staging left


def test_preprocess_refuses_when_too_few_images_decode_and_keeps_the_previous_output(tmp_path):
    """102 listed photos pass download; 4 of them do not decode, so 98 remain: refused before the swap."""
    from helpers import make_small_photo_folder

    photos = make_small_photo_folder(tmp_path / "photos", per_class=34)
    for path in sorted(photos.glob("*/*"))[:4]:
        path.write_bytes(path.read_bytes()[:40])  # truncated: still an image by its header, not decodable
    done = preprocess_over_a_previous_output(tmp_path, photos)
    assert done.returncode == 2, done.stderr
    assert "at least 100 real images and there are 98" in done.stderr
    assert (tmp_path / "data/prepared/meta.json").read_text() == "the previous run's"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["prepared", "raw"]  # no staging left


def preprocess_over_a_previous_output(tmp_path, photos, extra_data_params: str = ""):
    """Run stages/preprocess.py on ``photos`` where data/prepared holds a previous run's meta.json."""
    import subprocess
    import sys

    from helpers import REPO_ROOT

    from fashiongen.data.folder import scan_folder, write_manifest

    write_manifest(tmp_path / "data/raw", scan_folder(photos))
    (tmp_path / "data/prepared").mkdir()
    (tmp_path / "data/prepared/meta.json").write_text("the previous run's")
    (tmp_path / "params.yaml").write_text(f"data:\n  source: folder\n  folder: {photos}\n{extra_data_params}")
    return subprocess.run([sys.executable, str(REPO_ROOT / "stages/preprocess.py")], cwd=tmp_path,
                          capture_output=True, text=True)
