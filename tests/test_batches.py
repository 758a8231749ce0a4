"""The one batching path (fashiongen/data/batches.py): rows read by index, in batches, with a bounded
in-memory share, and every stage's result independent of that share (issue 22)."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest
import torch

from fashiongen.data.batches import (
    ImageSource, Joined, PreloadBudget, Rotations, Subset, iter_batches, rotation_labels, sha256_of_images, update_digest,
)
from helpers import make_prepared


def mapped(tmp_path, images: np.ndarray, name: str = "x.npy") -> np.ndarray:
    np.save(tmp_path / name, images)
    return np.load(tmp_path / name, mmap_mode="r")


def random_images(n: int, shape=(3, 8, 8), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_image_source_gives_the_same_batches_in_memory_and_read_per_batch(tmp_path):
    images = random_images(50)
    array = mapped(tmp_path, images)
    in_memory = ImageSource(array, "cpu", preload=1.0)
    streamed = ImageSource(array, "cpu", preload=0.0)
    assert in_memory.in_memory and not streamed.in_memory
    index = torch.tensor([7, 3, 49, 0, 3, 4, 5, 6])  # any order, repeats, a run of consecutive rows
    assert torch.equal(in_memory.take(index), streamed.take(index))
    assert torch.equal(streamed.take(index), torch.from_numpy(images[index.numpy()]))
    assert torch.equal(torch.cat(list(iter_batches(streamed, 16))), torch.from_numpy(images))
    assert [len(batch) for batch in iter_batches(streamed, 16)] == [16, 16, 16, 2]
    with pytest.raises(IndexError):
        streamed.take(torch.tensor([50]))


def test_a_stage_budget_preloads_splits_while_they_fit_together():
    images = random_images(10)  # 1920 bytes
    budget = PreloadBudget(3000 / (1 << 30))
    first, second = ImageSource(images, "cpu", budget), ImageSource(images, "cpu", budget)
    assert first.in_memory and not second.in_memory  # the second would take the stage over its budget
    assert ImageSource(images, "cpu", PreloadBudget(0.0)).in_memory is False
    with pytest.raises(ValueError, match=">= 0"):
        PreloadBudget(-1)


def rss_file_kb() -> int:
    return int(next(line for line in open("/proc/self/status") if line.startswith("RssFile")).split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_reading_per_batch_does_not_map_the_file_into_the_process(tmp_path):
    """Reading through a memory map leaves every page it touched in the process's resident memory (RssFile):
    after one epoch, the whole file. The batching path reads the file instead, so it stays out."""
    array = mapped(tmp_path, np.full((640, 1, 256, 256), 7, dtype=np.uint8))  # 40 MiB
    before = rss_file_kb()
    for batch in iter_batches(ImageSource(array, "cpu", preload=0.0), 64):
        assert int(batch[0, 0, 0, 0]) == 7
    assert rss_file_kb() - before < 8 * 1024  # a few batches' worth at most (the rest is the page cache's)
    for start in range(0, 640, 64):  # the control: the same reads through the mapping do show up
        np.array(array[start : start + 64])
    assert rss_file_kb() - before > 30 * 1024


def test_rotations_are_the_four_turned_copies_made_per_batch(tmp_path):
    images = random_images(5, (2, 4, 4))
    copies = np.concatenate([np.rot90(images, k, axes=(2, 3)) for k in range(4)])  # what the stage used to build
    for preload in (0.0, 1.0):
        turned = Rotations(ImageSource(mapped(tmp_path, images), "cpu", preload))
        assert len(turned) == 20
        index = torch.tensor([19, 0, 7, 12, 5, 6, 18, 3])
        assert torch.equal(turned.take(index), torch.from_numpy(copies[index.numpy()]))
        assert torch.equal(torch.cat(list(iter_batches(turned, 3))), torch.from_numpy(copies))
    assert rotation_labels(2).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_subsets_and_joined_views_read_the_rows_they_name(tmp_path):
    a, b = random_images(6, seed=1), random_images(4, seed=2)
    view = Joined((Subset(ImageSource(mapped(tmp_path, a, "a.npy")), np.array([5, 1, 1])),
                   Subset(ImageSource(b), np.array([0, 3]))))
    expected = np.concatenate([a[[5, 1, 1]], b[[0, 3]]])
    assert len(view) == 5
    assert torch.equal(view.take(torch.tensor([4, 0, 3, 2])), torch.from_numpy(expected[[4, 0, 3, 2]]))
    assert torch.equal(Subset(view, np.array([3, 0])).take(np.arange(2)), torch.from_numpy(expected[[3, 0]]))


def test_digests_read_chunk_by_chunk_equal_the_whole_arrays(tmp_path):
    images = random_images(37)
    array = mapped(tmp_path, images)
    assert sha256_of_images(array) == hashlib.sha256(images.data).hexdigest()
    digest = hashlib.sha256()
    update_digest(digest, Rotations(ImageSource(array)), chunk_bytes=1000)  # 5 rows a chunk
    copies = np.ascontiguousarray(np.concatenate([np.rot90(images, k, axes=(2, 3)) for k in range(4)]))
    assert digest.hexdigest() == hashlib.sha256(copies.data).hexdigest()


# --- every stage's result is the same whatever the in-memory share -------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Two prepared folders of 160 + 64 blobs: with class labels, and without (the rotation task)."""
    root = tmp_path_factory.mktemp("batches")
    make_prepared(root / "labelled", n_train=160, n_test=64)
    make_prepared(root / "unlabelled", n_train=160, n_test=64)
    meta = json.loads((root / "unlabelled" / "meta.json").read_text())
    meta.update({"classes": ["image"], "num_classes": 1, "labelled": False})
    (root / "unlabelled" / "meta.json").write_text(json.dumps(meta))
    for split in ("train", "test"):
        np.save(root / "unlabelled" / f"{split}_labels.npy", np.zeros(160 if split == "train" else 64, dtype=np.int64))
    return root


def state(path) -> dict:
    return torch.load(path, weights_only=False)


@pytest.mark.parametrize("task", ["labelled", "unlabelled"])
def test_the_evaluator_is_the_same_whether_its_images_are_preloaded_or_read_per_batch(prepared, tmp_path, task):
    from fashiongen.config import parse_params
    from fashiongen.pipeline.train_evaluator import train_evaluator

    params = parse_params({"evaluator": {"epochs": 1, "batch_size": 32, "width": 8, "feature_dim": 16}})
    results = {}
    for gb in (2.0, 0.0):
        data_cfg = parse_params({"data": {"preload_max_gb": gb}}).data
        metrics = train_evaluator(params.evaluator, prepared / task, tmp_path / f"{gb}.pt", tmp_path / f"{gb}.json", data_cfg)
        results[gb] = (metrics, state(tmp_path / f"{gb}.pt"))
    (in_memory, weights), (streamed, streamed_weights) = results[2.0], results[0.0]
    assert in_memory == streamed  # accuracy, loss, weight digest (the id) and recipe
    for name, tensor in weights["state_dict"].items():
        assert torch.equal(tensor, streamed_weights["state_dict"][name]), name
    assert in_memory["task"] == ("classes" if task == "labelled" else "rotation")


def test_the_encoder_and_the_encodings_are_the_same_whatever_the_preload(prepared, tmp_path):
    from fashiongen.config import parse_params
    from fashiongen.pipeline.encode import encode_dataset
    from fashiongen.pipeline.train_encoder import train_encoder

    results = {}
    for gb in (2.0, 0.0):
        params = parse_params({"model": {"condition": "encoding"}, "data": {"preload_max_gb": gb},
                               "encoder": {"epochs": 1, "batch_size": 64, "dim": 8}})
        metrics = train_encoder(params, prepared / "labelled", tmp_path / f"{gb}.pt", tmp_path / f"{gb}.json")
        encode_dataset(params, prepared / "labelled", tmp_path / f"{gb}.pt", tmp_path / f"codes{gb}")
        results[gb] = metrics, {split: np.load(tmp_path / f"codes{gb}" / f"{split}_encodings.npy") for split in ("train", "test")}
    assert results[2.0][0] == results[0.0][0]  # accuracy, loss and the weights' digest (the id)
    for split in ("train", "test"):
        assert results[2.0][1][split].shape == (160 if split == "train" else 64, 8)
        np.testing.assert_array_equal(results[2.0][1][split], results[0.0][1][split])


def test_the_rotation_recipe_hashes_what_the_four_copies_hashed(prepared):
    """The evaluator's recipe (its ruler id) of an unlabelled folder is the one the copies gave before."""
    from fashiongen.config import EvaluatorConfig
    from fashiongen.data.batches import Labelled, PreloadBudget, labelled_split
    from fashiongen.data.prepared import load_prepared
    from fashiongen.pipeline.train_evaluator import evaluator_recipe, rotation_task

    data = load_prepared(prepared / "unlabelled")
    cfg, config = EvaluatorConfig(), {"network": 1}
    splits = [rotation_task(labelled_split(data, name, "cpu", PreloadBudget(0))) for name in ("train", "test")]
    digest = hashlib.sha256(json.dumps({"network": config, "training": {k: v for k, v in cfg.model_dump().items()
                                                                        if k != "steps_per_epoch"}}, sort_keys=True).encode())
    for name in ("train", "test"):
        images = np.asarray(data.split(name).images)
        copies = np.concatenate([np.rot90(images, k, axes=(2, 3)) for k in range(4)])
        digest.update(np.ascontiguousarray(copies).data)
        digest.update(np.repeat(np.arange(4, dtype=np.int64), len(images)).data)
    assert evaluator_recipe(config, cfg, *splits) == f"recipe-{digest.hexdigest()[:16]}"
    assert isinstance(splits[0], Labelled) and len(splits[0]) == 4 * 160


def test_steps_per_epoch_bounds_an_epoch():
    from fashiongen.classifier import FitSettings, steps_in_epoch

    settings = FitSettings(epochs=1, batch_size=32, lr=1e-3, seed=0)
    assert steps_in_epoch(640, settings) == 20 and steps_in_epoch(10, settings) == 1
    assert steps_in_epoch(640, FitSettings(1, 32, 1e-3, 0, steps_per_epoch=3)) == 3
    assert steps_in_epoch(64, FitSettings(1, 32, 1e-3, 0, steps_per_epoch=3)) == 2


def test_gan_batches_stop_after_steps_per_epoch():
    from fashiongen.gan.conditions import Conditions, condition_kind
    from fashiongen.gan.training import batches

    images = ImageSource(random_images(100, (1, 4, 4)), "cpu", preload=0.0)
    conditions = Conditions(condition_kind("none"), torch.empty(100, 0), np.zeros(100, dtype=np.int64), 1)
    every = list(batches(images, 10, torch.Generator().manual_seed(0), conditions))
    capped = list(batches(images, 10, torch.Generator().manual_seed(0), conditions, steps=3))
    assert len(every) == 10 and len(capped) == 3
    assert all(torch.equal(a[0], b[0]) for a, b in zip(every, capped))  # the same draw, cut short


# --- big images: bounded batches, samples made and measured a batch at a time ---------------------------------


def test_batches_of_big_images_are_bounded_in_pixels():
    from fashiongen.data.batches import MAX_BATCH_PIXELS, bounded_batch

    assert bounded_batch(1000, 28) == 1000  # Fashion-MNIST's batches unchanged
    assert bounded_batch(1000, 128) == 64 and 64 * 128 * 128 == MAX_BATCH_PIXELS
    assert bounded_batch(256, 64) == 256 and bounded_batch(10, 4096) == 1


class Blobs(torch.nn.Module):
    """A deterministic 'generator' whose images follow the noise and the condition."""

    def forward(self, z, c):
        shift = c.float().sum(1)[:, None, None, None] if c.numel() else 0
        return torch.tanh(z[:, :3, None, None].expand(-1, 3, 6, 6) + shift)


def test_sample_features_equal_measuring_all_samples_at_once_and_redraw_gives_the_same_rows():
    from fashiongen.gan.sampling import generate_uint8, noise, redraw, sample_features

    z, cond = noise(70, 4, seed=3), torch.arange(70)[:, None] % 3
    everything = generate_uint8(Blobs(), z, 16, "cpu", cond)

    def extract(images):
        flat = images.reshape(len(images), -1).float()
        return flat[:, :5], flat.mean(1, keepdim=True)

    [(features, logits), (again, _)], first = sample_features(Blobs(), z, cond, 16, "cpu", [extract, extract], keep=20)
    expected = extract(everything)
    assert torch.equal(features, expected[0]) and torch.equal(logits, expected[1]) and torch.equal(again, expected[0])
    assert torch.equal(first, everything[:20])
    assert torch.equal(redraw(Blobs(), z, cond, 16, "cpu", [69, 3, 40]), everything[[69, 3, 40]])


def test_a_big_batch_computed_in_parts_has_the_whole_batch_gradient():
    from fashiongen.classifier import backward_in_parts

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))  # no BatchNorm: parts change nothing
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch, target = torch.randn(10, 3, 2, 2), torch.arange(10) % 3
    grads = {}
    for part in (10, 4):  # one pass; parts of 4, 4, 2 (weighted by their share)
        backward_in_parts(model, optimizer, batch, target, part)
        grads[part] = [p.grad.clone() for p in model.parameters()]
    for whole, parts in zip(grads[10], grads[4]):
        torch.testing.assert_close(parts, whole)


def test_outputs_are_written_into_one_allocation_per_output():
    from fashiongen.data.batches import RowsOut

    out = RowsOut(5)
    parts = [(torch.arange(6.0).view(3, 2), torch.arange(3)), (torch.ones(2, 2), torch.tensor([7, 8]))]
    for features, labels in parts:
        out.add(features, labels)
    features, labels = out.result(2)
    assert torch.equal(features, torch.cat([parts[0][0], parts[1][0]])) and labels.tolist() == [0, 1, 2, 7, 8]
    short = RowsOut(4)
    short.add(torch.ones(3, 2))
    with pytest.raises(ValueError, match="3 rows were added, 4 expected"):
        short.result(1)
