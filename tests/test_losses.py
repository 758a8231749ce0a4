"""The objectives: known values at the points where they are easy to compute."""

import math

import pytest
import torch

from fashiongen.gan.losses import LOSSES, make_loss


def test_bce_matches_binary_cross_entropy_with_logits():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    loss = make_loss("bce")
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected_d = bce(real, torch.ones(2)) + bce(fake, torch.zeros(2))
    assert loss.d_loss(real, fake).item() == pytest.approx(expected_d.item())
    assert loss.g_loss(fake).item() == pytest.approx(bce(fake, torch.ones(2)).item())
    assert loss.score(torch.tensor([0.0])).item() == 0.5


def test_bce_is_finite_for_huge_logits():
    loss = make_loss("bce")
    huge = torch.tensor([1e4, -1e4])
    assert torch.isfinite(loss.d_loss(huge, -huge)) and torch.isfinite(loss.g_loss(huge))


def test_lsgan_values():
    loss = make_loss("lsgan")
    assert loss.d_loss(torch.ones(3), torch.zeros(3)).item() == 0.0
    assert loss.d_loss(torch.zeros(3), torch.ones(3)).item() == pytest.approx(1.0)
    assert loss.g_loss(torch.zeros(3)).item() == pytest.approx(0.5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_discriminator_loss_prefers_telling_real_from_fake(name):
    loss = make_loss(name)
    good = loss.d_loss(torch.full((8,), 1.0), torch.full((8,), -1.0 if name == "bce" else 0.0))
    bad = loss.d_loss(torch.full((8,), -1.0), torch.full((8,), 1.0))
    assert good < bad and math.isfinite(good.item())


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        make_loss("nope")
