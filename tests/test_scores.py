"""Scores on features with known answers."""

import pytest
import torch

from fashiongen.metrics.scores import frechet_distance, inception_score, kernel_distance, precision_recall


def gaussian(n, dim, shift=0.0, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


def test_fid_is_zero_for_identical_sets():
    features = gaussian(500, 8)
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-3)


def test_fid_of_a_mean_shift_is_the_squared_shift():
    """Same covariance: FID = ||mu1 - mu2||^2 exactly."""
    real = gaussian(2000, 4, seed=1).double()
    fake = real + torch.tensor([3.0, 0.0, 0.0, 4.0], dtype=torch.float64)
    assert frechet_distance(real, fake) == pytest.approx(25.0, rel=1e-4)


def test_kid_separates_distributions_and_is_repeatable():
    real, same, other = gaussian(600, 8, seed=1), gaussian(600, 8, seed=2), gaussian(600, 8, 1.0, seed=3)
    near, _ = kernel_distance(real, same, subsets=20, subset_size=200, seed=0)
    far, _ = kernel_distance(real, other, subsets=20, subset_size=200, seed=0)
    assert abs(near) < 0.05 < far
    assert kernel_distance(real, other, 20, 200, seed=0) == kernel_distance(real, other, 20, 200, seed=0)


def test_kid_subset_size_is_capped_at_the_sample_count():
    mean, _ = kernel_distance(gaussian(50, 4), gaussian(50, 4, 2.0), subsets=5, subset_size=1000, seed=0)
    assert mean > 0


@pytest.mark.filterwarnings("ignore:std\\(\\)")  # one split has no spread
def test_inception_score_bounds():
    uniform = torch.zeros(1000, 10)
    assert inception_score(uniform, splits=10, seed=0)[0] == pytest.approx(1.0)
    confident_and_diverse = torch.eye(10).repeat(100, 1) * 50
    assert inception_score(confident_and_diverse, splits=1, seed=0)[0] == pytest.approx(10.0, rel=1e-3)
    collapsed = torch.zeros(1000, 10)
    collapsed[:, 3] = 50
    assert inception_score(collapsed, splits=10, seed=0)[0] == pytest.approx(1.0, abs=1e-3)


def test_precision_and_recall():
    real = gaussian(800, 4, seed=1)
    assert precision_recall(real, gaussian(800, 4, seed=2), k=3) > (0.8, 0.8)
    far = gaussian(800, 4, 100.0, seed=2)
    assert precision_recall(real, far, k=3) == (0.0, 0.0)
    # a collapsed generator: precise (on the data) but with no recall
    collapsed = real[:1].repeat(800, 1) + 1e-3 * gaussian(800, 4, seed=5)
    precision, recall = precision_recall(real, collapsed, k=3)
    assert precision == 1.0 and recall < 0.05


def test_precision_recall_with_precomputed_real_radii_is_the_same():
    import torch

    from fashiongen.metrics.scores import knn_radii, precision_recall

    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 5, generator=generator), torch.randn(200, 5, generator=generator) + 0.5
    assert precision_recall(real, fake, 3, knn_radii(real, 3)) == precision_recall(real, fake, 3)


def test_every_set_metric_of_the_table_is_measured_by_its_declared_function():
    """The metric table declares how each metric is measured; measure_set runs exactly the set metrics."""
    from fashiongen.config import EvaluateConfig
    from fashiongen.metrics import scores
    from fashiongen.metrics.table import METRICS

    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(60, 8, generator=generator), torch.randn(80, 8, generator=generator) + 0.5
    logits = torch.randn(80, 5, generator=generator)
    cfg = EvaluateConfig(kid_subsets=5, kid_subset_size=20, is_splits=2)
    measured = scores.measure_set(real, fake, logits, cfg)
    for metric in METRICS:
        if metric.measured_by == "set":
            assert callable(getattr(scores, metric.score)), metric.key
            assert metric.key in getattr(scores, metric.score)(real, fake, logits, cfg), metric.key
            assert metric.key in measured
        else:
            assert metric.score is None and metric.key not in measured, metric.key
    assert set(measured) == {"fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall"}
    assert measured["fid"] == scores.frechet_distance(real, fake)
    assert (measured["precision"], measured["recall"]) == scores.precision_recall(real, fake[:60], cfg.pr_neighbours)
