"""Resume, restart and publication of training runs (issue 23 item 1-2, issue 16 item 7).

A run resumes only when it was interrupted before its end with the same code,
params and data; anything else trains from scratch and ends bit-identical to a
fresh run. A run that stops for any reason changes none of the stage's outputs.
"""

import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import fashiongen.gan.run_identity as run_identity
from fashiongen.errors import TrainingDiverged
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.checkpoints import CheckpointStore
from fashiongen.gan.trainer import GANTrainer
from fashiongen.pipeline.train import train_gan
from helpers import (REPO_ROOT, assert_same_weights, generator_weights, paths, tiny_train_params, with_model,
                     with_train)


class Interrupted(KeyboardInterrupt):
    """What Ctrl-C raises, from a chosen point of a run."""


def interrupt_after_checkpoint(monkeypatch, epoch: int) -> None:
    """The next run stops (as if killed) right after writing its checkpoint of ``epoch``."""
    original = CheckpointStore.save

    def save(self, payload):
        path = original(self, payload)
        if payload["epoch"] == epoch:
            raise Interrupted(f"stopped after epoch {epoch}")
        return path

    monkeypatch.setattr(CheckpointStore, "save", save)


def train_until_interrupted(monkeypatch, params, run, epoch: int) -> None:
    """Train ``run`` with ``params`` and stop it (as if killed) right after its checkpoint of ``epoch``."""
    with monkeypatch.context() as patch:
        interrupt_after_checkpoint(patch, epoch)
        with pytest.raises(Interrupted):
            train_gan(params, run)


def outputs_of(run) -> dict[str, str]:
    """sha256 of every file of the train stage's outputs, by path."""
    files = [run.generator, run.best_generator, *sorted(p for p in run.results.rglob("*") if p.is_file())]
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files if path.exists()}


def history(run) -> list[str]:
    return (run.results / "plots/metrics/d_loss.tsv").read_text().splitlines()


def test_interrupted_run_resumes_bit_identical_with_continuous_history(train_workdir, monkeypatch, caplog):
    params = tiny_train_params(epochs=3)
    straight = paths(train_workdir, "straight")
    train_gan(params, straight)

    stopped = paths(train_workdir, "stopped")
    train_until_interrupted(monkeypatch, params, stopped, epoch=1)
    assert not stopped.generator.exists() and not stopped.results.exists()  # nothing published by a stopped run
    (stopped.staging / "plots/metrics/d_loss.tsv").open("a").write("999\t0.1")  # half-logged after the checkpoint
    with caplog.at_level("INFO"):
        train_gan(params, stopped)

    assert "resuming from" in caplog.text and "epoch_0001.pt (epoch 1, step 6)" in caplog.text
    assert_same_weights(generator_weights(straight.generator), generator_weights(stopped.generator))
    assert history(stopped) == history(straight)
    assert sorted(p.name for p in stopped.checkpoints.glob("epoch_*.pt")) == ["epoch_0002.pt", "epoch_0003.pt"]
    assert sorted(p.name for p in stopped.samples.iterdir()) == ["epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]


def test_a_finished_run_is_published_again_when_nothing_it_uses_changed(train_workdir, monkeypatch, caplog):
    """`dvc repro -f train`, or a change of params the run does not use (issue 37 item 4): the finished run's
    outputs again, byte for byte, without one training step; the log names what changed."""
    run = paths(train_workdir)
    params = tiny_train_params()  # a label model with the rpgan loss: model.clusters and model.gp_weight unused
    train_gan(params, run)
    first, first_weights = outputs_of(run), generator_weights(run.generator)
    with monkeypatch.context() as patch:
        patch.setattr(GANTrainer, "step", lambda *a, **k: pytest.fail("a finished run trained again"))
        for unused, named in [({}, "nothing changed"), ({"clusters": 7}, "model.clusters: 20 -> 7"),
                              ({"clusters": 7, "gp_weight": 3.0}, "model.gp_weight: 10.0 -> 3.0")]:
            caplog.clear()
            with caplog.at_level("INFO"):
                train_gan(with_model(params, **unused), run)
            assert "publishing it again, training nothing" in caplog.text and named in caplog.text
            assert outputs_of(run) == first
    assert "params this label run does not use" in caplog.text and "model.clusters (model.condition cluster only)" \
        in caplog.text

    caplog.clear()
    with caplog.at_level("INFO"):
        train_gan(with_train(params, resume=False), run)  # asked to train again: from scratch, the same weights
    assert "train.resume is false" in caplog.text and "epochs 1..2" in caplog.text
    assert_same_weights(first_weights, generator_weights(run.generator))


@pytest.mark.parametrize("model, used", [({}, {"embed_dim": 8}), ({"loss": "wgan-gp"}, {"gp_weight": 3.0}),
                                         ({"condition": "cluster", "clusters": 4}, {"clusters": 3})],
                         ids=["label-embed_dim", "wgan-gp-gp_weight", "cluster-clusters"])
def test_a_change_of_a_used_param_after_a_finished_run_trains_afresh(train_workdir, caplog, model, used):
    run = paths(train_workdir)
    params = with_model(tiny_train_params(), **model)
    train_gan(params, run)
    first = outputs_of(run)
    [(name, value)] = used.items()
    with caplog.at_level("INFO"):
        train_gan(with_model(params, **used), run)
    assert f"belongs to another run (model.{name}: {getattr(params.model, name)!r} -> {value!r})" in caplog.text
    assert "epochs 1..2" in caplog.text
    assert load_generator(run.generator).params["model"][name] == value and outputs_of(run) != first


def test_the_generator_file_records_only_the_params_the_run_used(train_workdir):
    run = paths(train_workdir)
    train_gan(tiny_train_params(), run)
    recorded = load_generator(run.generator).params
    assert set(recorded) == {"data", "model", "train"}
    assert "clusters" not in recorded["model"] and "gp_weight" not in recorded["model"]
    assert recorded["model"]["condition"] == "label" and recorded["train"]["epochs"] == 2
    assert "log_every" not in recorded["train"] and "workers" not in recorded["data"]


def test_fewer_epochs_after_a_finished_run_trains_afresh(train_workdir, caplog):
    """3 epochs, then train.epochs=2 in the same workspace: a real 2-epoch model, labelled and logged as one."""
    run = paths(train_workdir)
    train_gan(tiny_train_params(epochs=3), run)
    with caplog.at_level("INFO"):
        train_gan(tiny_train_params(epochs=2), run)
    assert "belongs to another run (train.epochs: 3 -> 2); training from scratch" in caplog.text
    assert "epochs 1..2" in caplog.text

    fresh = paths(train_workdir, "fresh")
    train_gan(tiny_train_params(epochs=2), fresh)
    assert_same_weights(generator_weights(fresh.generator), generator_weights(run.generator))
    assert load_generator(run.generator).params["train"]["epochs"] == 2
    assert torch.load(run.generator, weights_only=True)["info"]["epoch"] == 2
    assert history(run) == history(fresh)


def test_a_code_change_trains_afresh_and_matches_a_fresh_run_of_the_new_code(train_workdir, monkeypatch, caplog):
    """An edit of the loss after a finished (or interrupted) run: the new code's weights, never the old ones."""
    run = paths(train_workdir)
    train_until_interrupted(monkeypatch, tiny_train_params(), run, epoch=1)  # interrupted: would be resumed by the same code

    import fashiongen.gan.training as training

    original_make_loss = training.make_loss
    monkeypatch.setattr(training, "make_loss", lambda name: original_make_loss("lsgan"))  # "edited losses.py"
    monkeypatch.setattr(run_identity, "code_digest", lambda: "digest-of-the-edited-code")
    with caplog.at_level("INFO"):
        train_gan(tiny_train_params(), run)
    assert "belongs to another run (code: the training code changed); training from scratch" in caplog.text

    fresh = paths(train_workdir, "fresh")
    train_gan(tiny_train_params(), fresh)
    assert_same_weights(generator_weights(fresh.generator), generator_weights(run.generator))


def test_the_code_digest_follows_what_training_runs_not_comments_or_the_checkout_location(tmp_path):
    import shutil

    digest = run_identity.code_digest()
    copy = tmp_path / "elsewhere" / "fashiongen"
    shutil.copytree(REPO_ROOT / "fashiongen", copy, ignore=shutil.ignore_patterns("__pycache__"))
    script = "import fashiongen.gan.run_identity as r; print(r.code_digest(), r.source_digest())"

    def digests() -> list[str]:
        done = subprocess.run([sys.executable, "-c", script], cwd=copy.parent, capture_output=True, text=True, check=True)
        return done.stdout.split()

    moved, source = digests()
    assert moved == digest
    losses = copy / "gan" / "losses.py"
    original = losses.read_text()
    assert original.startswith('"""')
    losses.write_text('"""An edited docstring."""' + original[original.index('"""', 3) + 3:] + "\n\n# an edit\n")
    assert digests()[0] == digest and digests()[1] != source  # comments and docstrings: the same behaviour
    (copy / "report.py").write_text((copy / "report.py").read_text() + "\nEDITED = 1\n")
    assert digests()[0] == digest  # a module training never runs
    losses.write_text(original + "\nEDITED = 1\n")
    assert digests()[0] != digest  # code training runs


def test_extend_continues_a_finished_run_explicitly(train_workdir, caplog):
    # a constant learning rate: with a decaying schedule the horizon is train.epochs, so a run extended
    # from 2 to 3 epochs decayed over 2 epochs at first and cannot equal a straight 3-epoch run
    run = paths(train_workdir)
    train_gan(tiny_train_params(epochs=2, schedule="constant"), run)
    with caplog.at_level("INFO"):
        train_gan(tiny_train_params(epochs=3, extend=True, schedule="constant"), run)
    assert "train.extend: continuing the finished run" in caplog.text and "from epoch 2 to 3" in caplog.text
    straight = paths(train_workdir, "straight")
    train_gan(tiny_train_params(epochs=3, schedule="constant"), straight)
    assert_same_weights(generator_weights(straight.generator), generator_weights(run.generator))
    assert history(run) == history(straight)


def test_killed_between_last_checkpoint_and_publication_publishes_without_training(train_workdir, monkeypatch, caplog):
    import fashiongen.pipeline.train as training

    straight = paths(train_workdir, "straight")
    train_gan(tiny_train_params(), straight)

    run = paths(train_workdir)
    with monkeypatch.context() as patch:
        patch.setattr(training, "publish_logs", lambda paths: (_ for _ in ()).throw(Interrupted("killed")))
        with pytest.raises(Interrupted):
            train_gan(tiny_train_params(), run)
    assert not run.generator.exists()
    monkeypatch.setattr(GANTrainer, "step", lambda *a, **k: pytest.fail("a finished run trained again"))
    with caplog.at_level("INFO"):
        train_gan(tiny_train_params(), run)
    assert "ends the run (epoch 2); writing its outputs, training nothing" in caplog.text
    assert_same_weights(generator_weights(straight.generator), generator_weights(run.generator))
    assert_same_weights(generator_weights(straight.best_generator), generator_weights(run.best_generator))
    assert history(run) == history(straight)


def test_corrupt_newest_checkpoint_is_reported_and_the_previous_used(train_workdir, monkeypatch, caplog):
    params = tiny_train_params(epochs=3)
    straight = paths(train_workdir, "straight")
    train_gan(params, straight)

    run = paths(train_workdir, "damaged")
    train_until_interrupted(monkeypatch, params, run, epoch=2)
    newest = run.checkpoints / "epoch_0002.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated on disk
    with caplog.at_level("INFO"):
        train_gan(params, run)
    assert "epoch_0002.pt is not a readable PyTorch checkpoint" in caplog.text
    assert "resuming from" in caplog.text and "epoch_0001.pt (epoch 1" in caplog.text
    assert_same_weights(generator_weights(straight.generator), generator_weights(run.generator))


def test_checkpoint_of_other_params_is_not_resumed(train_workdir, monkeypatch, caplog):
    run = paths(train_workdir)
    train_until_interrupted(monkeypatch, tiny_train_params(lr_g=2e-4), run, epoch=1)
    changed = tiny_train_params(lr_g=1e-3)
    with caplog.at_level("INFO"):
        train_gan(changed, run)
    assert "belongs to another run (train.lr_g: 0.0002 -> 0.001)" in caplog.text
    fresh = paths(train_workdir, "fresh")
    train_gan(changed, fresh)
    assert_same_weights(generator_weights(fresh.generator), generator_weights(run.generator))


def test_checkpoint_of_other_network_shapes_is_not_resumed(train_workdir, monkeypatch, caplog):
    """Same params, networks built by other code (e.g. an older projection discriminator)."""
    params = tiny_train_params()
    run = paths(train_workdir)
    train_until_interrupted(monkeypatch, params, run, epoch=1)
    checkpoint = run.checkpoints / "epoch_0001.pt"
    payload = torch.load(checkpoint, weights_only=True)
    key = next(k for k in payload["trainer"]["discriminator"] if k.endswith("head.weight"))  # base.head.weight
    head = payload["trainer"]["discriminator"][key]                                          # under a projection
    payload["trainer"]["discriminator"][key] = torch.zeros(head.shape[0], head.shape[1] * 2)
    torch.save(payload, checkpoint)
    with caplog.at_level("INFO"):
        train_gan(params, run)
    changed = (head.shape[0], head.shape[1] * 2)
    assert f"of other shapes (discriminator.{key}: {changed} -> {tuple(head.shape)})" in caplog.text
    fresh = paths(train_workdir, "fresh")
    train_gan(params, fresh)
    assert_same_weights(generator_weights(fresh.generator), generator_weights(run.generator))


def test_checkpoint_written_before_a_param_existed_resumes_at_its_default(train_workdir, monkeypatch, caplog):
    run = paths(train_workdir)
    train_until_interrupted(monkeypatch, tiny_train_params(), run, epoch=1)
    [checkpoint] = run.checkpoints.glob("epoch_*.pt")
    payload = torch.load(checkpoint, weights_only=True)
    del payload["identity"]["train"]["cpu_bf16"]  # as written before train.cpu_bf16 was added
    torch.save(payload, checkpoint)
    with caplog.at_level("INFO"):
        train_gan(tiny_train_params(), run)
    assert f"resuming from {checkpoint}" in caplog.text


@pytest.mark.parametrize("recorded_device", [True, False], ids=["device-recorded", "older-checkpoint"])
def test_checkpoint_with_another_devices_random_stream_resumes_reseeded(train_workdir, monkeypatch, caplog,
                                                                        recorded_device):
    """A CUDA generator's state (16-byte Philox) in a checkpoint resumed on a CPU: reseeded, said once, no traceback."""
    run = paths(train_workdir)
    train_until_interrupted(monkeypatch, tiny_train_params(epochs=3), run, epoch=1)
    [checkpoint] = run.checkpoints.glob("epoch_*.pt")
    payload = torch.load(checkpoint, weights_only=True)
    rng = payload["trainer"]["rng"]
    rng["trainer"] = torch.arange(16, dtype=torch.uint8)  # the size and dtype of a CUDA generator's state
    if recorded_device:
        rng["trainer_device"] = "cuda"
    else:
        del rng["trainer_device"]
    rng["cuda"] = [torch.arange(16, dtype=torch.uint8)]
    torch.save(payload, checkpoint)

    with caplog.at_level("INFO"):
        train_gan(tiny_train_params(epochs=3), run)
    assert "resuming from" in caplog.text
    warnings = [r.getMessage() for r in caplog.records if "random stream" in r.getMessage()]
    assert len(warnings) == 1 and "is reseeded (train.seed, epoch)" in warnings[0]
    assert load_generator(run.generator).params["train"]["epochs"] == 3

    again = paths(train_workdir, "again")  # the reseeding is itself reproducible
    train_until_interrupted(monkeypatch, tiny_train_params(epochs=3), again, epoch=1)
    torch.save(payload, again.checkpoints / "epoch_0001.pt")
    train_gan(tiny_train_params(epochs=3), again)
    assert_same_weights(generator_weights(again.generator), generator_weights(run.generator))


def _nan_after(monkeypatch, steps):
    original, calls = GANTrainer.step, {"n": 0}

    def step(self, real, cond=None):
        calls["n"] += 1
        stats = original(self, real, cond)
        return stats * float("nan") if calls["n"] > steps else stats

    monkeypatch.setattr(GANTrainer, "step", step)


def _raise_in_step(monkeypatch, exception, after):
    original, calls = GANTrainer.step, {"n": 0}

    def step(self, real, cond=None):
        calls["n"] += 1
        if calls["n"] > after:
            raise exception
        return original(self, real, cond)

    monkeypatch.setattr(GANTrainer, "step", step)


def _disk_full_on_checkpoint(monkeypatch, epoch):
    """The disk fills up half way through writing the checkpoint of ``epoch``."""
    from fashiongen.atomic import atomic_write

    real_save = CheckpointStore.save

    def save(self, payload):
        if payload["epoch"] == epoch:
            with atomic_write(self.path_for(epoch)) as handle:
                handle.write(b"partial bytes")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, payload)

    monkeypatch.setattr(CheckpointStore, "save", save)


FAILURES = {
    "divergence": (lambda mp: _nan_after(mp, 8), TrainingDiverged),
    "exception mid-epoch": (lambda mp: _raise_in_step(mp, RuntimeError("a bug mid-epoch"), 9), RuntimeError),
    "ctrl-c": (lambda mp: _raise_in_step(mp, KeyboardInterrupt(), 9), KeyboardInterrupt),
    "disk full during a checkpoint": (lambda mp: _disk_full_on_checkpoint(mp, 2), OSError),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_run_changes_no_output(train_workdir, monkeypatch, failure):
    """Previous outputs stay byte-identical and consistent; an interrupted run still resumes afterwards."""
    run = paths(train_workdir)
    train_gan(tiny_train_params(epochs=2), run)
    before = outputs_of(run)
    assert len(before) > 8  # generators, metrics.json, tsvs, grids

    inject, expected = FAILURES[failure]
    changed = tiny_train_params(epochs=3, lr_g=1e-3)
    with monkeypatch.context() as patch:
        inject(patch)
        with pytest.raises(expected):
            train_gan(changed, run)
    assert outputs_of(run) == before
    assert not list(run.checkpoints.glob(".*.tmp")) and not list(run.results.rglob(".*.tmp"))

    train_gan(changed, run)  # the same run, without the failure, completes and replaces the outputs
    fresh = paths(train_workdir, "fresh")
    train_gan(changed, fresh)
    assert_same_weights(generator_weights(fresh.generator), generator_weights(run.generator))
    assert history(run) == history(fresh)


def test_sigterm_mid_epoch_changes_no_output_and_the_run_resumes(train_workdir):
    run = paths(train_workdir)
    script = textwrap.dedent(f"""
        import logging, sys, time
        logging.basicConfig(level=logging.INFO)
        sys.path.insert(0, {str(REPO_ROOT / 'tests')!r})
        from fashiongen.gan.trainer import GANTrainer
        from fashiongen.pipeline.train import train_gan
        from helpers import paths, tiny_train_params
        slow = len(sys.argv) > 1
        if slow:
            original = GANTrainer.step
            def step(self, real, cond=None):
                time.sleep(0.05)
                return original(self, real, cond)
            GANTrainer.step = step
        train_gan(tiny_train_params(epochs=4, lr_g=1e-3 if slow else 2e-3), paths(__import__('pathlib').Path('.')))
    """)
    subprocess.run([sys.executable, "-c", script], cwd=train_workdir, check=True, capture_output=True)
    before = outputs_of(run)

    training = subprocess.Popen([sys.executable, "-c", script, "slow"], cwd=train_workdir,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run.checkpoints / "epoch_0001.pt").exists() or (run.checkpoints / "published.json").exists():
        assert training.poll() is None and time.monotonic() < deadline, "no checkpoint of the new run"
        time.sleep(0.02)
    time.sleep(0.1)  # mid-epoch 2
    os.kill(training.pid, signal.SIGTERM)
    training.wait(timeout=60)
    assert training.returncode == -signal.SIGTERM
    assert outputs_of(run) == before
    assert not (run.checkpoints / "epoch_0004.pt").exists()

    resumed = subprocess.run([sys.executable, "-c", script, "slow"], cwd=train_workdir, check=True,
                             capture_output=True, text=True)
    assert "resuming from" in resumed.stderr
    assert outputs_of(run) != before and load_generator(run.generator).params["train"]["lr_g"] == 1e-3
