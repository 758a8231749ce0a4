"""The values a condition takes in training and sampling (``model.condition``): one registered kind per choice.

Every generator is called ``G(z, c)`` and every discriminator ``D(x, c)``;
``c`` is one row per image: an empty row (width 0) for ``none``, as
StyleGAN2-ADA passes ``c`` with ``c_dim = 0`` to unconditional networks. A
:class:`ConditionKind` owns the condition's values: of each training image
(:meth:`~ConditionKind.values`, :meth:`~ConditionKind.training_values`), for a
preview grid (:meth:`~ConditionKind.grid_rows`), and drawn for sampling
(:meth:`Conditions.sample`). What each choice is and needs (labels, the
encoder, a class code, a code the generator draws itself) is
:data:`fashiongen.config.CONDITIONS`'s; how the networks take it is
:mod:`fashiongen.models.conditioning`'s; what a user may ask for
(``--label``, ``--like``, ``--to``) is :mod:`fashiongen.generation`'s.

Kinds:

- ``none``: nothing; the classic DCGAN.
- ``label``: the class index; the generator embeds it (``model.embed_dim``) and
  concatenates it with the noise, the discriminator adds a projection term
  (Miyato & Koyama 2018, "cGANs with projection discriminator").
- ``encoding``: the precomputed ResNet encoding of a real image (``data/encodings``),
  concatenated with the noise, and a projection discriminator on it.
- ``cluster``: trained like ``label`` on k-means clusters of the training images'
  pixels (``model.clusters``; :mod:`fashiongen.clustering`, no labels needed),
  sampled like ``none``: the generator draws a cluster from its noise in the
  clusters' training shares (:class:`~fashiongen.models.conditioning.ClusterPriorGenerator`).

``model.condition: auto`` (the default) is not a kind but a choice between two:
``label`` on data with class labels (Fashion-MNIST, a folder with one subfolder per
class), ``cluster`` on data without (:func:`kind_for`). The generator file records the
kind that was trained, so nothing after training sees ``auto``.

Adding a kind: its traits in :data:`fashiongen.config.CONDITIONS`, a subclass of
:class:`ConditionKind` registered in :data:`KINDS`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn

from fashiongen.clustering import cluster_count, cluster_shares, pixel_clusters
from fashiongen.config import AUTO_CONDITION, CONDITIONS, trained_condition
from fashiongen.data.encodings import encodings_meta, load_encodings
from fashiongen.errors import ConfigError, DataError
from fashiongen.models.conditioning import code_width, extra_noise

if TYPE_CHECKING:  # pragma: no cover
    from fashiongen.data.prepared import PreparedData

log = logging.getLogger(__name__)

GRID_ROWS = 8


class ConditionKind:
    """One choice of ``model.condition`` (see the module doc)."""

    name: ClassVar[str]

    @property
    def needs_labels(self) -> bool:
        """The prepared data must have class labels (:data:`fashiongen.config.CONDITIONS` says)."""
        return CONDITIONS[self.name].labels

    @property
    def takes_code(self) -> bool:
        """The networks take a code in training: embedding, projection, modulation (:data:`fashiongen.config.CONDITIONS`)."""
        return CONDITIONS[self.name].takes_code

    @property
    def uses_encoder(self) -> bool:
        """The train_encoder and encode stages do real work for it (:data:`fashiongen.config.CONDITIONS` says)."""
        return CONDITIONS[self.name].encoder

    @property
    def conditional(self) -> bool:
        """Whether samples follow a condition given to them (and get class consistency and diversity scores)."""
        return CONDITIONS[self.name].asked_for

    @property
    def extra_noise(self) -> int:
        """Noise columns the generator keeps for itself (:func:`fashiongen.models.conditioning.extra_noise`)."""
        return extra_noise(self.name)

    def width(self, embed_dim: int, encoding_dim: int) -> int:
        """Columns the condition adds to the generator's input (:func:`fashiongen.models.conditioning.code_width`)."""
        return code_width(self.name, embed_dim, encoding_dim)

    def num_codes(self, num_classes: int, clusters: int, images: int) -> int:
        """Distinct codes the embedding and projection hold: the classes (label), the clusters of ``images``
        training images (cluster)."""
        return num_classes

    def training_values(self, labels: np.ndarray, num_classes: int, encodings_dir: Path, take, clusters: int,
                        seed: int) -> torch.Tensor:
        """The condition of every training image in training (``take(index)``: the images' uint8 rows)."""
        return self.values(labels, num_classes, encodings_dir, "train")

    def prepare_generator(self, generator: nn.Module, values: torch.Tensor, num_codes: int) -> None:
        """Set what the untrained generator learns from the training conditions ``values`` (nothing by default)."""

    def values(self, labels: np.ndarray, num_classes: int, encodings_dir: Path, split: str,
               encoder_id: str | None = None) -> torch.Tensor:
        """The condition of every image of ``split`` (CPU tensor, one row per image, in file order)."""
        raise NotImplementedError

    def grid_rows(self, values: torch.Tensor, labels: np.ndarray, num_classes: int, rows: np.ndarray) -> torch.Tensor:
        """Conditions of a preview grid: grid row ``r`` shows class ``r`` (label) or one source image (encoding).

        The rows cycle through the classes the training split holds (a small
        folder's split may lack one); a source image is the first of its class.
        """
        present = np.unique(np.asarray(labels))
        sources = [int(np.flatnonzero(labels == present[c % len(present)])[0]) for c in range(GRID_ROWS)]
        return values[torch.as_tensor([sources[r % GRID_ROWS] for r in rows], device=values.device)]

    def sample(self, values: torch.Tensor, n: int, rng: torch.Generator) -> torch.Tensor:
        """``n`` conditions drawn like the training data's (the conditions of random training images)."""
        index = torch.randint(len(values), (n,), generator=rng)
        return values[index.to(values.device)]


class NoCondition(ConditionKind):
    name = "none"

    def values(self, labels, num_classes, encodings_dir, split, encoder_id=None) -> torch.Tensor:
        return torch.empty(len(labels), 0)

    def grid_rows(self, values, labels, num_classes, rows) -> torch.Tensor:
        return values.new_empty(len(rows), 0)

    def sample(self, values: torch.Tensor, n: int, rng: torch.Generator) -> torch.Tensor:
        return values.new_empty(n, 0)  # draws nothing from rng


class LabelCondition(ConditionKind):
    name = "label"

    def values(self, labels, num_classes, encodings_dir, split, encoder_id=None) -> torch.Tensor:
        return torch.as_tensor(np.array(labels, dtype=np.int64))

    def grid_rows(self, values, labels, num_classes, rows) -> torch.Tensor:
        present = np.unique(np.asarray(labels))  # the classes the training split holds
        return torch.as_tensor(present[rows % len(present)], device=values.device)


class EncodingCondition(ConditionKind):
    name = "encoding"

    def values(self, labels, num_classes, encodings_dir, split, encoder_id=None) -> torch.Tensor:
        codes = load_encodings(encodings_dir, split, encoder_id=encoder_id)
        if len(codes) != len(labels):
            raise DataError(
                f"{encodings_dir}: {len(codes)} {split} encodings for {len(labels)} {split} images; rerun `dvc repro encode`."
            )
        return torch.from_numpy(np.array(codes, dtype=np.float32))  # a copy: the file is memory-mapped, read-only


class ClusterCondition(LabelCondition):
    """Pixel k-means clusters as labels in training; an unconditional generator afterwards (see the module doc)."""

    name = "cluster"

    def num_codes(self, num_classes: int, clusters: int, images: int) -> int:
        return cluster_count(clusters, images)

    def values(self, labels, num_classes, encodings_dir, split, encoder_id=None) -> torch.Tensor:
        return torch.empty(len(labels), 0)  # sampled unconditionally: no per-image condition

    def training_values(self, labels, num_classes, encodings_dir, take, clusters, seed) -> torch.Tensor:
        k = self.num_codes(num_classes, clusters, len(labels))
        log.info("clustering %d training images into %d pixel clusters (model.clusters %d)", len(labels), k, clusters)
        return torch.as_tensor(pixel_clusters(take, len(labels), k, seed))

    def prepare_generator(self, generator: nn.Module, values: torch.Tensor, num_codes: int) -> None:
        generator.set_shares(cluster_shares(values.cpu().numpy(), num_codes))

    def grid_rows(self, values, labels, num_classes, rows) -> torch.Tensor:
        present = torch.unique(values).cpu().numpy()  # grid row r shows cluster r (of those that hold images)
        return torch.as_tensor(present[rows % len(present)], device=values.device)


KINDS: dict[str, ConditionKind] = {
    kind.name: kind for kind in (NoCondition(), LabelCondition(), EncodingCondition(), ClusterCondition())
}


AUTO = AUTO_CONDITION  # model.condition: label on labelled data, cluster on unlabelled data (fashiongen.config)


def condition_kind(name: str) -> ConditionKind:
    """The registered kind called ``name``; a :class:`ConfigError` listing the kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown model.condition {name!r}; choose one of {', '.join(KINDS)} or {AUTO}.") from None


def kind_for(name: str, labelled: bool) -> ConditionKind:
    """The kind ``model.condition: name`` trains on data with (``labelled``) or without class labels.

    What the name means is :func:`fashiongen.config.trained_condition`'s; a :class:`ConfigError` for an unknown name.
    """
    return condition_kind(trained_condition(name, labelled))


def encoder_of(kind: ConditionKind, encodings_dir: Path) -> str | None:
    """The id of the encoder behind ``data/encodings`` when ``kind`` uses one (recorded in generators)."""
    if not kind.uses_encoder:
        return None
    return encodings_meta(encodings_dir)["encoder"]


@dataclass
class Conditions:
    """The training split's conditions, on the training device, one row per image."""

    kind: ConditionKind
    values: torch.Tensor  # N rows: int64 classes, float32 encodings, or N×0 for none
    labels: np.ndarray  # class of each training image (for grids)
    num_classes: int

    @property
    def width(self) -> int:
        """Columns an encoding adds to the generator's input (read from the data; label: set by model.embed_dim)."""
        return int(self.values.shape[1]) if self.values.ndim == 2 else 0

    def of(self, index: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The conditions of the training images at ``index``."""
        return self.values[torch.as_tensor(index, device=self.values.device)]

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return self.kind.sample(self.values, n, rng)

    def grid(self, n: int) -> torch.Tensor:
        """Conditions for an 8-row preview grid of ``n`` samples."""
        rows = np.arange(n) // (n // GRID_ROWS if n >= GRID_ROWS else 1)
        return self.kind.grid_rows(self.values, self.labels, self.num_classes, rows)


def load_conditions(kind: ConditionKind, labels: np.ndarray, num_classes: int, encodings_dir: Path, device,
                    take=None, clusters: int = 0, seed: int = 0) -> Conditions:
    """The training split's conditions for ``kind``, on ``device``.

    ``encodings_dir`` is read only by kinds that use it; ``take`` (the training
    images' ``ImageSource.take``), ``clusters`` (``model.clusters``) and ``seed``
    (``train.seed``) only by ``cluster``.
    """
    values = kind.training_values(labels, num_classes, encodings_dir, take, clusters, seed).to(device)
    return Conditions(kind, values, labels, kind.num_codes(num_classes, clusters, len(labels)))


def check_data_fits(kind: ConditionKind, data: "PreparedData", prepared_dir: Path) -> None:
    """A :class:`ConfigError` when ``kind`` needs class labels that ``data`` lacks."""
    if kind.needs_labels and not data.labelled:
        raise ConfigError(
            f"model.condition is {kind.name!r} but {prepared_dir} has no class labels (a folder without class "
            "subfolders); use model.condition auto or cluster (no labels needed), or sort the images into one "
            "subfolder per class."
        )
