"""`fashiongen` on the command line."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fashiongen.cli import main
from fashiongen.gan.artifact import GeneratorSpec, build_generator, save_generator


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "generator.pt"
    spec = GeneratorSpec(z_dim=8, width=8, channels=1, image_size=28)
    torch.manual_seed(0)
    save_generator(path, build_generator(spec), spec, [f"class {i}" for i in range(10)], {})
    return path


def test_grid_png(checkpoint, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["generate", "--checkpoint", str(checkpoint), "--n", "64", "--out", str(out)]) == 0
    width, height = Image.open(out).size
    assert (width, height) == (8 * 30 + 2, 8 * 30 + 2)  # 8×8 tiles of 28 px + 2 px padding


def test_npz_raw_images_and_seed_repeatability(checkpoint, tmp_path):
    def draw(name, seed):
        out = tmp_path / name
        assert main(["generate", "--checkpoint", str(checkpoint), "--n", "5", "--out", str(out), "--seed", str(seed)]) == 0
        return np.load(out)["images"]

    a, b, c = draw("a.npz", 1), draw("b.npz", 1), draw("c.npz", 2)
    assert a.shape == (5, 1, 28, 28) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unknown_extension_is_refused_before_loading(tmp_path, capsys):
    assert main(["generate", "--checkpoint", "missing.pt", "--out", str(tmp_path / "x.gif")]) == 2
    assert "unknown extension '.gif'" in capsys.readouterr().err


def test_missing_checkpoint_is_one_clear_line(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "does not exist; train a generator first" in err and "Traceback" not in err
    assert not (tmp_path / "g.png").exists()


def test_console_script_help_and_profile(venv_env):
    help_text = subprocess.run(
        [sys.executable, "-m", "fashiongen", "--help"], capture_output=True, text=True, env=venv_env, check=True
    ).stdout
    assert "generate" in help_text and "profile" in help_text
    profile = subprocess.run(
        [sys.executable, "-m", "fashiongen", "profile", "tiny"], capture_output=True, text=True, env=venv_env, check=True
    ).stdout
    assert "-S data.subset=2000" in profile


def test_cli_and_stage_runner_do_not_import_torch(venv_env):
    """`fashiongen --help` and the params check of every stage start without loading torch."""
    probe = "import sys, fashiongen.cli, fashiongen.stage, fashiongen.config; print(sorted(m for m in ('torch', 'dvclive', 'torchmetrics') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=venv_env, check=True)
    assert result.stdout.strip() == "[]"


def test_image_i_of_a_seed_is_the_same_for_every_n(checkpoint, tmp_path):
    def draw(n):
        out = tmp_path / f"n{n}.npz"
        assert main(["generate", "--checkpoint", str(checkpoint), "--n", str(n), "--seed", "7", "--out", str(out)]) == 0
        return np.load(out)["images"]

    reference = draw(64)
    assert len({reference[i].tobytes() for i in range(64)}) == 64  # distinct images, so equality below means something
    for n in (1, 10, 17):
        np.testing.assert_array_equal(draw(n), reference[:n])


@pytest.mark.parametrize("seed", [str(2**64), "-1", str(-(2**70)), "1.5", "seven"])
def test_a_seed_outside_0_to_2_64_is_an_argparse_error(checkpoint, tmp_path, capsys, seed):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--checkpoint", str(checkpoint), "--seed", seed, "--out", str(tmp_path / "g.png")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "error: argument --seed: " in err and ("2**64-1" in err or "expected a whole number" in err)
    assert not (tmp_path / "g.png").exists()


def test_the_largest_seed_works(checkpoint, tmp_path):
    assert main(["generate", "--checkpoint", str(checkpoint), "--seed", str(2**64 - 1), "--n", "2",
                 "--out", str(tmp_path / "g.npz")]) == 0


@pytest.mark.parametrize("out, n, nrow, side", [
    ("g.webp", 547, 547, "16412×32 px; WEBP holds at most 16383"),  # 547 × 30 + 2 = 16412
    ("g.jpg", 2184, 2184, "65522×32 px; JPEG holds at most 65500"),
    ("g.png", 2185, 2185, "65552×32 px; PNG holds at most 65535"),
    ("g.webp", 300_000, None, "16412×16472 px; WEBP holds at most 16383"),  # ⌊√n⌋ = 547 per row, 549 rows
    ("g.png", 2185, 1, "32×65552 px; PNG holds at most 65535"),  # one column
])
def test_a_grid_beyond_its_format_is_refused_before_sampling(checkpoint, tmp_path, capsys, monkeypatch, out, n, nrow, side):
    import fashiongen.gan.sampling

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before refusing")

    monkeypatch.setattr(fashiongen.gan.sampling, "sample_uint8", no_sampling)
    (tmp_path / out).write_bytes(b"previous grid")
    argv = ["generate", "--checkpoint", str(checkpoint), "--n", str(n), "--out", str(tmp_path / out)]
    assert main(argv + (["--nrow", str(nrow)] if nrow else [])) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and side in err[0] and "--nrow" in err[0]
    assert (tmp_path / out).read_bytes() == b"previous grid"


def test_the_largest_grid_of_a_format_is_written(checkpoint, tmp_path):
    from PIL import Image

    out = tmp_path / "wide.webp"
    assert main(["generate", "--checkpoint", str(checkpoint), "--n", "546", "--nrow", "546", "--out", str(out)]) == 0
    assert Image.open(out).size == (546 * 30 + 2, 32)  # 16382 px: one under WebP's limit


def test_more_images_than_memory_is_refused_before_sampling(checkpoint, tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(checkpoint), "--n", str(10**13), "--out", str(tmp_path / "g.npz")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "GiB of memory, more than the" in err[0] and "draw fewer images (--n)" in err[0]


@pytest.mark.parametrize("make_out, message", [
    (lambda root: root / "folder.png", "is a folder"),
    (lambda root: root / "afile" / "g.png", "afile is a file, not a folder"),
    (lambda root: root / ("x" * 300 + ".png"), "File name too long"),
])
def test_an_out_that_cannot_be_written_is_refused_before_loading(tmp_path, capsys, make_out, message):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "afile").write_text("")
    assert main(["generate", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(make_out(tmp_path))]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
