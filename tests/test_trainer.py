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


def penalised_trainer(reg_chunk, r1_gamma=1.0, norm="none"):
    """An rpgan trainer with R1 and R2 every step, on a discriminator with ``norm``."""
    torch.manual_seed(0)
    generator, discriminator = Generator(16, 8, 1, 28), Discriminator(8, 1, 28, norm=norm)
    return GANTrainer(
        generator=generator, discriminator=discriminator, loss=make_loss("rpgan"),
        opt_g=make_adam(generator.parameters(), 2e-4, (0.5, 0.999)),
        opt_d=make_adam(discriminator.parameters(), 2e-4, (0.5, 0.999)),
        z_dim=16, rng=torch.Generator().manual_seed(1), r1_gamma=r1_gamma, r2_gamma=r1_gamma, reg_every=1,
        reg_chunk=reg_chunk,
    )


def d_gradients(trainer):
    """D's gradients of the last D update (the G update that follows leaves them: D is frozen then)."""
    return [p.grad.clone() for p in trainer.discriminator.parameters()]


@pytest.mark.parametrize("chunk", [1, 8, 12])
def test_chunked_penalties_give_the_batch_penalty_gradient(chunk):
    fused, chunked, unpenalised = penalised_trainer(None), penalised_trainer(chunk), penalised_trainer(None, r1_gamma=0)
    for trainer in (fused, chunked, unpenalised):
        trainer.step(real_batch(), NO_CONDITION)
    for a, b in zip(d_gradients(chunked), d_gradients(fused)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    # the penalties do contribute (else the comparison above could not fail)
    assert any(not torch.allclose(a, b, rtol=1e-3, atol=1e-6)
               for a, b in zip(d_gradients(unpenalised), d_gradients(fused)))
    # and the penalty passes leave G's step alone: the same generator after the update
    for a, b in zip(chunked.generator.parameters(), fused.generator.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_chunked_penalties_with_batch_norm_train_and_skip_off_penalties():
    """With batch norm the chunks are normalised on their own (other numbers), and R2 alone works too."""
    trainer = penalised_trainer(8, norm="batch")
    trainer.r1_gamma = 0.0
    stats = trainer.step(real_batch(), NO_CONDITION)
    assert torch.isfinite(stats).all()
    assert all(torch.isfinite(g).all() for g in d_gradients(trainer))


@pytest.mark.parametrize(
    "reg_chunk, batch_size, image_size, expected",
    [("auto", 128, 28, None), ("auto", 128, 64, None), ("auto", 128, 128, 32), ("auto", 16, 128, None),
     ("auto", 64, 256, 8), (16, 128, 28, 16), (128, 128, 128, None), (500, 128, 128, None)],
)
def test_reg_chunk_resolves_by_pixels_per_pass(reg_chunk, batch_size, image_size, expected):
    from fashiongen.config import parse_params

    train = parse_params({"train": {"reg_chunk": reg_chunk, "batch_size": batch_size}}).train
    assert train.resolved_reg_chunk(image_size) == expected
