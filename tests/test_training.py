"""The train stage's library function on a small synthetic dataset."""

import json
import math

import pytest
import torch

from fashiongen.errors import CheckpointError, ConfigError
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.conditions import kind_for
from fashiongen.pipeline.train import train_gan
from helpers import assert_same_weights, generator_weights, paths
from helpers import tiny_train_params as tiny_params


@pytest.fixture
def workdir(train_workdir):
    return train_workdir


def weights(run):
    return generator_weights(run.generator)


@pytest.mark.parametrize("loss", ["bce", "lsgan"])
def test_training_writes_generator_logs_and_grids(workdir, loss):
    params = tiny_params()
    params = params.model_copy(update={"model": params.model.model_copy(update={"loss": loss})})
    run = paths(workdir)
    final = train_gan(params, run)

    assert all(math.isfinite(final[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake", "fid"))
    loaded = load_generator(run.generator)
    kind = kind_for(params.model.condition, labelled=True)  # the blobs have classes
    assert loaded.spec.condition == kind.name and loaded.spec.z_dim == 16 + kind.extra_noise  # cluster: + choice columns
    assert loaded.spec.image_size == 28
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
    assert_same_weights(weights(paths(workdir, "a")), weights(paths(workdir, "b")))


def test_a_batch_larger_than_the_data_trains_on_all_of_it_and_records_that_batch(workdir, caplog):
    run = paths(workdir)
    train_gan(tiny_params(batch_size=1024, epochs=1, eval_every=0), run)  # a small photo folder at batch 128
    assert load_generator(run.generator).params["train"]["batch_size"] == 192
    assert "train.batch_size=1024 exceeds the 192 training images: every step uses 192" in caplog.text


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


def test_generator_whose_weights_do_not_fit_its_config_says_what_differs(tmp_path):
    from fashiongen.gan.artifact import GeneratorSpec, build_generator, save_generator

    wide, narrow = GeneratorSpec(16, 16, 1, 28), GeneratorSpec(16, 8, 1, 28)
    path = tmp_path / "generator.pt"
    save_generator(path, build_generator(wide), narrow, [], {})  # config of one run, weights of another
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert "'width': 8" in message
    assert "project.linear.weight has shape (1568, 16), the config needs (784, 16)" in message


def test_cpu_bf16_trains_under_bf16_autocast_and_is_a_run_of_its_own(workdir, monkeypatch, caplog):
    """On a CPU with bf16 units the option autocasts; a float32 checkpoint is then not resumed."""
    monkeypatch.setattr("fashiongen.device.cpu_has_native_bf16", lambda: True)
    run = paths(workdir)
    train_gan(tiny_params(epochs=1), run)
    float32 = weights(run)
    seen = []
    real_autocast = torch.autocast
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: seen.append((a, k)) or real_autocast(*a, **k))
    with caplog.at_level("INFO"):
        train_gan(tiny_params(epochs=1, cpu_bf16=True), run)
    assert ("cpu",) in [a for a, _ in seen] and all(k["dtype"] == torch.bfloat16 for _, k in seen)
    assert "belongs to another run (train.cpu_bf16: False -> True)" in caplog.text
    assert any(not torch.equal(float32[k], v) for k, v in weights(run).items())


def test_cpu_bf16_on_a_cpu_without_bf16_units_is_refused_before_any_output_changes(workdir, monkeypatch):
    run = paths(workdir)
    train_gan(tiny_params(epochs=1), run)
    outputs = [run.generator, run.best_generator, *sorted(run.checkpoints.glob("epoch_*.pt"))]
    before = {path: path.read_bytes() for path in outputs}
    monkeypatch.setattr("fashiongen.device.cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match=r"train.cpu_bf16 is true but this CPU has no native bf16.*set train.cpu_bf16: false"):
        train_gan(tiny_params(epochs=1, cpu_bf16=True), run)
    assert sorted(run.checkpoints.glob("epoch_*.pt")) == outputs[2:]
    assert all(path.read_bytes() == content for path, content in before.items())
