"""Progress bars that stay readable in a terminal and in a CI log."""

from __future__ import annotations

import sys
from typing import Iterable

from tqdm.auto import tqdm

from fashiongen.runtime import recount_threads


class StageBar(tqdm):
    """A tqdm bar whose updates also resize the process's compute threads when sibling stages start or end."""

    def update(self, n: float | None = 1) -> bool | None:
        recount_threads()
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
