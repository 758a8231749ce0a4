"""Network shapes and ranges for every supported image size."""

import pytest
import torch

from fashiongen.models.dcgan import Discriminator, Generator, resolution_plan
from fashiongen.models.evaluator import Evaluator


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size, channels):
    generator = Generator(z_dim=16, width=8, channels=channels, image_size=size)
    discriminator = Discriminator(width=8, channels=channels, image_size=size)
    images = generator(torch.randn(5, 16))
    assert images.shape == (5, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh
    assert discriminator(images).shape == (5,)


def test_width_scales_the_textbook_channel_counts():
    generator = Generator(z_dim=100, width=64, channels=1, image_size=28)
    assert generator.project.linear.out_features == 128 * 7 * 7  # 7×7×2w, then 14×14×w, then 28×28×1
    discriminator = Discriminator(width=64, channels=1, image_size=28)
    assert discriminator.head.in_features == 128 * 7 * 7


def test_unsupported_size_is_refused():
    with pytest.raises(ValueError, match="image size 48 is not supported"):
        resolution_plan(48)


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (64, 3)])
def test_evaluator_outputs(size, channels):
    model = Evaluator(channels=channels, num_classes=10, image_size=size, width=8, feature_dim=32).eval()
    features, logits = model.features_and_logits(torch.randn(4, channels, size, size))
    assert features.shape == (4, 32) and logits.shape == (4, 10)
    assert (features >= 0).all()  # post-ReLU features


@pytest.mark.parametrize(("channels", "bias"), [(1, True), (3, False)])
def test_patch_conv_equals_conv2d_forward_and_backward(channels, bias):
    from torch import nn

    from fashiongen.models.layers import PatchConv2d

    torch.manual_seed(0)
    reference = nn.Conv2d(channels, 16, 4, 2, 1, bias=bias)
    patch = PatchConv2d(channels, 16, 4, 2, 1, bias=bias)
    patch.load_state_dict(reference.state_dict())
    x = torch.randn(5, channels, 28, 28, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    out, expected = patch(x), reference(x2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(patch.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-5)


def test_patch_conv_leaves_large_inputs_to_conv2d(monkeypatch):
    """Above 64 × 64 pixels the unfolded patches would cost 4× the input's memory: nn.Conv2d's path, same result."""
    from torch import nn

    from fashiongen.models.layers import PatchConv2d

    torch.manual_seed(0)
    reference = nn.Conv2d(3, 8, 4, 2, 1)
    patch = PatchConv2d(3, 8, 4, 2, 1)
    patch.load_state_dict(reference.state_dict())
    small, large = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)
    unfolded = []
    real_unfold = nn.functional.unfold
    monkeypatch.setattr(nn.functional, "unfold", lambda *a, **k: unfolded.append(1) or real_unfold(*a, **k))
    torch.testing.assert_close(patch(large), reference(large), rtol=1e-5, atol=1e-5)
    assert not unfolded
    torch.testing.assert_close(patch(small), reference(small), rtol=1e-5, atol=1e-5)
    assert unfolded == [1]


def test_patch_conv_takes_a_channels_last_rgb_weight():
    """Networks are moved to channels-last; an RGB first layer's weight then is not a viewable matrix."""
    from torch import nn

    from fashiongen.models.layers import PatchConv2d

    torch.manual_seed(0)
    reference = nn.Conv2d(3, 8, 4, 2, 1).to(memory_format=torch.channels_last)
    patch = PatchConv2d(3, 8, 4, 2, 1).to(memory_format=torch.channels_last)
    patch.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(patch(x), reference(x), rtol=1e-5, atol=1e-5)
