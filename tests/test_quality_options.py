"""Every loss, architecture and training aid trains without NaN; the aids do what they say."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from fashiongen.config import parse_params
from fashiongen.gan.augment import AUGMENTS, make_augment
from fashiongen.gan.ema import GeneratorEMA, ema_decay, recompute_batchnorm
from fashiongen.gan.losses import gradient_penalty, make_loss
from fashiongen.pipeline.train import train_gan
from helpers import make_prepared, paths


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_prepared(tmp_path / "prepared", n_train=256, n_test=128)
    from fashiongen.metrics.features import save_evaluator
    from fashiongen.models.evaluator import Evaluator

    config = {"channels": 1, "num_classes": 10, "image_size": 28, "width": 8, "feature_dim": 16}
    save_evaluator(tmp_path / "evaluator.pt", Evaluator(**config), config, [str(i) for i in range(10)], 0.5)
    return tmp_path


@pytest.mark.parametrize(
    "model, train",
    [
        ({"loss": "bce"}, {"ema_kimg": 5.0}),
        ({"loss": "rpgan", "r1_gamma": 1.0, "reg_every": 2}, {"schedule": "cosine", "lr_end_ratio": 0.25,
                                                            "gamma_end_ratio": 0.1, "beta1": 0.0, "ema_kimg": 2.0}),
        ({"loss": "bce", "r1_gamma": 0.5, "r2_gamma": 0.0, "condition": "label", "g_cond": "modulation"},
         {"schedule": "linear", "lr_end_ratio": 0.5}),
        ({"arch": "upsample", "loss": "rpgan", "r1_gamma": 0.1, "condition": "label", "g_cond": "modulation"}, {}),
        ({"loss": "lsgan"}, {}),
        ({"loss": "hinge", "spectral_norm": True}, {}),
        ({"loss": "wgan-gp"}, {"d_steps": 2}),
        ({"arch": "upsample", "loss": "bce"}, {}),
        ({"arch": "upsample", "loss": "hinge", "spectral_norm": True, "d_dropout": 0.2}, {}),
        ({"loss": "bce", "d_dropout": 0.3}, {"augment": ["color", "translation", "cutout"], "ema_kimg": 0.0}),
        ({"arch": "resnet", "loss": "rpgan", "r1_gamma": 0.1, "reg_every": 2, "condition": "label",
          "g_cond": "modulation"}, {"ema_kimg": 2.0}),
    ],
    ids=["bce-ema", "rpgan-r1r2-lazy-cosine-ema", "bce-r1-label-modulation-linear", "upsample-rpgan-label-modulation",
         "lsgan", "hinge-sn", "wgan-gp", "upsample-bce", "upsample-hinge-sn", "dropout-diffaugment-noema",
         "resnet-rpgan-r1-label-modulation"],
)
def test_trains_without_nan(workdir, model, train):
    params = parse_params(
        {
            "model": {"g_width": 8, "d_width": 8, "z_dim": 16, **model},
            "train": {"epochs": 2, "batch_size": 32, "log_every": 4, "eval_samples": 100, "device": "cpu", **train},
            "data": {"subset": 100},
            "evaluate": {"num_samples": 100},
        }
    )
    run = paths(workdir)
    final = train_gan(params, run)
    assert all(math.isfinite(final[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake", "fid"))
    from fashiongen.gan.artifact import load_generator

    from fashiongen.export import example_condition

    for path in (run.generator, run.best_generator):
        loaded = load_generator(path)
        cond = example_condition(loaded.spec, 4, seed=0)
        images = loaded.module(torch.randn(4, loaded.spec.z_dim), cond)
        assert images.shape == (4, 1, 28, 28) and torch.isfinite(images).all()


def test_best_generator_is_the_epoch_with_the_lowest_fid(workdir):
    params = parse_params({"model": {"g_width": 8, "d_width": 8, "z_dim": 16},
                           "train": {"epochs": 3, "batch_size": 32, "eval_samples": 100, "device": "cpu"},
                           "data": {"subset": 100}, "evaluate": {"num_samples": 100}})
    run = paths(workdir)
    train_gan(params, run)
    fids = [float(row.split("\t")[1]) for row in (run.results / "plots/metrics/fid.tsv").read_text().splitlines()[1:]]
    best = torch.load(run.best_generator, weights_only=True)["info"]
    assert best["fid"] == pytest.approx(min(fids)) and best["epoch"] == 1 + int(np.argmin(fids))


@pytest.mark.parametrize("select", ["last", "best"])
def test_train_select_names_the_published_generator(workdir, select):
    params = parse_params({"model": {"g_width": 8, "d_width": 8, "z_dim": 16},
                           "train": {"epochs": 3, "batch_size": 32, "eval_samples": 100, "device": "cpu",
                                     "select": select},
                           "data": {"subset": 100}, "evaluate": {"num_samples": 100}})
    run = paths(workdir)
    last = train_gan(params, run)
    published = torch.load(run.generator, weights_only=True)
    best = torch.load(run.best_generator, weights_only=True)
    expected = best["info"] if select == "best" else {"epoch": 3, "fid": last["fid"]}
    assert {k: published["info"][k] for k in ("epoch", "fid")} == {k: expected[k] for k in ("epoch", "fid")}
    assert published["info"]["select"] == select
    same = all(torch.equal(published["state_dict"][k], best["state_dict"][k]) for k in best["state_dict"])
    assert same == (select == "best" or best["info"]["epoch"] == 3)


def test_hinge_and_wasserstein_values():
    hinge, wgan = make_loss("hinge"), make_loss("wgan-gp")
    assert hinge.d_loss(torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])).item() == pytest.approx(0.25 + 0.5)
    assert hinge.g_loss(torch.tensor([1.0, 3.0])).item() == -2.0
    assert wgan.d_loss(torch.tensor([3.0]), torch.tensor([1.0])).item() == -2.0
    assert wgan.gradient_penalty and not hinge.gradient_penalty


@pytest.mark.parametrize(("scale", "expected"), [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic(scale, expected):
    """D(x) = w·x has gradient w everywhere: the penalty is (||w|| - 1)^2."""
    w = torch.randn(1 * 4 * 4)
    w = scale * w / w.norm()
    critic = lambda x: x.flatten(1) @ w  # noqa: E731
    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    assert gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0)).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_augmentations_keep_shape_pass_gradients_and_repeat(name):
    x = torch.rand(6, 1, 28, 28, requires_grad=True)
    out = AUGMENTS[name](x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = AUGMENTS[name](x.detach(), torch.Generator().manual_seed(3))
    assert torch.equal(out.detach(), again)


def test_translation_moves_whole_pixels_and_cutout_blanks_a_square():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    moved = make_augment(["translation"])(x, torch.Generator().manual_seed(1))
    assert moved.sum() == 1.0  # a single pixel moved by whole pixels stays a single pixel
    ones = torch.ones(32, 1, 16, 16)
    cut = make_augment(["cutout"])(ones, torch.Generator().manual_seed(1))
    assert ((cut == 0).flatten(1).sum(1) == 64).all()  # one 8×8 square per image


def test_ema_half_life_in_images_with_ramp_up():
    live = nn.Linear(2, 1, bias=False)
    ema = GeneratorEMA(live, half_life_kimg=1.0, images_per_update=100, rampup=0.5)
    with torch.no_grad():
        live.weight.fill_(1.0)
    ema.update()  # no images seen yet: the ramped half-life is 0, the average takes the weights
    torch.testing.assert_close(ema.module.weight, torch.ones(1, 2))
    with torch.no_grad():
        live.weight.fill_(3.0)
    ema.update()  # 100 images seen: half-life min(1000, 0.5·100) = 50 images, β = 0.5^(100/50) = 0.25
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), 0.25 * 1 + 0.75 * 3))
    assert not ema.module.weight.requires_grad


def test_ema_decay_reaches_the_half_life_after_the_ramp_up():
    # 1,000 updates of 128 images after 1,000 kimg: the ramp-up no longer binds, β^(half-life/128) = 1/2
    decay = ema_decay(128, 10_000.0, 1_000_000, 0.05)
    assert decay ** (10_000 / 128) == pytest.approx(0.5)
    assert ema_decay(128, 10_000.0, 0, None) == pytest.approx(0.5 ** (128 / 10_000))  # no ramp-up


def test_standing_statistics_replace_stale_batchnorm_buffers():
    class Generator(nn.Sequential):
        def forward(self, z, c):  # G(z, c), here unconditional
            assert c.shape == (len(z), 0)
            return super().forward(z)

    generator = Generator(nn.Linear(4, 8), nn.BatchNorm1d(8))
    generator[1].running_mean.fill_(100.0)  # stale, as after averaging the weights
    recompute_batchnorm(generator, z_dim=4, batch_size=256, seed=0, device="cpu",
                        conditions=lambda n, rng: torch.empty(n, 0))
    assert generator[1].running_mean.abs().max() < 1.0
    assert generator[1].momentum == 0.1 and not generator.training
