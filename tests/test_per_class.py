"""The per-class view: class histogram, under-produced classes, intra-class FID (fashiongen/analysis/per_class.py)."""

import math

import numpy as np
import pytest
import torch

from fashiongen.analysis.per_class import class_shares, intra_class_fid, per_class_metrics, per_class_table

CLASSES = ["shirt", "shoe", "bag"]


def test_a_generator_that_never_makes_bags_under_produces_bags():
    real = np.array([0] * 40 + [1] * 30 + [2] * 30)
    samples = np.array([0] * 60 + [1] * 40)  # no bags; shirts over-produced
    table = per_class_table(CLASSES, samples, real, real, underproduced_ratio=0.5)
    assert table["sample_share"].tolist() == [0.6, 0.4, 0.0]
    assert table["real_predicted_share"].tolist() == [0.4, 0.3, 0.3]
    assert table["underproduced"].tolist() == [False, False, True]
    assert table["fid"].isna().all()  # unconditional: no intra-class FID
    metrics = per_class_metrics(table)
    assert metrics["underproduced"] == ["bag"] and metrics["underproduced_classes"] == 1
    assert metrics["class_share_distance"] == pytest.approx(0.3)  # ½ (0.2 + 0.1 + 0.3)
    assert "intra_fid_mean" not in metrics


def test_the_ratio_decides_under_production():
    real = np.array([0] * 50 + [1] * 50)
    samples = np.array([0] * 70 + [1] * 30)  # class 1 at 0.6 of its real share
    assert per_class_table(CLASSES[:2], samples, real, real, 0.5)["underproduced"].tolist() == [False, False]
    assert per_class_table(CLASSES[:2], samples, real, real, 0.7)["underproduced"].tolist() == [False, True]


def test_class_shares_count_every_class_even_absent_ones():
    assert class_shares(np.array([2, 2, 0, 2]), 4).tolist() == [0.25, 0.0, 0.75, 0.0]


def test_intra_class_fid_is_zero_for_a_class_reproduced_exactly_and_large_for_a_wrong_one():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(90, 4, generator=generator)
    classes = np.repeat([0, 1, 2], 30)
    fake = real.clone()
    fake[classes == 2] += 5.0  # class 2 is off by a shift of 5 in every feature: FID = 4 × 25 = 100
    values = intra_class_fid(real, classes, fake, classes, num_classes=4)
    assert values[0] == pytest.approx(0.0, abs=1e-3) and values[1] == pytest.approx(0.0, abs=1e-3)
    assert values[2] == pytest.approx(100.0, rel=1e-3)
    assert math.isnan(values[3])  # no images of class 3
    table = per_class_table(CLASSES + ["hat"], classes, classes, classes, 0.5, values)
    assert per_class_metrics(table)["intra_fid_mean"] == pytest.approx(100.0 / 3, rel=1e-3)
