"""dvclive for the train stage, including picking up a resumed run's history.

A killed run may have logged steps after its last checkpoint, and may have
been killed while dvclive was writing. Resuming therefore rewinds the history
to the checkpoint: every ``.tsv`` keeps its complete rows with a step before
the checkpoint's next step, and ``metrics.json`` is rewritten from the summary
saved in the checkpoint. The resumed run then logs from that step on, so the
history reads as if the run had never stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fashiongen.atomic import atomic_write, write_json


def open_live(results: Path, resume_at: tuple[int, dict[str, Any]] | None):
    """A dvclive ``Live`` on ``results``; fresh, or continuing at a checkpoint's ``(step, summary)``."""
    from dvclive import Live

    if resume_at is not None:
        rewind_history(results, *resume_at)
    live = Live(dir=str(results), resume=resume_at is not None, dvcyaml=False, save_dvc_exp=False, report=None)
    if resume_at is not None:
        live.step = resume_at[0]
    return live


def rewind_history(results: Path, next_step: int, summary: dict[str, Any]) -> None:
    """Drop everything logged at ``next_step`` or later (and any half-written row)."""
    for tsv in sorted((results / "plots" / "metrics").glob("*.tsv")):
        lines = tsv.read_text(encoding="utf-8").splitlines()
        if not lines:
            continue
        header, rows = lines[0], lines[1:]
        width = len(header.split("\t"))
        kept = [row for row in rows if _complete_row_before(row, width, next_step)]
        with atomic_write(tsv, "w") as handle:
            handle.write("\n".join([header, *kept]) + "\n")
    write_json(results / "metrics.json", summary)


def _complete_row_before(row: str, width: int, next_step: int) -> bool:
    cells = row.split("\t")
    if len(cells) != width:
        return False
    try:
        return int(cells[0]) < next_step and all(cell != "" for cell in cells)
    except ValueError:
        return False
