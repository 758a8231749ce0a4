"""The train stage's library function on a small synthetic dataset."""

import json
import math

import pytest
import torch

from fashiongen.config import parse_params
from fashiongen.errors import CheckpointError, ConfigError
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.training import train_gan
from fashiongen.metrics.features import save_evaluator
from fashiongen.models.evaluator import Evaluator
from helpers import make_prepared, paths


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


def weights(run):
    return load_generator(run.generator).module.state_dict()


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


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


def with_train(params, **changes):
    return params.model_copy(update={"train": params.train.model_copy(update=changes)})


def test_resumed_run_ends_bit_identical_with_continuous_history(workdir):
    params = tiny_params(epochs=3)
    straight = paths(workdir, "straight")
    train_gan(params, straight)

    stopped = paths(workdir, "stopped")
    train_gan(with_train(params, epochs=1), stopped)  # "killed" after its first checkpoint
    (stopped.results / "plots" / "metrics" / "d_loss.tsv").open("a").write("999\t0.1")  # half-logged after it
    train_gan(params, stopped)  # resumes at epoch 2

    assert_same_weights(weights(straight), weights(stopped))
    history = lambda run: [row.split("\t")[0] for row in (run.results / "plots/metrics/d_loss.tsv").read_text().splitlines()]
    assert history(stopped) == history(straight)
    assert sorted(p.name for p in stopped.checkpoints.iterdir()) == ["epoch_0002.pt", "epoch_0003.pt"]


def test_run_resumed_after_its_last_epoch_still_writes_both_generators(workdir):
    """A finished run whose model files were removed (e.g. by a `dvc exp run` checkout) rewrites them from its checkpoint."""
    run = paths(workdir)
    train_gan(tiny_params(epochs=2), run)
    final, best = weights(run), load_generator(run.best_generator)
    run.generator.unlink()
    run.best_generator.unlink()
    train_gan(tiny_params(epochs=2), run)
    assert_same_weights(weights(run), final)
    again = load_generator(run.best_generator)
    assert_same_weights(again.module.state_dict(), best.module.state_dict())


def test_corrupt_newest_checkpoint_is_reported_and_the_previous_used(workdir, caplog):
    params = tiny_params(epochs=3)
    straight = paths(workdir, "straight")
    train_gan(params, straight)

    run = paths(workdir, "damaged")
    train_gan(with_train(params, epochs=2), run)
    newest = run.checkpoints / "epoch_0002.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated on disk
    with caplog.at_level("INFO"):
        train_gan(params, run)
    assert "epoch_0002.pt is unreadable" in caplog.text
    assert "resuming from" in caplog.text and "epoch_0001.pt (epoch 1" in caplog.text
    assert_same_weights(weights(straight), weights(run))


def test_checkpoint_of_other_params_is_not_resumed(workdir, caplog):
    run = paths(workdir)
    train_gan(tiny_params(epochs=1, lr_g=2e-4), run)
    changed = tiny_params(epochs=1, lr_g=1e-3)
    with caplog.at_level("INFO"):
        train_gan(changed, run)
    assert "belongs to another run (train.lr_g: 0.0002 -> 0.001)" in caplog.text
    fresh = paths(workdir, "fresh")
    train_gan(changed, fresh)
    assert_same_weights(weights(fresh), weights(run))


def test_checkpoint_of_other_network_shapes_is_not_resumed(workdir, caplog):
    """Same params, networks built by other code (e.g. an older projection discriminator)."""
    params = tiny_params(epochs=1)
    run = paths(workdir)
    train_gan(params, run)
    checkpoint = run.checkpoints / "epoch_0001.pt"
    payload = torch.load(checkpoint, weights_only=True)
    head = payload["trainer"]["discriminator"]["head.weight"]
    payload["trainer"]["discriminator"]["head.weight"] = torch.zeros(head.shape[0], head.shape[1] * 2)
    torch.save(payload, checkpoint)
    with caplog.at_level("INFO"):
        train_gan(params, run)
    changed = (head.shape[0], head.shape[1] * 2)
    assert f"of other shapes (discriminator.head.weight: {changed} -> {tuple(head.shape)})" in caplog.text
    fresh = paths(workdir, "fresh")
    train_gan(params, fresh)
    assert_same_weights(weights(fresh), weights(run))


def test_divergence_stops_without_saving_a_model(workdir, monkeypatch):
    from fashiongen.errors import TrainingDiverged
    from fashiongen.gan.trainer import GANTrainer

    real_step = GANTrainer.step
    calls = {"n": 0}

    def exploding_step(self, real, cond=None):
        calls["n"] += 1
        stats = real_step(self, real, cond)
        return stats * float("nan") if calls["n"] > 8 else stats

    monkeypatch.setattr(GANTrainer, "step", exploding_step)
    run = paths(workdir)
    with pytest.raises(TrainingDiverged) as info:
        train_gan(tiny_params(epochs=3), run)
    message = str(info.value)
    assert "diverged by step 10" in message and "d_loss=nan" in message
    assert f"the last good checkpoint is {run.checkpoints / 'epoch_0001.pt'}" in message
    assert not run.generator.exists()
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["epoch_0001.pt"]


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
    outputs = [run.generator, run.best_generator, *sorted(run.checkpoints.iterdir())]
    before = {path: path.read_bytes() for path in outputs}
    monkeypatch.setattr("fashiongen.device.cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match=r"train.cpu_bf16 is true but this CPU has no native bf16.*set train.cpu_bf16: false"):
        train_gan(tiny_params(epochs=1, cpu_bf16=True), run)
    assert sorted(run.checkpoints.iterdir()) == outputs[2:]
    assert all(path.read_bytes() == content for path, content in before.items())


def test_checkpoint_written_before_a_param_existed_resumes_at_its_default(workdir, caplog):
    run = paths(workdir)
    train_gan(tiny_params(epochs=1), run)
    [checkpoint] = run.checkpoints.glob("epoch_*.pt")
    payload = torch.load(checkpoint, weights_only=True)
    del payload["identity"]["train"]["cpu_bf16"]  # as written before train.cpu_bf16 was added
    torch.save(payload, checkpoint)
    with caplog.at_level("INFO"):
        train_gan(tiny_params(epochs=2), run)
    assert f"resuming from {checkpoint}" in caplog.text
