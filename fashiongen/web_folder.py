"""The folder a web export writes (:mod:`fashiongen.web_export`): its layout, and telling one from other folders.

Torch-free, so that ``fashiongen report`` can link to a page without loading a model.
"""

from __future__ import annotations

import json
from pathlib import Path

from fashiongen.errors import FashionGenError

FORMAT = "fashiongen-web"
PAGE = "index.html"
META_FILE = "meta.json"
DEFAULT_FOLDER = Path("web")


def read_page_meta(folder: Path) -> dict | None:
    """The metadata (``meta.json``) of the page export in ``folder``; None when ``folder`` holds no page export."""
    try:
        meta = json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def check_target(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder that is not an earlier page export.

    Raises :class:`FashionGenError` naming the folder and what to give instead.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FashionGenError(f"--out {out} is a file; the web export writes a folder (e.g. --out web).")
    if out.is_dir() and any(out.iterdir()) and read_page_meta(out) is None:
        raise FashionGenError(f"--out {out} is a folder with other files in it; the web export replaces its folder "
                              "whole, so give a new or empty folder (e.g. --out web).")
