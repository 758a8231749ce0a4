"""Checkpoint bookkeeping: RNG capture, run identities, resume plans, history rewinding."""

import json
import random

import numpy as np
import torch

import pytest

from fashiongen.gan.checkpoints import CheckpointStore, capture_rng, restore_rng
from fashiongen.gan.live import rewind_history
from fashiongen.gan.run_identity import identity_differences
from fashiongen.gan.run_state import resume_plan


def test_rng_states_round_trip_through_a_checkpoint_file(tmp_path):
    rng = torch.Generator().manual_seed(3)
    state = capture_rng(rng)
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3, generator=rng), torch.rand(3), np.random.rand(3), random.random())
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True), rng)
    again = (torch.rand(3, generator=rng), torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and torch.equal(expected[1], again[1])
    np.testing.assert_array_equal(expected[2], again[2])
    assert expected[3] == again[3]


def test_identity_differences_name_nested_fields():
    saved = {"train": {"lr_g": 0.0002, "seed": 0}, "model": {"loss": "bce"}}
    current = {"train": {"lr_g": 0.001, "seed": 0}, "model": {"loss": "bce", "z_dim": 64}}
    assert identity_differences(saved, current) == ["model.z_dim: '<absent>' -> 64", "train.lr_g: 0.0002 -> 0.001"]


def test_keys_a_checkpoint_lacks_count_as_their_defaults():
    """A param added after the checkpoint was written: equal when the run keeps its default."""
    saved = {"train": {"lr_g": 0.0002}}
    defaults = {"train": {"lr_g": 0.002, "cpu_bf16": False}}
    assert identity_differences(saved, {"train": {"lr_g": 0.0002, "cpu_bf16": False}}, defaults=defaults) == []
    assert identity_differences(saved, {"train": {"lr_g": 0.0002, "cpu_bf16": True}}, defaults=defaults) == [
        "train.cpu_bf16: False -> True"
    ]


def test_store_keeps_the_newest_and_prunes(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt", keep=2)
    for epoch in (1, 2, 3):
        store.save({"epoch": epoch, "global_step": epoch, "identity": {}})
    assert [p.name for p in store.existing()] == ["epoch_0003.pt", "epoch_0002.pt"]
    assert store.newest_readable()["epoch"] == 3
    store.mark_published("abc", 3)
    assert store.is_published("abc", 3) and not store.is_published("abc", 2) and not store.is_published("abd", 3)
    store.clear()
    assert store.existing() == [] and store.newest_readable() is None and not store.is_published("abc", 3)


def test_rewind_drops_rows_after_the_checkpoint_and_half_written_ones(tmp_path):
    metrics = tmp_path / "plots" / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "d_loss.tsv").write_text("step\td_loss\n0\t0.5\n1\t0.4\n2\t0.3\n3\t0.")
    (metrics / "fid.tsv").write_text("step\tfid\n1\t100.0\n3\t80")
    rewind_history(tmp_path, next_step=2, summary={"step": 1, "d_loss": 0.4})
    assert (metrics / "d_loss.tsv").read_text() == "step\td_loss\n0\t0.5\n1\t0.4\n"
    assert (metrics / "fid.tsv").read_text() == "step\tfid\n1\t100.0\n"
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"d_loss": 0.4, "step": 1}


IDENTITY = {"code": "c1", "model": {"loss": "bce"}, "train": {"epochs": 3, "lr_g": 0.002}, "data": {"sha": "d"}}


RECORD = {"params": {"model": {"loss": "bce", "clusters": 20}, "train": {"log_every": 50, "amp": True, "device": "cpu"}},
          "source": "s1"}


def with_unused(**sections):
    """RECORD with some params changed that the identity leaves out."""
    params = {name: {**values, **sections.get(name, {})} for name, values in RECORD["params"].items()}
    return {**RECORD, "params": params}


def checkpoint(epoch, **identity_train):
    identity = {**IDENTITY, "train": {**IDENTITY["train"], **identity_train}}
    return {"identity": identity, "epoch": epoch, "global_step": epoch * 10, "path": f"epoch_{epoch:04d}.pt"}


@pytest.mark.parametrize(
    "saved, epochs, flags, action, reason",
    [
        (None, 3, {}, "fresh", "no checkpoint"),
        (checkpoint(1), 3, {}, "resume", "resuming from epoch_0001.pt (epoch 1, step 10)"),
        (checkpoint(1), 3, {"resume": False}, "fresh", "train.resume is false"),
        (checkpoint(3), 3, {}, "publish", "ends the run (epoch 3)"),
        (checkpoint(3), 3, {"published": True}, "publish", "nothing changed): publishing it again, training nothing"),
        ({**checkpoint(3), "record": RECORD}, 3, {"published": True, "record": with_unused(model={"clusters": 7})},
         "publish", "changed since, none of it used by this run: model.clusters: 20 -> 7"),
        ({**checkpoint(3), "record": RECORD}, 3, {"published": True, "record": {**RECORD, "source": "s2"}},
         "publish", "code: comments, docstrings or layout only"),
        ({**checkpoint(3), "record": RECORD}, 3, {"published": True, "record": with_unused(train={"log_every": 5})},
         "fresh", "it was made with other settings (train.log_every: 50 -> 5); training again"),
        ({**checkpoint(3), "record": RECORD}, 3, {"published": True, "record": with_unused(train={"amp": False})},
         "fresh", "it was made with other settings (train.amp: True -> False); training again"),
        ({**checkpoint(3), "record": RECORD}, 3, {"published": True, "record": with_unused(train={"device": "cuda"})},
         "fresh", "(train.device: 'cpu' -> 'cuda')"),
        ({**checkpoint(3), "record": RECORD}, 3, {"published": True, "resume": False}, "fresh", "train.resume is false"),
        (checkpoint(3), 2, {}, "fresh", "another run (train.epochs: 3 -> 2)"),
        (checkpoint(1, epochs=2), 3, {}, "fresh", "another run (train.epochs: 2 -> 3)"),
        (checkpoint(2, epochs=2), 3, {"extend": True, "published": True}, "extend", "from epoch 2 to 3"),
        (checkpoint(3), 2, {"extend": True}, "fresh", "has 3 epochs, not fewer than train.epochs=2"),
        (checkpoint(2, epochs=2, lr_g=0.001), 3, {"extend": True}, "fresh", "train.lr_g: 0.001 -> 0.002"),
        ({**checkpoint(1), "identity": {**IDENTITY, "code": "c0"}}, 3, {}, "fresh", "code: the training code changed"),
    ],
)
def test_resume_plan(saved, epochs, flags, action, reason):
    flags = {"resume": True, "extend": False, "published": False, **flags}
    identity = {**IDENTITY, "train": {**IDENTITY["train"], "epochs": epochs}}
    got_action, got_reason = resume_plan(saved, identity, epochs, **flags)
    assert got_action == action and reason in got_reason, got_reason


def test_a_foreign_device_stream_is_reseeded_by_seed_and_epoch(caplog):
    from fashiongen.gan.checkpoints import reseed_value, set_generator_state

    rng = torch.Generator().manual_seed(5)
    cuda_state = torch.zeros(16, dtype=torch.uint8)
    with caplog.at_level("WARNING"):
        assert not set_generator_state(rng, cuda_state, "cuda", reseed_value(0, 4), "the stream")
    assert "was a cuda random stream and this run is on cpu" in caplog.text
    expected = torch.Generator().manual_seed(reseed_value(0, 4))
    assert torch.equal(torch.rand(4, generator=rng), torch.rand(4, generator=expected))
    assert reseed_value(0, 4) != reseed_value(0, 5) != reseed_value(1, 4)
    own = torch.Generator().manual_seed(9).get_state()
    assert set_generator_state(rng, own, "cpu", 1, "the stream")  # its own device's state resumes exactly
    assert torch.equal(rng.get_state(), own)
