"""The web export in a browser (issue 40 part 2): from a click to a drawn grid of 64, in headless Chromium.

Exports ``--checkpoint`` (default: the workspace's published generator) with
``fashiongen export --format web`` into a temporary folder, opens its page from
``file://`` in headless Chromium (Debian's ``chromium``, through Playwright), and
measures what the page itself records (``window.fashiongenPage.timings``):

- ``load``: from the start of the page's script to its first grid (the runtime
  compiled, the model loaded, one grid of 64 drawn);
- ``click``: ``--clicks`` times, a new seed put in the seed field and Draw
  clicked: from the click event to the grid of 64 painted (the frame after the
  canvas is filled): the noise drawn, the network run, the canvas painted;
- ``psi``: the truncation slider moved (an ``input`` event) to the grid painted.

It also checks that every grid equals ``fashiongen generate`` (PyTorch) for the
same seed within one grey level, so the timing is of the right images.

    python benchmarks/web_page.py --json docs/results/web_page.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import REPO_ROOT, git_revision, machine, write_json

sys.path.insert(0, str(REPO_ROOT / "tests"))
from helpers import chromium_executable

from fashiongen.analysis.truncation import truncated_noise
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.sampling import generate_uint8
from fashiongen.generation import generation_conditions
from fashiongen.web_export import export_web
from fashiongen.web_runtime import runtime_folder

N = 64


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median_ms": statistics.median(ordered), "min_ms": ordered[0], "max_ms": ordered[-1],
            "p90_ms": ordered[max(0, round(0.9 * len(ordered)) - 1)], "count": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=REPO_ROOT / "models/generator.pt")
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    loaded = load_generator(args.checkpoint)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        folder = Path(scratch) / "web"
        export_web(loaded, args.checkpoint, folder, runtime_folder())
        export_s = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_executable(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.goto((folder / "index.html").as_uri())
            page.wait_for_function("document.body.dataset.status === 'ready'", timeout=120_000)
            worst = 0
            for i in range(args.clicks):
                seed = 1000 + i
                page.eval_on_selector("#seed", "(e, v) => { e.value = v; }", str(seed))  # typed, no change event yet
                page.click("#draw")
                page.wait_for_function(f"document.body.dataset.status === 'ready' && "
                                       f"window.fashiongenPage.grid.seed === '{seed}'")
                drawn = torch.tensor(page.evaluate("Array.from(window.fashiongenPage.grid.images)"), dtype=torch.uint8)
                cond = generation_conditions(loaded, N, None, None, Path("models/encoder.pt"), "cpu")
                expected = generate_uint8(loaded.module, truncated_noise(N, loaded.spec.z_dim, seed, 1.0), N, "cpu", cond)
                worst = max(worst, int((drawn.reshape(expected.shape).int() - expected.int()).abs().max()))
            for psi in ("0.9", "0.8", "0.7", "0.6", "0.5", "0.4", "0.3", "0.2", "0.1", "1"):
                page.eval_on_selector("#psi", "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }", psi)
                page.wait_for_function(f"document.body.dataset.status === 'ready' && "
                                       f"window.fashiongenPage.grid.psi === {float(psi)}")
            timings = page.evaluate("window.fashiongenPage.timings")
            version = browser.version
            browser.close()
    grids = [t["ms"] for t in timings if t["what"] == "grid"]
    if len(grids) != 1 + args.clicks + 10:
        raise SystemExit(f"expected one grid per click and per ψ change, the page drew {len(grids) - 1}")
    clicks = grids[1:1 + args.clicks]  # the first grid is part of the load
    result = {
        "benchmark": "web_page",
        "command": "python benchmarks/web_page.py" + (f" --json {args.json}" if args.json else ""),
        "revision": git_revision(),
        "machine": machine(torch.device("cpu")),
        "browser": f"Chromium {version} (headless, Playwright)",
        "checkpoint": str(args.checkpoint),
        "condition": loaded.spec.condition,
        "images_per_grid": N,
        "export_s": round(export_s, 2),
        "folder_mb": round(size_mb, 1),
        "load_ms": next(t["ms"] for t in timings if t["what"] == "load"),
        "click_to_grid": summary(clicks),
        "psi_to_grid": summary(grids[1 + args.clicks:]),
        "max_grey_levels_from_pytorch": worst,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    for key, value in result.items():
        print(f"{key}: {value}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
