"""Truncation (fashiongen/analysis/truncation.py) and interpolation (analysis/interpolation.py), library and CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

from fashiongen.analysis.interpolation import slerp, walk, walk_inputs
from fashiongen.analysis.truncation import truncate, truncated_noise, truncation_threshold
from fashiongen.cli import main
from fashiongen.errors import ConfigError
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.sampling import generate_uint8, noise
from helpers import make_generator


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("generators")
    for condition in ("none", "label", "encoding", "cluster"):
        make_generator(root / f"{condition}.pt", condition)
    return root


def test_psi_one_is_no_truncation_bit_for_bit():
    assert torch.equal(truncated_noise(50, 16, 3, 1.0), noise(50, 16, 3))


def test_truncated_noise_stays_inside_its_threshold_and_keeps_the_share_psi():
    z = noise(4000, 16, 0)
    for psi in (0.8, 0.6, 0.2):
        t = truncation_threshold(psi)
        assert (truncate(z, psi).abs() <= t + 1e-6).all()
        # the map is monotone: components inside [-t, t] of N(0,1) are the share psi of the mass
        assert (z.abs() <= t).float().mean().item() == pytest.approx(psi, abs=0.01)
    assert truncation_threshold(0.8) == pytest.approx(1.2816, abs=1e-4)


def test_truncation_keeps_each_row_tied_to_its_seed_and_index():
    assert torch.equal(truncated_noise(3, 16, 7, 0.6), truncated_noise(9, 16, 7, 0.6)[:3])


def test_smaller_psi_lowers_the_variance_of_noise_and_samples(checkpoints):
    loaded = load_generator(checkpoints / "none.pt")
    variances = []
    for psi in (1.0, 0.7, 0.3):
        z = truncated_noise(256, loaded.spec.z_dim, 0, psi)
        with torch.no_grad():
            images = loaded.module(z, z[:, :0])  # float output: an untrained generator's pixels vary below one grey level
        variances.append((z.var().item(), images.var(dim=0).mean().item()))
    noise_var, sample_var = zip(*variances)
    assert noise_var[0] > noise_var[1] > noise_var[2]
    assert sample_var[0] > sample_var[1] > sample_var[2]


def test_bad_psi_is_refused():
    with pytest.raises(ConfigError, match=r"outside \(0, 1\]"):
        truncate(torch.zeros(2, 2), 1.5)


@pytest.mark.parametrize("condition", ["none", "label", "cluster"])
def test_generate_with_truncation_for_every_condition_kind(checkpoints, tmp_path, condition, capsys):
    def draw(*extra):
        out = tmp_path / "s.npz"
        assert main(["generate", "--checkpoint", str(checkpoints / f"{condition}.pt"), "--n", "6", "--out", str(out), *extra]) == 0
        return np.load(out)["images"]

    plain, one, half = draw(), draw("--truncation", "1"), draw("--truncation", "0.5")
    np.testing.assert_array_equal(plain, one)
    assert not np.array_equal(plain, half)
    with pytest.raises(SystemExit) as exited:
        draw("--truncation", "0")
    assert exited.value.code == 2 and "must lie in (0, 1]" in capsys.readouterr().err


def test_encoding_generator_takes_truncated_noise(checkpoints):
    """--like needs an encoder file; the truncation is the same noise path for every condition kind."""
    loaded = load_generator(checkpoints / "encoding.pt")
    cond = torch.randn(1, loaded.spec.cond_dim).expand(4, -1)
    plain = generate_uint8(loaded.module, truncated_noise(4, loaded.spec.z_dim, 0, 1.0), 4, "cpu", cond)
    assert torch.equal(plain, generate_uint8(loaded.module, noise(4, loaded.spec.z_dim, 0), 4, "cpu", cond))
    assert not torch.equal(plain, generate_uint8(loaded.module, truncated_noise(4, loaded.spec.z_dim, 0, 0.4), 4, "cpu", cond))


def test_slerp_ends_exactly_at_its_endpoints_and_keeps_the_norm():
    a, b = noise(2, 64, 0)
    path = slerp(a, b, 9)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    norms = path.norm(dim=1)
    assert norms.min() >= 0.98 * min(a.norm(), b.norm())  # on the shell: no sag
    assert ((a + b) / 2).norm() < 0.8 * min(a.norm(), b.norm())  # where a straight line sags to ~0.7


def test_noise_walk_ends_are_the_seeds_samples(checkpoints):
    loaded = load_generator(checkpoints / "none.pt")
    frames = walk(loaded, 8, seed=5)
    ends = generate_uint8(loaded.module, noise(2, loaded.spec.z_dim, 5), 2, "cpu", torch.empty(2, 0))
    assert frames.shape == (8, 1, 28, 28)
    assert (frames[0].int() - ends[0].int()).abs().max() <= 1 and (frames[-1].int() - ends[1].int()).abs().max() <= 1


def test_label_walk_goes_from_one_class_to_another_at_fixed_noise(checkpoints):
    loaded = load_generator(checkpoints / "label.pt")
    frames = walk(loaded, 6, seed=2, label="class 1", to="class 7")
    z = noise(1, loaded.spec.z_dim, 2)
    for frame, cls in ((frames[0], 1), (frames[-1], 7)):
        expected = generate_uint8(loaded.module, z, 1, "cpu", torch.tensor([cls]))[0]
        assert (frame.int() - expected.int()).abs().max() <= 1
    assert not torch.equal(frames[0], frames[-1])


def test_encoding_walk_goes_from_one_encoding_to_another(checkpoints):
    loaded = load_generator(checkpoints / "encoding.pt")
    a, b = torch.randn(2, 1, loaded.spec.cond_dim, generator=torch.Generator().manual_seed(0))
    z, codes = walk_inputs(loaded.spec.z_dim, 5, 0, a, b)
    assert torch.equal(codes[0], a[0]) and torch.equal(codes[-1], b[0]) and torch.equal(z[0], z[-1])
    frames = generate_uint8(loaded.module, z, 5, "cpu", codes)
    assert torch.equal(frames[0], generate_uint8(loaded.module, z[:1], 1, "cpu", a)[0])


def test_interpolate_command_writes_a_strip_and_a_gif(checkpoints, tmp_path):
    checkpoint = str(checkpoints / "label.pt")
    assert main(["interpolate", "--checkpoint", checkpoint, "--n-steps", "8", "--out", str(tmp_path / "walk.png"),
                 "--label", "2", "--to", "5"]) == 0
    assert Image.open(tmp_path / "walk.png").size == (8 * 30 + 2, 30 + 2)
    assert main(["interpolate", "--checkpoint", checkpoint, "--n-steps", "8", "--out", str(tmp_path / "walk.gif"),
                 "--label", "2"]) == 0
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 8 and gif.size == (28, 28)


@pytest.mark.parametrize(("condition", "args", "message"), [
    ("none", ["--label", "1"], "--label needs a generator trained with model.condition: label"),
    ("none", ["--to", "2"], "--to needs a conditional generator"),
    ("label", ["--to", "2"], "--to needs a conditional generator and a start"),
    ("label", ["--label", "1", "--to", "wool hat"], "names no single class"),
    ("none", ["--n-steps", "1"], "a walk needs at least 2 steps"),
])
def test_interpolate_refuses_arguments_that_do_not_fit(checkpoints, tmp_path, capsys, condition, args, message):
    out = tmp_path / "walk.png"
    assert main(["interpolate", "--checkpoint", str(checkpoints / f"{condition}.pt"), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


def test_cluster_generator_walks_its_noise_like_an_unconditional_one(checkpoints):
    loaded = load_generator(checkpoints / "cluster.pt")
    frames = walk(loaded, 8, seed=5)
    ends = generate_uint8(loaded.module, noise(2, loaded.spec.z_dim, 5), 2, "cpu", torch.empty(2, 0))
    assert frames.shape == (8, 1, 28, 28)
    assert (frames[0].int() - ends[0].int()).abs().max() <= 1 and (frames[-1].int() - ends[1].int()).abs().max() <= 1
