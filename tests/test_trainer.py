"""The training step: its speed-ups must not change what it computes."""

import copy

import pytest
import torch

from fashiongen.device import autocast_dtype
from fashiongen.gan.losses import make_loss
from fashiongen.gan.trainer import GANTrainer, make_adam
from fashiongen.models.dcgan import Discriminator, Generator


def make_trainer(**options):
    torch.manual_seed(0)
    generator, discriminator = Generator(16, 8, 1, 28), Discriminator(8, 1, 28)
    return GANTrainer(
        generator=generator,
        discriminator=discriminator,
        loss=make_loss("bce"),
        opt_g=make_adam(generator.parameters(), 2e-4, (0.5, 0.999)),
        opt_d=make_adam(discriminator.parameters(), 2e-4, (0.5, 0.999)),
        z_dim=16,
        rng=torch.Generator().manual_seed(1),
        **options,
    )


def real_batch():
    return torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1


NO_CONDITION = torch.empty(32, 0)  # an unconditional model's conditions: one empty row per image


def plain_step(generator, discriminator, opt_g, opt_d, z, real, loss):
    """The update written the textbook way: no frozen discriminator, no fusion."""
    fake = generator(z)
    d_loss = loss.d_loss(discriminator(real), discriminator(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = loss.g_loss(discriminator(fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()


def test_step_computes_the_textbook_update():
    trainer = make_trainer()
    generator, discriminator = copy.deepcopy(trainer.generator), copy.deepcopy(trainer.discriminator)
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999), foreach=False)
    noise_rng = torch.Generator().manual_seed(1)  # the trainer draws its noise from an identical generator
    for _ in range(3):
        trainer.step(real_batch(), NO_CONDITION)
        plain_step(generator, discriminator, opt_g, opt_d, torch.randn(32, 16, generator=noise_rng), real_batch(), trainer.loss)
    for mine, textbook in ((trainer.generator, generator), (trainer.discriminator, discriminator)):
        for (name, a), b in zip(mine.state_dict().items(), textbook.state_dict().values()):
            torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-6, msg=name)
    assert all(p.requires_grad for p in trainer.discriminator.parameters())  # unfrozen again


def test_bf16_autocast_path_runs_on_cpu():
    trainer = make_trainer(amp_dtype=torch.bfloat16)
    before = [p.clone() for p in trainer.generator.parameters()]
    stats = trainer.step(real_batch(), NO_CONDITION)
    assert stats.dtype == torch.float32 and torch.isfinite(stats).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters()))


def test_compiled_step_matches_eager():
    eager, compiled = make_trainer(), make_trainer(compile=True)
    for _ in range(2):
        torch.testing.assert_close(compiled.step(real_batch(), NO_CONDITION), eager.step(real_batch(), NO_CONDITION), rtol=1e-3, atol=1e-4)
    assert set(compiled.state_dict()["generator"]) == set(eager.state_dict()["generator"])  # no _orig_mod. prefixes


@pytest.mark.parametrize(
    "device, amp, cpu_bf16, expected",
    [
        ("cuda", True, False, torch.bfloat16),
        ("cuda", False, True, None),  # cpu_bf16 is about CPUs only
        ("cpu", True, False, None),  # train.amp is about GPUs only
        ("cpu", False, True, torch.bfloat16),
    ],
)
def test_autocast_dtype_follows_the_option_of_the_device(monkeypatch, device, amp, cpu_bf16, expected):
    monkeypatch.setattr("fashiongen.device.cpu_has_native_bf16", lambda: True)
    assert autocast_dtype(torch.device(device), amp=amp, cpu_bf16=cpu_bf16) == expected
