"""model.arch resnet: the R3GAN-style residual generator and discriminator."""

import math

import pytest
import torch

from fashiongen.config import ConfigError, parse_params
from fashiongen.models.dcgan import Discriminator, Generator
from fashiongen.models.factory import build_discriminator, build_generator
from fashiongen.models.resnet import (
    BLOCKS, ResidualBlock, ResNetDiscriminator, ResNetGenerator, branch_layers, stage_widths_for,
)


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("size", "channels", "block"), [
    (28, 1, "grouped"), (28, 1, "depthwise"), (28, 1, "basic"),
    (32, 3, "grouped"), (64, 3, "grouped"), (128, 3, "depthwise"),
])
def test_shapes_and_range_for_every_size(size, channels, block):
    torch.manual_seed(0)
    options = dict(block=block, group_width=4)
    generator = ResNetGenerator(16, 8, channels, size, **options)
    discriminator = ResNetDiscriminator(8, channels, size, **options)
    images = generator(torch.randn(3, 16))
    assert images.shape == (3, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh
    assert discriminator(images).shape == (3,)
    base = 7 if size == 28 else 4
    assert discriminator.features(images).shape == (3, discriminator.feature_channels * base * base)


def test_stage_widths_derived_and_given():
    assert stage_widths_for(28, 32, None) == [64, 32, 8]  # DCGAN's 2w at 7 px, w at 14 px; w/4 at 28 px
    assert stage_widths_for(64, 32, None) == [256, 128, 64, 32, 8]
    generator = ResNetGenerator(16, 8, 1, 28, stage_widths=[48, 32, 16])
    assert generator.basis.linear.out_features == 48 * 7 * 7
    assert ResNetDiscriminator(8, 1, 28, stage_widths=[48, 32, 16]).feature_channels == 48
    with pytest.raises(ValueError, match="has 2 entries but 28 px images have 3 stages"):
        ResNetGenerator(16, 8, 1, 28, stage_widths=[32, 16])


def test_an_untrained_block_is_the_identity_and_its_branch_is_fixup_scaled():
    torch.manual_seed(0)
    blocks_total, channels = 16, 256
    block = ResidualBlock(branch_layers("grouped", channels, 16), blocks_total ** (-1 / 4))  # m = 3 layers
    x = torch.randn(2, channels, 7, 7)
    assert torch.equal(block(x), x)
    assert torch.count_nonzero(block.branch[-1].weight) == 0
    first = block.branch[0].weight  # 1×1, fan-in = channels, followed by LeakyReLU 0.2
    expected = math.sqrt(2 / 1.04) / math.sqrt(channels) * blocks_total ** (-1 / 4)
    assert first.std().item() == pytest.approx(expected, rel=0.05)
    # a basic block has m = 2 layers: scale L^(-1/2)
    basic = ResidualBlock(branch_layers("basic", 64, 16), blocks_total ** (-1 / 2))
    assert basic.branch[0].weight.std().item() == pytest.approx(
        math.sqrt(2 / 1.04) / math.sqrt(64 * 9) * blocks_total ** (-1 / 2), rel=0.05)


def test_branch_shapes():
    assert [layer[3] for layer in branch_layers("grouped", 32, 16)] == [1, 4, 1]  # 64 channels / 16 per group
    assert [layer[3] for layer in branch_layers("depthwise", 32, 16)] == [1, 64, 1]
    assert [layer[2] for layer in branch_layers("basic", 32, 16)] == [3, 3]
    with pytest.raises(ValueError, match="not a multiple of model.resnet_group_width=24"):
        branch_layers("grouped", 32, 24)
    assert set(BLOCKS) == {"grouped", "depthwise", "basic"}


def test_discriminator_refuses_normalisation_and_dropout():
    with pytest.raises(ValueError, match="no normalisation layers"):
        ResNetDiscriminator(8, 1, 28, norm="batch")
    with pytest.raises(ValueError, match="no dropout"):
        ResNetDiscriminator(8, 1, 28, dropout=0.3)


def test_label_conditional_and_modulated_variants():
    torch.manual_seed(0)
    options = dict(block="grouped", group_width=4)
    plain = build_generator("resnet", 16, 8, 1, 28, "label", num_classes=10, cond_dim=6, arch_options=options)
    modulated = build_generator("resnet", 16, 8, 1, 28, "label", num_classes=10, cond_dim=6, modulation=True,
                                arch_options=options)
    residual = [m for m in modulated.base.body if isinstance(m, ResidualBlock)]
    assert len(residual) == 3 and all(block.modulation is not None for block in residual)
    # zero-initialised modulation: the untrained modulated generator computes what the plain one does
    missing = modulated.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".modulation." in key for key in missing)
    z, labels = torch.randn(4, 16), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(modulated(z, labels), plain(z, labels))
    # a trained modulation (in a block whose branch has left its zero start) makes the class change the images
    torch.nn.init.normal_(residual[0].modulation.affine.weight)
    torch.nn.init.normal_(residual[0].branch[-1].weight, 0, 0.1)
    images = modulated(z[:1].expand(2, 16), torch.tensor([0, 5]))
    assert images.shape == (2, 1, 28, 28) and not torch.allclose(images[0], images[1])
    discriminator = build_discriminator("resnet", 8, 1, 28, "none", False, None, "label", num_classes=10, cond_dim=6,
                                        arch_options=options)
    assert discriminator(images, torch.tensor([0, 5])).shape == (2,)


def test_modulation_needs_a_condition():
    with pytest.raises(ValueError, match="modulation .* needs a condition"):
        ResNetGenerator(16, 8, 1, 28, modulation=True, group_width=4)


def test_r1_penalty_is_twice_differentiable_under_bf16_and_channels_last():
    """R1 (Mescheder et al. 2018): grad of D's output w.r.t. its input, with create_graph, then backward."""
    torch.manual_seed(0)
    discriminator = ResNetDiscriminator(8, 1, 28, group_width=4).to(memory_format=torch.channels_last)
    for block in discriminator.features.body:  # leave fix-up's zero start, so the branches carry gradient
        if isinstance(block, ResidualBlock):
            torch.nn.init.normal_(block.branch[-1].weight, 0, 0.1)
    for dtype in (torch.float32, torch.bfloat16):
        discriminator.zero_grad()
        x = (torch.rand(4, 1, 28, 28) * 2 - 1).to(memory_format=torch.channels_last).requires_grad_()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            logits = discriminator(x).float()
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        penalty = grad.square().sum(dim=(1, 2, 3)).mean()
        penalty.backward()
        # every weight gets a finite gradient (biases after the last activation cannot move the input gradient)
        weights = [p for name, p in discriminator.named_parameters() if name.endswith("weight")]
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in weights)
        branch_grad = discriminator.features.body[0].branch[0].weight.grad
        assert branch_grad.abs().sum() > 0, dtype


def test_parameter_counts_match_dcgan_at_the_same_widths():
    """G + D of resnet 32/32 (default: depthwise, 64/32/8) is 0.97× DCGAN 32/32's (383,616): 342,217 + 28,681."""
    dcgan = count(Generator(100, 32, 1, 28)) + count(Discriminator(32, 1, 28))
    generator, discriminator = ResNetGenerator(100, 32, 1, 28), ResNetDiscriminator(32, 1, 28)
    assert dcgan == 383_616
    assert (count(generator), count(discriminator)) == (342_217, 28_681)
    assert abs(count(generator) + count(discriminator) - dcgan) / dcgan < 0.05


def test_saved_generator_reloads_and_samples_the_same_images(tmp_path):
    from fashiongen.gan.artifact import GeneratorSpec, build_generator as build_from_spec, load_generator, save_generator

    options = {"stage_widths": [24, 16, 8], "block": "depthwise", "group_width": 16, "blocks_per_stage": 2}
    spec = GeneratorSpec(z_dim=16, width=8, channels=1, image_size=28, arch="resnet", arch_options=options)
    torch.manual_seed(0)
    generator = build_from_spec(spec).eval()
    for p in generator.parameters():  # trained-like weights: no zero branch left
        torch.nn.init.normal_(p, 0, 0.05)
    save_generator(tmp_path / "g.pt", generator, spec, [f"class {i}" for i in range(10)], {})
    loaded = load_generator(tmp_path / "g.pt")
    assert loaded.spec == spec
    assert "arch_options" not in GeneratorSpec(z_dim=16, width=8, channels=1, image_size=28).to_dict()  # old readers
    z = torch.randn(4, 16)
    empty = torch.empty(4, 0)
    torch.testing.assert_close(loaded.module(z, empty), generator(z, empty), rtol=0, atol=0)


TINY = {
    "model": {"arch": "resnet", "z_dim": 16, "g_width": 8, "d_width": 8},
    "train": {"batch_size": 16},
}


def test_config_wires_the_resnet_knobs():
    params = parse_params(TINY)
    assert params.model.resolved_d_norm() == "none"
    assert parse_params({"model": {**TINY["model"], "loss": "wgan-gp"}}).model.resolved_d_norm() == "none"
    # the group width shapes only the grouped block, and only there is it recorded (PARAM_USES: unused elsewhere)
    assert params.model.arch_options() == {"stage_widths": None, "block": "depthwise", "blocks_per_stage": 1}
    grouped = parse_params({"model": {**TINY["model"], "resnet_block": "grouped", "resnet_group_width": 4}})
    assert grouped.model.arch_options() == {"stage_widths": None, "block": "grouped", "group_width": 4,
                                            "blocks_per_stage": 1}
    assert parse_params({}).model.arch_options() == {}


@pytest.mark.parametrize(("model", "message"), [
    ({"d_norm": "batch"}, "no normalisation layers"),
    ({"d_dropout": 0.3}, "has no dropout"),
    ({"spectral_norm": True}, "spectral normalisation turns into NaN; set model.spectral_norm: false"),
    ({"resnet_block": "grouped", "resnet_group_width": 8}, r"resnet_group_width = 8 does not divide .* stages of \[2\] ch"),
    ({"resnet_block": "grouped", "stage_widths": [32, 16, 12]}, r"stages of \[12\] channels"),
    ({"arch": "dcgan", "stage_widths": [64, 32, 16]}, "model.stage_widths is for model.arch resnet"),
    ({"resnet_block": "bottleneck"}, "resnet_block"),
])
def test_bad_resnet_params_are_refused_before_training(model, message):
    with pytest.raises(ConfigError, match=message):
        parse_params({"model": {**TINY["model"], **model}})


def test_stage_widths_that_do_not_fit_the_image_size_stop_training_before_it_starts():
    from fashiongen.errors import CheckpointError
    from fashiongen.gan.training import build_trainer

    params = parse_params({**TINY, "model": {**TINY["model"], "stage_widths": [64, 32]}})
    with pytest.raises(CheckpointError, match="has 2 entries but 28 px images have 3 stages .*: give 3 channel counts"):
        build_trainer(params, channels=1, image_size=28, device=torch.device("cpu"))


def test_a_few_training_steps_through_the_trainer_stay_finite():
    from fashiongen.gan.training import build_trainer

    params = parse_params({**TINY, "model": {**TINY["model"], "stage_widths": [16, 8, 8], "condition": "none"}})
    spec, trainer = build_trainer(params, channels=1, image_size=28, device=torch.device("cpu"))
    assert spec.arch_options["stage_widths"] == [16, 8, 8]
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    real = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for _ in range(3):
        stats = trainer.step(real, torch.empty(16, 0))
        assert torch.isfinite(stats).all()
    assert all(torch.isfinite(p).all() for p in trainer.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters()))


def test_a_modulated_resnet_generator_exports_to_onnx_with_pytorchs_images(tmp_path):
    import onnxruntime

    from fashiongen.export import export_generator
    from fashiongen.gan.artifact import GeneratorSpec, LoadedGenerator, build_generator as build_from_spec

    spec = GeneratorSpec(z_dim=16, width=8, channels=1, image_size=28, arch="resnet", condition="label",
                         num_classes=10, cond_dim=6, modulation=True, arch_options={"stage_widths": [16, 8, 4]})
    torch.manual_seed(0)
    generator = build_from_spec(spec).eval()
    for p in generator.parameters():
        torch.nn.init.normal_(p, 0, 0.1)
    out, _ = export_generator(LoadedGenerator(generator, spec, [str(i) for i in range(10)], {}), "onnx",
                              tmp_path / "g.onnx")
    z, labels = torch.randn(3, 16), torch.tensor([0, 4, 9])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (images,) = session.run(None, {"z": z.numpy(), "cond": labels.numpy()})
    with torch.no_grad():
        expected = generator(z, labels)
    torch.testing.assert_close(torch.from_numpy(images), expected, rtol=1e-4, atol=1e-4)
