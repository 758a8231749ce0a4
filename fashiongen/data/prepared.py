"""Read the arrays written by the preprocess stage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashiongen.errors import DataError


@dataclass(frozen=True)
class Split:
    """One split: uint8 images (N×C×H×W, possibly memory-mapped) and int64 labels."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class PreparedData:
    """The prepared dataset folder: its metadata and its splits."""

    root: Path
    meta: dict

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def labelled(self) -> bool:
        """Whether the labels mean classes (Fashion-MNIST, a folder with class subfolders)."""
        return bool(self.meta.get("labelled", True)) and self.num_classes > 1

    @property
    def channels(self) -> int:
        return int(self.meta["channels"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    def split(self, name: str, mmap: bool = True) -> Split:
        """Load a split; ``mmap`` maps the file instead of reading it into RAM."""
        images = self._load(f"{name}_images.npy", mmap)
        labels = self._load(f"{name}_labels.npy", mmap)
        expected = (self.channels, self.image_size, self.image_size)
        if images.dtype != np.uint8 or images.shape[1:] != expected or len(images) != len(labels):
            raise DataError(
                f"{self.root}/{name}_images.npy does not match meta.json "
                f"(shape {images.shape}, dtype {images.dtype}); rerun `dvc repro preprocess`."
            )
        return Split(images=images, labels=labels)

    def _load(self, name: str, mmap: bool) -> np.ndarray:
        path = self.root / name
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{path} is missing; run `dvc repro preprocess`.") from None
        except ValueError as exc:
            raise DataError(f"{path} is not a valid .npy file ({exc}); rerun `dvc repro preprocess`.") from None


def load_prepared(root: Path | str) -> PreparedData:
    root = Path(root)
    meta_path = root / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{meta_path} is missing; run `dvc repro preprocess`.") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_path} is not valid JSON ({exc}); rerun `dvc repro preprocess`.") from None
    return PreparedData(root=root, meta=meta)
