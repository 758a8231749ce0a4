"""Checkpoint bookkeeping: RNG capture, run identities, history rewinding."""

import json
import random

import numpy as np
import torch

from fashiongen.gan.checkpoints import CheckpointStore, capture_rng, identity_differences, restore_rng
from fashiongen.gan.live import rewind_history


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
    assert store.load_resumable({})["epoch"] == 3
    store.clear()
    assert store.existing() == [] and store.load_resumable({}) is None


def test_rewind_drops_rows_after_the_checkpoint_and_half_written_ones(tmp_path):
    metrics = tmp_path / "plots" / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "d_loss.tsv").write_text("step\td_loss\n0\t0.5\n1\t0.4\n2\t0.3\n3\t0.")
    (metrics / "fid.tsv").write_text("step\tfid\n1\t100.0\n3\t80")
    rewind_history(tmp_path, next_step=2, summary={"step": 1, "d_loss": 0.4})
    assert (metrics / "d_loss.tsv").read_text() == "step\td_loss\n0\t0.5\n1\t0.4\n"
    assert (metrics / "fid.tsv").read_text() == "step\tfid\n1\t100.0\n"
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"d_loss": 0.4, "step": 1}
