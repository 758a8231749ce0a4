"""Progress bars that stay readable in a terminal and in a CI log."""

from __future__ import annotations

import sys
from typing import Iterable

from tqdm.auto import tqdm

from fashiongen.runtime import watch_load


class StageBar(tqdm):
    """A tqdm bar whose updates also measure the machine's load (:func:`fashiongen.runtime.watch_load`)."""

    def update(self, n: float | None = 1) -> bool | None:
        watch_load()
        return super().update(n)


def progress_bar(
    total: int, desc: str, unit: str = "step", initial: int = 0, disable: bool = False, iterable: Iterable | None = None,
) -> tqdm:
    """A tqdm bar; redrawn often on a terminal, every 30 s in a log file. Iterate it when given ``iterable``."""
    interactive = sys.stderr.isatty()
    return StageBar(
        iterable,
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        mininterval=0.5 if interactive else 30.0,
        leave=True,
        disable=disable,
    )
