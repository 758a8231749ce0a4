"""Small photo folders end to end with the default params (issue 16, item 6).

A folder of 100 to 2,000 photos must run `dvc repro` with nothing but
``data.source``/``data.folder`` set, score against the real images it has and
say which; a folder that cannot work is refused by the first stage, before
anything else runs.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from helpers import CLASS_COLOURS, copy_pipeline, run
from test_folder_pipeline import dvc, write_params

pytestmark = pytest.mark.e2e


def photo_folder(root, per_class: int, seed: int = 0):
    """``per_class`` small RGB photos in each of three class folders (like helpers.make_photo_folder, no oddities)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, colour in CLASS_COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (48, 40, 3), dtype=np.uint8)
            pixels[12:36, 10:30] = colour
            pixels[12:36, 10:30] += rng.integers(0, 40, (24, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i:03d}.png")
    return root


def folder_run(tmp_path_factory, venv_env, per_class: int):
    """`dvc repro` of a fresh pipeline on a folder of 3 × ``per_class`` photos, default params otherwise."""
    photos = photo_folder(tmp_path_factory.mktemp("photos"), per_class)
    repo = copy_pipeline(tmp_path_factory.mktemp("small_folder"))
    write_params(repo, {"data.source": "folder", "data.folder": str(photos)})
    started = time.perf_counter()
    result = dvc(repo, "repro", env=venv_env)
    print(f"dvc repro of {3 * per_class} photos with the default params: {time.perf_counter() - started:.0f} s")
    return repo, result


@pytest.fixture(scope="module")
def six_hundred(tmp_path_factory, venv_env):
    return folder_run(tmp_path_factory, venv_env, per_class=200)


def test_600_photos_run_end_to_end_with_the_default_params_and_record_the_real_set(six_hundred):
    repo, result = six_hundred
    for stage in ("download", "preprocess", "train_evaluator", "train", "evaluate"):
        assert f"Running stage '{stage}'" in result.stdout
    meta = json.loads((repo / "data/prepared/meta.json").read_text())
    assert meta["counts"]["test"] < 100 and sum(meta["counts"].values()) == 600
    metrics = json.loads((repo / "results/evaluate/metrics.json").read_text())
    # the test split is far below N = 10,000: every real image is the reference, the floor is half vs half
    assert (metrics["real_set"], metrics["real_count"], metrics["floor_count"]) == ("full", 600, 300)
    assert metrics["num_samples"] == 10000 and metrics["kid_subset_size"] == 600
    for name in ("fid", "fid_floor", "kid_mean", "is_mean", "precision", "recall", "precision_floor"):
        assert np.isfinite(metrics[name]), name
    assert metrics["fid"] > metrics["fid_floor"]
    assert "against the full real set of 600 images" in result.stderr


def test_compare_refuses_a_baseline_measured_against_another_real_set(six_hundred, tmp_path, venv_env):
    repo, _ = six_hundred
    metrics = json.loads((repo / "results/evaluate/metrics.json").read_text())
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({**metrics, "real_set": "test", "real_count": metrics["num_samples"]}))
    refused = run([sys.executable, "-m", "fashiongen", "compare", str(baseline), "results/evaluate/metrics.json"],
                  repo, check=False, env=venv_env)
    assert refused.returncode == 1
    assert "FAIL: measured against different real sets (test set of 10000 images vs full set of 600)" in refused.stdout


def test_about_100_photos_run_end_to_end_with_a_batch_of_every_training_image(tmp_path_factory, venv_env):
    repo, result = folder_run(tmp_path_factory, venv_env, per_class=34)
    counts = json.loads((repo / "data/prepared/meta.json").read_text())["counts"]
    assert counts["train"] < 128  # below the default train.batch_size: one step of all of them per epoch
    assert f"train.batch_size=128 exceeds the {counts['train']} training images" in result.stderr
    metrics = json.loads((repo / "results/evaluate/metrics.json").read_text())
    assert (metrics["real_set"], metrics["real_count"], metrics["floor_count"]) == ("full", 102, 51)
    assert np.isfinite(metrics["fid"]) and np.isfinite(metrics["recall_floor"])


def test_the_download_stage_refuses_a_folder_too_small_to_score_before_anything_else_runs(tmp_path, venv_env):
    photos = photo_folder(tmp_path / "photos", per_class=20)
    repo = copy_pipeline(tmp_path / "repo")
    write_params(repo, {"data.source": "folder", "data.folder": str(photos)})
    result = dvc(repo, "repro", env=venv_env, check=False)
    assert result.returncode != 0
    assert "Running stage 'download'" in result.stdout and "Running stage 'preprocess'" not in result.stdout
    assert f"error: data.folder={photos} cannot be trained on and scored with these params" in result.stderr
    assert "the evaluation needs at least 100 real images and there are 60" in result.stderr
    assert not (repo / "data/raw/manifest.json").exists()
