"""The conditions a generator is trained and sampled with (``model.condition``).

- ``none``: nothing; ``G(z)``.
- ``label``: the class index of each training image; sampling draws classes.
- ``encoding``: the precomputed ResNet encoding of each training image
  (``data/encodings``); sampling uses encodings of real images.

Training looks the condition of a batch up by the batch's image indices, on
the device, like the images themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

GRID_ROWS = 8


@dataclass
class Conditions:
    kind: str  # none | label | encoding
    values: torch.Tensor | None  # one per training image: int64 class or float32 encoding, on the device
    labels: np.ndarray  # class of each training image (for grids)
    num_classes: int

    @property
    def width(self) -> int:
        """Columns an encoding adds to the generator's input (label: set by model.embed_dim)."""
        return int(self.values.shape[1]) if self.kind == "encoding" else 0

    def of(self, index: torch.Tensor | np.ndarray) -> torch.Tensor | None:
        """The conditions of the training images at ``index``."""
        if self.values is None:
            return None
        return self.values[torch.as_tensor(index, device=self.values.device)]

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor | None:
        """``n`` conditions drawn like the training data's (random training images' conditions)."""
        if self.values is None:
            return None
        index = torch.randint(len(self.values), (n,), generator=rng)
        return self.values[index.to(self.values.device)]

    def grid(self, n: int) -> torch.Tensor | None:
        """Conditions for an 8-column preview grid: each row one class (label) or one source image (encoding).

        The rows cycle through the classes the training split holds (a small
        folder's split may lack one); an encoding row's source is the first
        training image of its class.
        """
        if self.values is None:
            return None
        rows = np.arange(n) // (n // GRID_ROWS if n >= GRID_ROWS else 1)
        present = np.unique(np.asarray(self.labels))
        if self.kind == "label":
            return torch.as_tensor(present[rows % len(present)], device=self.values.device)
        sources = [int(np.flatnonzero(self.labels == present[c % len(present)])[0]) for c in range(GRID_ROWS)]
        return self.values[torch.as_tensor([sources[r % GRID_ROWS] for r in rows], device=self.values.device)]


def load_conditions(kind: str, labels: np.ndarray, num_classes: int, encodings_dir: Path, device) -> Conditions:
    """The training split's conditions for ``kind`` (``encodings_dir`` is read only for ``encoding``)."""
    if kind == "none":
        return Conditions(kind, None, labels, num_classes)
    if kind == "label":
        return Conditions(kind, torch.as_tensor(np.array(labels, dtype=np.int64), device=device), labels, num_classes)
    from fashiongen.encoding import load_encodings

    codes = load_encodings(encodings_dir, "train")
    if len(codes) != len(labels):
        from fashiongen.errors import DataError

        raise DataError(f"{encodings_dir}: {len(codes)} encodings for {len(labels)} training images; rerun `dvc repro encode`.")
    return Conditions(kind, torch.from_numpy(np.array(codes)).to(device), labels, num_classes)  # a copy: the file is memory-mapped, read-only
