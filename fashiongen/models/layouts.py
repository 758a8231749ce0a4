"""Versions of each generator architecture's tensor layout, and converters between them.

A generator file stores tensors by name. Code can change what a tensor *means*
without changing its name or shape: on 2026-11-23 (commit 1e695fe) the DCGAN
noise projection's output rows were reordered from channels-first
``(c * base + i) * base + j`` to channels-last ``(i * base + j) * C + c``. A file
written before that loads without error at today's code and samples scrambled
images. So every generator file records the layout version of its
architecture (:data:`CURRENT`), and :func:`upgrade` converts an older file's
tensors to today's layout or refuses a file it cannot convert.

Adding a layout change: bump the architecture's entry in :data:`CURRENT` and
register a converter from the previous version in :data:`_CONVERTERS`; the
tests keep one small generator file of every past layout
(``tests/data/generator_layouts``).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from fashiongen.errors import CheckpointError
from fashiongen.models.dcgan import resolution_plan

# architecture -> the layout version today's code builds
CURRENT: dict[str, int] = {"dcgan": 2, "upsample": 1, "resnet": 1}

State = dict[str, torch.Tensor]


def _dcgan_channels_first_to_channels_last(state: State, config: dict[str, Any]) -> State:
    """Layout 1 → 2 of ``dcgan``: reorder the noise projection's output rows to channels-last.

    The Linear weight is (C·base·base, in); row ``(c·base + i)·base + j`` of
    layout 1 becomes row ``(i·base + j)·C + c`` of layout 2. Nothing else changed.
    """
    base, _ = resolution_plan(int(config["image_size"]))
    prefix = "base." if "base.project.linear.weight" in state else ""
    key = f"{prefix}project.linear.weight"
    weight = state[key]
    channels = weight.shape[0] // (base * base)
    reordered = weight.view(channels, base, base, -1).permute(1, 2, 0, 3).reshape(weight.shape)
    return {**state, key: reordered.contiguous()}


# (architecture, from version) -> converter to from version + 1
_CONVERTERS: dict[tuple[str, int], Callable[[State, dict[str, Any]], State]] = {
    ("dcgan", 1): _dcgan_channels_first_to_channels_last,
}


def current(arch: str) -> int:
    """Today's layout version of ``arch`` (1 for an architecture that never changed)."""
    return CURRENT.get(arch, 1)


def infer_unversioned(config: dict[str, Any], params: dict[str, Any]) -> int:
    """The layout of a file written before layout versions were recorded (before 2026-11-30).

    Only ``dcgan`` changed before then, in the same commit that introduced the
    ``train.amp`` param: a file whose saved params have ``train.amp`` has the
    channels-last layout (2), one without it the channels-first layout (1).
    """
    arch = config.get("arch", "dcgan")
    if arch != "dcgan":
        return 1
    return 2 if "amp" in (params.get("train") or {}) else 1


def upgrade(state: State, config: dict[str, Any], version: int, source: str) -> State:
    """``state`` (a generator's tensors in layout ``version``) converted to today's layout.

    Raises :class:`CheckpointError` naming ``source`` when the file is newer
    than this code (upgrade FashionGen) or no converter exists (retrain).
    """
    arch = config.get("arch", "dcgan")
    target = current(arch)
    if version > target:
        raise CheckpointError(
            f"{source}: its {arch} generator has layout version {version}, but this FashionGen reads up to "
            f"{target}; it was written by a newer FashionGen: upgrade FashionGen to load it."
        )
    while version < target:
        convert = _CONVERTERS.get((arch, version))
        if convert is None:
            raise CheckpointError(
                f"{source}: its {arch} generator has layout version {version} and this FashionGen needs "
                f"{target}, with no conversion from {version}; retrain it (`dvc repro train`)."
            )
        state = convert(state, config)
        version += 1
    return state
