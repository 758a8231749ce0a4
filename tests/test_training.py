"""The train stage's library function on a small synthetic dataset."""

import json
import math

import numpy as np
import pytest
import torch

from fashiongen.atomic import save_npy, write_json
from fashiongen.config import parse_params
from fashiongen.errors import CheckpointError
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.training import TrainPaths, train_gan
from fashiongen.metrics.features import save_evaluator
from fashiongen.models.evaluator import Evaluator


def make_prepared(root, n_train=192, n_test=128):
    """Blobs whose brightness depends on the class: simple enough for a GAN to start learning."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = (rng.random((n, 1, 28, 28)) * 40 + labels[:, None, None, None] * 20).astype(np.uint8)
        save_npy(root / f"{split}_images.npy", images)
        save_npy(root / f"{split}_labels.npy", labels.astype(np.int64))
    write_json(
        root / "meta.json",
        {"classes": [str(i) for i in range(10)], "num_classes": 10, "channels": 1, "image_size": 28,
         "counts": {"train": n_train, "test": n_test}, "source": "synthetic", "subset": None},
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dvclive looks for a git/DVC repo from the working directory
    make_prepared(tmp_path / "prepared")
    config = {"channels": 1, "num_classes": 10, "image_size": 28, "width": 8, "feature_dim": 16}
    torch.manual_seed(0)
    save_evaluator(tmp_path / "evaluator.pt", Evaluator(**config), config, [str(i) for i in range(10)], 0.5)
    return tmp_path


def tiny_params(**train):
    return parse_params(
        {
            "model": {"g_width": 8, "d_width": 8, "z_dim": 16},
            "train": {"epochs": 2, "batch_size": 32, "log_every": 2, "eval_samples": 100, "device": "cpu", **train},
            "data": {"subset": 100},
            "evaluate": {"num_samples": 100},
        }
    )


def paths(root, name="run"):
    return TrainPaths(
        prepared=root / "prepared",
        evaluator=root / "evaluator.pt",
        generator=root / name / "generator.pt",
        results=root / name / "results",
    )


@pytest.mark.parametrize("loss", ["bce", "lsgan"])
def test_training_writes_generator_logs_and_grids(workdir, loss):
    params = tiny_params()
    params = params.model_copy(update={"model": params.model.model_copy(update={"loss": loss})})
    run = paths(workdir)
    final = train_gan(params, run)

    assert all(math.isfinite(final[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake", "fid"))
    loaded = load_generator(run.generator)
    assert loaded.spec.z_dim == 16 and loaded.spec.image_size == 28
    assert loaded.params["model"]["loss"] == loss  # the resolved config travels with the weights
    assert sorted(p.name for p in run.samples.iterdir()) == ["epoch_0001.png", "epoch_0002.png"]

    summary = json.loads((run.results / "metrics.json").read_text())
    assert summary["epoch"] == 2 and math.isfinite(summary["fid"])
    d_loss = (run.results / "plots" / "metrics" / "d_loss.tsv").read_text().splitlines()
    assert d_loss[0].split("\t") == ["step", "d_loss"]
    assert len(d_loss) - 1 == 6  # 6 steps/epoch: logged after steps 2 and 4 and at the epoch's end, twice
    fid_rows = (run.results / "plots" / "metrics" / "fid.tsv").read_text().splitlines()
    assert len(fid_rows) - 1 == 2  # one quick FID per epoch


def test_same_seed_same_weights(workdir):
    params = tiny_params(epochs=1, eval_every=0)
    train_gan(params, paths(workdir, "a"))
    train_gan(params, paths(workdir, "b"))
    a = load_generator(paths(workdir, "a").generator).module.state_dict()
    b = load_generator(paths(workdir, "b").generator).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batch_larger_than_the_data_is_a_clear_error(workdir):
    from fashiongen.errors import ConfigError

    with pytest.raises(ConfigError, match="exceeds the 192 training images"):
        train_gan(tiny_params(batch_size=1024), paths(workdir))


def test_damaged_generator_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "generator.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_generator(bad)
    torch.save({"format": "something else"}, bad)
    with pytest.raises(CheckpointError, match="is not a FashionGen generator"):
        load_generator(bad)
    with pytest.raises(CheckpointError, match="does not exist; train a generator first"):
        load_generator(tmp_path / "missing.pt")
