"""The benchmarks' textbook DCGAN is the same model as FashionGen's, written the usual way.

With the weights copied across, both compute the same function: so the
throughput and quality benchmarks compare loops and formulations, not models.
"""

import copy
import sys

import torch

from fashiongen.models.dcgan import Discriminator, Generator
from helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from textbook import BatchStatsSampling, TextbookDiscriminator, TextbookGenerator  # noqa: E402


def test_generators_compute_the_same_function():
    torch.manual_seed(0)
    textbook, mine = TextbookGenerator(nz=100, ngf=64), Generator(100, 64, 1, 28)
    conv_t = textbook.main[0].weight  # (nz, C, 7, 7): the 1×1-input transposed convolution
    state = {
        "project.linear.weight": conv_t.permute(2, 3, 1, 0).reshape(-1, 100),  # rows ordered (i, j, c)
        "project.norm.weight": textbook.main[1].weight, "project.norm.bias": textbook.main[1].bias,
        "project.norm.running_mean": textbook.main[1].running_mean, "project.norm.running_var": textbook.main[1].running_var,
        "project.norm.num_batches_tracked": textbook.main[1].num_batches_tracked,
        "blocks.0.0.weight": textbook.main[3].weight, "blocks.0.1.weight": textbook.main[4].weight,
        "blocks.0.1.bias": textbook.main[4].bias, "blocks.0.1.running_mean": textbook.main[4].running_mean,
        "blocks.0.1.running_var": textbook.main[4].running_var, "blocks.0.1.num_batches_tracked": textbook.main[4].num_batches_tracked,
        "to_image.0.weight": textbook.main[6].weight,
    }
    mine.load_state_dict(state)
    assert sum(p.numel() for p in mine.parameters()) == sum(p.numel() for p in textbook.parameters())
    z = torch.randn(6, 100)
    for mode in ("train", "eval"):
        getattr(mine, mode)(), getattr(textbook, mode)()
        torch.testing.assert_close(mine(z), textbook(z), rtol=1e-4, atol=1e-5)


def test_discriminators_compute_the_same_function():
    torch.manual_seed(0)
    textbook, mine = TextbookDiscriminator(ndf=64), Discriminator(64, 1, 28)
    first, second, norm, last = textbook.main[0], textbook.main[2], textbook.main[3], textbook.main[5]
    mine.features[0][0].weight.data.copy_(first.weight)
    mine.features[1][0].weight.data.copy_(second.weight)
    mine.features[1][1].load_state_dict(norm.state_dict())
    mine.head.weight.data.copy_(last.weight.view(1, -1))
    assert sum(p.numel() for p in mine.parameters()) == sum(p.numel() for p in textbook.parameters())
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    logits = torch.logit(textbook(images).clamp(1e-7, 1 - 1e-7))  # the textbook ends in a sigmoid
    torch.testing.assert_close(mine(images), logits, rtol=1e-3, atol=1e-4)


def test_batch_stats_sampling_is_the_example_train_mode_per_batch_of_64():
    """pytorch/examples samples in train mode: each batch of 64 normalised by its own statistics."""
    torch.manual_seed(0)
    textbook = TextbookGenerator(nz=100, ngf=16)
    textbook.train()
    for _ in range(3):  # running statistics that differ from any one batch's
        textbook(torch.randn(32, 100) * 2 + 1)
    textbook.eval()
    before = {name: value.clone() for name, value in textbook.state_dict().items()}
    sampler = BatchStatsSampling(textbook).eval()  # eval() must not bring the running statistics back
    z = torch.randn(130, 100)  # three batches: 44, 43, 43 rows
    images = sampler(z)
    assert images.shape == (130, 1, 28, 28)
    for name, value in textbook.state_dict().items():  # sampling left the original as it was
        assert torch.equal(value, before[name]), name
    in_train_mode = copy.deepcopy(textbook).train()
    expected = torch.cat([in_train_mode(rows) for rows in torch.tensor_split(z, 3)])
    torch.testing.assert_close(images, expected)
    assert (images - textbook(z)).abs().max() > 1e-2  # eval mode's running statistics draw other images
