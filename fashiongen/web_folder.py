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
# every file an export writes, relative to its folder (fashiongen.web_export writes exactly these)
PAGE_ASSETS = ("index.html", "app.js", "noise.js", "latent.js", "style.css")
EXPORTED_FILES = frozenset({*PAGE_ASSETS, META_FILE, "model.js", "generator.onnx", "ort/ort.wasm.min.js",
                            "ort/glue.js", "ort/wasm.js", "ort/LICENSE.txt"})


def read_page_meta(folder: Path) -> dict | None:
    """The metadata (``meta.json``) of the page export in ``folder``; None when ``folder`` holds no page export."""
    try:
        meta = json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def check_target(out: Path) -> None:
    """Refuse an ``--out`` the export would lose something in: a file, or a folder holding anything but an
    earlier export's own files (the export replaces its folder whole).

    Raises :class:`FashionGenError` naming the folder, up to five of the files it would lose, and what to do.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FashionGenError(f"--out {out} is a file; the web export writes a folder (e.g. --out web).")
    if not out.is_dir():
        return
    present = {path.relative_to(out).as_posix() for path in out.rglob("*") if not path.is_dir()}
    foreign = sorted(present - EXPORTED_FILES) if read_page_meta(out) is not None else sorted(present)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FashionGenError(f"--out {out} holds files the export did not write ({shown}); the web export replaces "
                              "its folder whole, so move them out or give a new or empty folder (e.g. --out web).")
