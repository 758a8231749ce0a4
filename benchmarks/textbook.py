"""The peer every user compares with: the textbook DCGAN, written the usual way.

A 28×28 adaptation of pytorch/examples' DCGAN: transposed convolutions from a
1×1 noise map, BatchNorm, a sigmoid discriminator with ``BCELoss``, Adam
(2e-4, betas 0.5/0.999), no EMA; data from torchvision's ``FashionMNIST``
through a ``DataLoader`` with per-item ``ToTensor``/``Normalize``. The layer
shapes equal FashionGen's 28-px DCGAN at the same widths (same parameters,
same FLOPs), so a comparison measures the loop and the formulation, not the
model. The benchmarks run it beside FashionGen; it is not part of the package.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path

import torch
from torch import nn


class TextbookGenerator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 1):
        super().__init__()
        self.nz = nz
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 7, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
        self.apply(weights_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(-1, self.nz, 1, 1))


class TextbookDiscriminator(nn.Module):
    def __init__(self, ndf: int = 64, nc: int = 1):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False),
            nn.Sigmoid(),
        )
        self.apply(weights_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


class BatchStatsSampling(nn.Module):
    """The textbook generator sampled as pytorch/examples samples it: BatchNorm in train mode.

    pytorch/examples' dcgan/main.py never calls ``eval()``: its images come from
    ``netG(fixed_noise)`` on a batch of 64, each BatchNorm normalising by that
    batch's own mean and variance, not by the running averages an ``eval()``
    generator uses. This wrapper does the same whatever mode it is put in, for
    any N: ``forward(z)`` (N×nz float32) splits the N rows into ``ceil(N / 64)``
    near-equal batches (63–64 rows; one batch when N <= 64), and returns
    N×1×28×28 float32 in [-1, 1]. The wrapped generator is a copy whose
    BatchNorm layers keep no running statistics, so sampling never changes the
    original's. A row's image depends on the other rows of its batch, as in the
    example.
    """

    BATCH = 64

    def __init__(self, generator: TextbookGenerator):
        super().__init__()
        self.nz = generator.nz
        self.generator = copy.deepcopy(generator)
        for layer in self.generator.modules():
            if isinstance(layer, nn.BatchNorm2d):  # batch statistics in every mode
                layer.track_running_stats, layer.running_mean, layer.running_var = False, None, None
                layer.num_batches_tracked = None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batches = max(1, math.ceil(len(z) / self.BATCH))
        return torch.cat([self.generator(rows) for rows in torch.tensor_split(z, batches)])


def weights_init(m: nn.Module) -> None:
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class TextbookLoop:
    """One textbook iteration per call (pytorch/examples' dcgan/main.py, minus the printing)."""

    def __init__(self, ngf: int, ndf: int, device: torch.device, nz: int = 100, lr: float = 2e-4):
        self.device, self.nz = device, nz
        self.netG = TextbookGenerator(nz, ngf).to(device)
        self.netD = TextbookDiscriminator(ndf).to(device)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=lr, betas=(0.5, 0.999))

    def step(self, data: torch.Tensor) -> tuple[float, float, float, float, float]:
        real_label, fake_label = 1.0, 0.0
        self.netD.zero_grad()
        real_cpu = data.to(self.device)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=self.device)
        output = self.netD(real_cpu)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()

        noise = torch.randn(batch_size, self.nz, 1, 1, device=self.device)
        fake = self.netG(noise)
        label.fill_(fake_label)
        output = self.netD(fake.detach())
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optimizerD.step()

        self.netG.zero_grad()
        label.fill_(real_label)
        output = self.netD(fake)
        errG = self.criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optimizerG.step()
        return errD.item(), errG.item(), D_x, D_G_z1, D_G_z2


def textbook_dataloader(raw_dir: Path, batch_size: int, num_workers: int = 2, pin_memory: bool = False):
    """torchvision's FashionMNIST over the verified raw IDX files, the usual transforms."""
    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    root = Path(tempfile.mkdtemp(prefix="fmnist-root-"))
    (root / "FashionMNIST" / "raw").mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        os.symlink((raw_dir / name).resolve(), root / "FashionMNIST" / "raw" / name)
    dataset = dset.FashionMNIST(
        root=str(root),
        train=True,
        download=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]),
    )
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=True, pin_memory=pin_memory
    )
