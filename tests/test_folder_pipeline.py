"""End to end on a folder of RGB photos at 64 px (issue 8); the parallel queued sweep is in test_team.py."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from ruamel.yaml import YAML

from fashiongen.profiles import apply_overrides
from helpers import copy_pipeline, make_photo_folder, run

pytestmark = pytest.mark.e2e

FOLDER_PARAMS = {
    "data.source": "folder",
    "data.image_size": 64,
    "data.test_fraction": 0.4,
    "data.workers": 2,
    "evaluator.epochs": 2,
    "evaluator.batch_size": 32,
    "model.g_width": 16,
    "model.d_width": 16,
    "train.epochs": 2,
    "train.batch_size": 16,
    "train.eval_samples": 100,
    "evaluate.num_samples": 100,
    "evaluate.kid_subset_size": 50,
}


def dvc(repo, *args, env, check=True):
    return run([sys.executable, "-m", "dvc", *args], repo, env=env, check=check)


def write_params(repo, overrides: dict) -> None:
    yaml = YAML()  # round-trip: keeps params.yaml's comments
    params = yaml.load(repo / "params.yaml")
    with open(repo / "params.yaml", "w") as handle:
        yaml.dump(apply_overrides(params, overrides), handle)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "params"], repo)


@pytest.fixture(scope="module")
def folder_repo(tmp_path_factory, venv_env):
    photos = make_photo_folder(tmp_path_factory.mktemp("photos"), per_class=100)
    repo = copy_pipeline(tmp_path_factory.mktemp("folder_pipeline"))
    write_params(repo, {**FOLDER_PARAMS, "data.folder": str(photos)})
    first = dvc(repo, "repro", env=venv_env)
    return repo, photos, first


def test_a_folder_of_rgb_photos_trains_end_to_end_at_64px(folder_repo, venv_env):
    repo, _, first = folder_repo
    assert "Running stage 'evaluate'" in first.stdout
    meta = json.loads((repo / "data/prepared/meta.json").read_text())
    assert meta["classes"] == ["bags", "shirts", "shoes"] and meta["image_size"] == 64 and meta["channels"] == 3
    assert meta["skipped_count"] == 1 and meta["skipped"][0]["path"] == "shirts/corrupt.jpg"
    assert sum(meta["counts"].values()) == 3 * 100 + 2 + 1  # + the nested WebPs and the duplicate
    run([sys.executable, "-m", "fashiongen", "generate", "--checkpoint", "models/generator.pt", "--n", "8",
         "--out", "samples.npz"], repo, env=venv_env)
    samples = np.load(repo / "samples.npz")["images"]
    assert samples.shape == (8, 3, 64, 64) and samples.dtype == np.uint8 and samples.std() > 0
    metrics = json.loads((repo / "results/evaluate/metrics.json").read_text())
    assert metrics["num_samples"] == 100 and np.isfinite(metrics["fid"]) and metrics["fid"] > metrics["fid_floor"]


def test_the_skipped_image_is_reported_in_the_stage_output(folder_repo):
    _, _, first = folder_repo
    output = first.stdout + first.stderr
    assert "skipped 1 unreadable image(s)" in output and "shirts/corrupt.jpg" in output


def test_a_changed_folder_reruns_preprocess_and_an_unchanged_one_does_not(folder_repo, venv_env):
    repo, photos, _ = folder_repo
    unchanged = dvc(repo, "repro", "preprocess", env=venv_env)
    assert "Stage 'preprocess' didn't change, skipping" in unchanged.stdout
    extra = photos / "bags" / "new_photo.png"
    extra.write_bytes((photos / "bags" / "bag_2.png").read_bytes() + b"")
    (photos / "bags" / "bag_2.png").unlink()
    extra.rename(photos / "bags" / "bag_2_renamed.png")
    changed = dvc(repo, "repro", "preprocess", env=venv_env)
    assert "Running stage 'preprocess'" in changed.stdout
    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert any(f["path"] == "bags/bag_2_renamed.png" for f in manifest["files"])
