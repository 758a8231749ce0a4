"""The generator's model-registry entry (issue 40 item 1): what the evaluate stage writes to models/dvc.yaml."""

from __future__ import annotations

import subprocess
import sys

from ruamel.yaml import YAML

from fashiongen.registry import params_digest, write_registry

RECORDED = {"data": {"source": "fashion-mnist"}, "model": {"condition": "label"}, "train": {"epochs": 30}}
SPEC = {"z_dim": 100, "width": 32, "channels": 1, "image_size": 28, "arch": "dcgan", "condition": "label",
        "num_classes": 3, "cond_dim": 32}
METRICS = {"fid": 10.432673454284668, "fid_floor": 0.894, "recall": 0.55, "features": "evaluator-abc",
           "num_samples": 10000, "kid_mean": 0.0009}


def test_the_entry_names_the_model_and_what_it_scored(tmp_path):
    (tmp_path / "models").mkdir()
    write_registry(tmp_path / "models/dvc.yaml", tmp_path / "models/generator.pt", SPEC, ["coat", "dress", "bag"],
                   METRICS, RECORDED)
    text = (tmp_path / "models/dvc.yaml").read_text()
    assert text.startswith("# Written by the evaluate stage")
    entry = YAML(typ="safe").load(text)["artifacts"]["generator"]
    assert entry["path"] == "generator.pt" and entry["type"] == "model"  # relative to the dvc.yaml's folder
    assert entry["labels"] == ["fashiongen", "gan", "label", "dcgan"]
    assert "label model, 3 classes, 28 px grey; FID 10.43 beside a real-data floor of 0.89" in entry["desc"]
    assert entry["meta"] == {"condition": "label", "classes": ["coat", "dress", "bag"], "image_size": 28,
                             "channels": 1, "z_dim": 100, "arch": "dcgan", "fid": 10.432673454284668,
                             "fid_floor": 0.894, "recall": 0.55, "features": "evaluator-abc", "num_samples": 10000,
                             "params_digest": params_digest(RECORDED)}


def test_the_params_digest_follows_the_values_only():
    reordered = {"train": {"epochs": 30}, "model": {"condition": "label"}, "data": {"source": "fashion-mnist"}}
    assert params_digest(RECORDED) == params_digest(reordered)
    assert params_digest(RECORDED) != params_digest({**RECORDED, "train": {"epochs": 31}})


def test_dvc_reads_the_entry_as_an_artifact_of_the_repository(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "models").mkdir()
    write_registry(tmp_path / "models/dvc.yaml", tmp_path / "models/generator.pt", SPEC, ["a", "b", "c"], METRICS)
    from dvc.repo import Repo

    with Repo(str(tmp_path)) as repo:
        artifacts = repo.artifacts.read()
    generator = artifacts["models/dvc.yaml"]["generator"]
    assert generator.path == "generator.pt" and generator.type == "model" and generator.meta["fid_floor"] == 0.894
    assert "params_digest" not in generator.meta  # no params given
