"""Training images behind one interface, whether they fit in memory or not.

Fashion-MNIST (47 MB) is copied to the device once and batches are gathered
there, which is the fastest path on CPU and GPU alike. A folder of 100k photos
at 128 px is ~5 GB: it stays a memory-mapped ``.npy`` file and every batch is
read from it (rows in file order, for sequential reads, then put back in the
order asked for). Both paths return the same batch for the same indices, so a
run's result does not depend on which one it took.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from fashiongen.config import Params

log = logging.getLogger(__name__)

GIB = 1 << 30


def fit_batch_to_split(params: Params, n_images: int, world_size: int = 1) -> Params:
    """``params`` with ``train.batch_size`` lowered to the training split's size when the split is smaller.

    A photo folder of a few hundred images may hold fewer training images
    than the default batch (128); each step then uses all of them (rounded
    down to a multiple of ``world_size``), as the evaluator's and encoder's
    training do, and a warning says so. The returned params are what the run
    records. Below two images per process nothing changes: the caller refuses.
    """
    batch = params.train.batch_size
    fitted = n_images - n_images % world_size
    if n_images >= batch or fitted < 2 * world_size:
        return params
    log.warning("train.batch_size=%d exceeds the %d training images: every step uses %d of them "
                "(one step per epoch; raise train.epochs for more steps)", batch, n_images, fitted)
    return params.model_copy(update={"train": params.train.model_copy(update={"batch_size": fitted})})


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
