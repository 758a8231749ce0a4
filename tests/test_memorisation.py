"""Memorisation: nearest training images, the copy rate and MiFID (fashiongen/analysis/memorisation.py)."""

import json
import math

import numpy as np
import pytest
import torch
from helpers import make_evaluator, make_prepared
from torch import nn

from fashiongen.analysis.memorisation import memorisation_distance, mifid, nearest_neighbours
from fashiongen.config import EvaluateConfig
from fashiongen.data.prepared import load_prepared
from fashiongen.pipeline.evaluate import EvaluatePaths, evaluate
from fashiongen.gan.artifact import GeneratorSpec
from fashiongen.images import to_model_range
from fashiongen.metrics.real_draw import pick

N = 400  # samples and real images: the copy rate of held-out reals is within ~3 sd (0.046) of its reference


class ImageBank(nn.Module):
    """A 'generator' that ignores its noise and returns the bank's images in turn (wrapping around)."""

    def __init__(self, images: np.ndarray):
        super().__init__()
        self.register_buffer("bank", to_model_range(torch.from_numpy(np.array(images))))
        self.next = 0

    def forward(self, z, c=None):
        index = (self.next + torch.arange(len(z))) % len(self.bank)
        self.next = int(index[-1]) + 1
        return self.bank[index]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("memorisation")
    make_prepared(root / "prepared", n_train=600, n_test=1000)
    torch.manual_seed(0)  # the untrained evaluator's weights, whatever ran before
    make_evaluator(root / "evaluator.pt")
    return root


def evaluate_bank(workspace, images, name, monkeypatch):
    """The evaluate stage's metrics for a 'generator' that returns ``images``."""
    from fashiongen.gan import artifact

    bank = ImageBank(images)
    spec = GeneratorSpec(z_dim=4, width=8, channels=1, image_size=28)
    monkeypatch.setattr("fashiongen.pipeline.evaluate.load_generator",
                        lambda path, device: artifact.LoadedGenerator(bank, spec, [str(i) for i in range(10)], {}))
    out = workspace / name
    cfg = EvaluateConfig(num_samples=N, batch_size=64, kid_subset_size=100)
    evaluate(cfg, EvaluatePaths(workspace / "prepared", workspace / "evaluator.pt", workspace / "none.pt",
                                out / "metrics.json", out / "samples.png"), "cpu")
    return json.loads((out / "metrics.json").read_text()), out


def test_a_generator_that_returns_training_images_has_a_copy_rate_of_one(workspace, monkeypatch):
    train = load_prepared(workspace / "prepared").split("train")
    metrics, out = evaluate_bank(workspace, train.images[100:100 + N], "copies", monkeypatch)
    assert metrics["copy_rate"] == 1.0
    assert metrics["copy_rate_floor"] == pytest.approx(0.05, abs=0.011)  # the 5th percentile of real distances
    assert metrics["nn_distance_median"] == pytest.approx(0.0, abs=1e-5)
    assert math.isfinite(metrics["mifid"]) and metrics["mifid"] > 0
    assert (out / "nearest_neighbours.png").stat().st_size > 0


def test_a_generator_that_returns_held_out_real_images_scores_the_real_reference(workspace, monkeypatch):
    data = load_prepared(workspace / "prepared")
    scored = pick(len(data.split("test")), N, np.random.default_rng(0))  # the test images evaluate compares with
    held_out = np.setdiff1d(np.arange(len(data.split("test"))), scored)[:N]
    metrics, _ = evaluate_bank(workspace, data.split("test").images[held_out], "held-out", monkeypatch)
    # two random sets of N held-out images: binomial spread of the share below the reference's 5th percentile
    assert abs(metrics["copy_rate"] - metrics["copy_rate_floor"]) <= 0.045, metrics
    assert metrics["copy_rate"] < 0.2


def test_nearest_neighbours_in_chunks_equal_the_full_distance_matrix():
    generator = torch.Generator().manual_seed(0)
    queries, reference = torch.randn(53, 7, generator=generator), torch.randn(31, 7, generator=generator)
    distances, index = nearest_neighbours(queries, reference, k=3, chunk=8)
    full = torch.cdist(queries, reference)
    expected = full.topk(3, dim=1, largest=False)
    torch.testing.assert_close(distances, expected.values)
    assert torch.equal(index, expected.indices)
    assert torch.all(distances[:, :-1] <= distances[:, 1:])
    with pytest.raises(ValueError, match="k = 40"):
        nearest_neighbours(queries, reference, k=40)


@pytest.mark.parametrize("memorised", [False, True])
def test_mifid_equals_torchmetrics(memorised):
    from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance

    from fashiongen.metrics.scores import Precomputed

    generator = torch.Generator().manual_seed(1)
    train = torch.randn(300, 8, generator=generator).abs()
    # memorised: near copies of training features (cosine distance < 0.1, MiFID divides); else unrelated ones
    fake = train[:200] + 0.01 * torch.randn(200, 8, generator=generator) if memorised else torch.randn(200, 8, generator=generator)
    metric = MemorizationInformedFrechetInceptionDistance(feature=Precomputed(8))
    metric.update(train, real=True)
    metric.update(fake, real=False)
    assert mifid(train, fake) == pytest.approx(float(metric.compute()), rel=1e-4)
    assert (memorisation_distance(train, fake) < 0.1) == memorised


def test_training_features_reuse_the_floors_and_extract_the_rest_in_place():
    from fashiongen.analysis.inspection import Scored, training_features
    from fashiongen.data.batches import ImageSource

    images = np.random.default_rng(0).integers(0, 255, (50, 1, 2, 2), dtype=np.uint8)

    def extract(batch):  # an array, or a view read by index (the split is never materialised)
        rows = torch.from_numpy(batch) if isinstance(batch, np.ndarray) else batch.take(torch.arange(len(batch)))
        return rows.reshape(len(rows), -1).float(), None

    known = np.array([3, 7, 8, 20])
    calls = []
    scored = Scored(module=None, z=None, cond=None, source=None, real=None, reference=None, fake=None,
                    fake_in_evaluator=None, train=(known, extract(images[known])[0]), space=None,
                    evaluator=lambda batch: calls.append(len(batch)) or extract(batch), in_evaluator_space=True,
                    metrics={})
    torch.testing.assert_close(training_features(scored, ImageSource(images)), extract(images)[0])
    assert calls == [46]  # only the images the floor did not measure


def test_an_evaluation_that_fails_half_way_changes_none_of_its_files(workspace, monkeypatch):
    """The analyses' files, metrics.json and samples.png move in together at the end (issue 16 item 7)."""
    import hashlib

    train = load_prepared(workspace / "prepared").split("train")
    _, out = evaluate_bank(workspace, train.images[:N], "half-way", monkeypatch)
    files = lambda: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}  # noqa: E731
    before = files()
    assert {"metrics.json", "samples.png", "per_class.csv", "truncation.csv", "nearest_neighbours.png"} <= set(before)

    def broken(*args, **kwargs):
        raise RuntimeError("failed after the per-class table and the truncation sweep were written")

    monkeypatch.setattr("fashiongen.analysis.inspection.truncation_grid", broken)
    with pytest.raises(RuntimeError, match="failed after"):
        evaluate_bank(workspace, train.images[N : 2 * N], "half-way", monkeypatch)
    assert files() == before  # nothing new, nothing half-written, no staging folder left
