"""Seeded noise: row i of a seed depends on (seed, i) only, whatever the number of rows drawn."""

import pytest
import torch

from fashiongen.gan.sampling import noise


@pytest.mark.parametrize("z_dim", [1, 3, 100, 128])
def test_row_i_is_the_same_for_every_n(z_dim):
    reference = noise(64, z_dim, seed=7)
    for n in (1, 2, 9, 10, 17, 63):
        assert torch.equal(noise(n, z_dim, seed=7), reference[:n]), n
    assert torch.equal(noise(100, z_dim, seed=7)[:64], reference)


def test_shape_dtype_and_standard_normal_statistics():
    z = noise(10_000, 64, seed=0)
    assert z.shape == (10_000, 64) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert abs(z.mean().item()) < 0.005 and abs(z.std().item() - 1) < 0.005
    assert 0.3045 < (z > 0.5).float().mean().item() < 0.3126  # P(Z > 0.5) = 0.3085 ± 7 sd of 640k draws
    assert torch.isfinite(z).all()
    # rows and columns are not copies of each other
    assert z[:, 0].std() > 0.9 and z[0].std() > 0.5 and not torch.equal(z[0], z[1])


def test_same_seed_same_noise_other_seed_other_noise_every_bit_counts():
    assert torch.equal(noise(5, 8, 3), noise(5, 8, 3))
    assert not torch.equal(noise(5, 8, 3), noise(5, 8, 4))
    # torch's CPU generator keeps only 32 bits of a seed; these must differ
    assert not torch.equal(noise(5, 8, 3), noise(5, 8, 3 + 2**32))
    assert noise(2, 8, 2**64 - 1).shape == (2, 8)


def test_zero_rows_and_bad_arguments():
    assert noise(0, 8, 1).shape == (0, 8)
    with pytest.raises(ValueError):
        noise(-1, 8, 1)
    with pytest.raises(ValueError):
        noise(2, 8, -1)
