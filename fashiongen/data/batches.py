"""Training images behind one interface, whether they fit in memory or not.

Fashion-MNIST (47 MB) is copied to the device once and batches are gathered
there, which is the fastest path on CPU and GPU alike. A folder of 100k photos
at 128 px is ~5 GB: it stays a memory-mapped ``.npy`` file and every batch is
read from it (rows in file order, for sequential reads, then put back in the
order asked for). Both paths return the same batch for the same indices, so a
run's result does not depend on which one it took.
"""

from __future__ import annotations

import numpy as np
import torch

GIB = 1 << 30


class ImageSource:
    """uint8 N×C×H×W images; :meth:`take` returns the rows at ``index`` on ``device``."""

    def __init__(self, images: np.ndarray, device: torch.device, preload_max_gb: float):
        self.device = device
        self.in_memory = images.nbytes <= preload_max_gb * GIB
        self._array = images
        self._tensor = torch.from_numpy(np.array(images)).to(device) if self.in_memory else None

    def __len__(self) -> int:
        return len(self._array)

    @property
    def nbytes(self) -> int:
        return self._array.nbytes

    def take(self, index: torch.Tensor) -> torch.Tensor:
        if self._tensor is not None:
            return self._tensor[index.to(self.device)]
        wanted = index.cpu().numpy()
        order = np.argsort(wanted, kind="stable")
        rows = np.empty((len(wanted), *self._array.shape[1:]), dtype=self._array.dtype)
        rows[order] = self._array[wanted[order]]
        return torch.from_numpy(rows).to(self.device, non_blocking=True)
