"""Preprocessing camera-sized JPEGs: peak memory and images/s with and without JPEG draft decoding (issue 16).

Makes N synthetic JPEG "photos" of 3000×4000 px (a smooth gradient, noise and
a coloured block, quality 90: a few MB each, like a phone's), scans them (the
download stage's work) and decodes them to ``--size`` px (the preprocess
stage's), once with Pillow's draft mode switched off (every pixel decoded, as
before issue 16) and once as the pipeline does it (libjpeg's DCT scaling to at
least 2× the output, then Lanczos). Each run is a fresh child process with
``data.workers: 1``, so the decoding happens in that process and its peak
resident memory (``VmHWM``) is the per-worker figure.

    python benchmarks/large_jpegs.py --n 300 --size 64 --json docs/results/large_jpegs_cpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO_ROOT, git_revision, machine, write_json

CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
if not {draft}:
    from PIL import JpegImagePlugin
    JpegImagePlugin.JpegImageFile.draft = lambda self, mode, size: None  # decode every pixel
from fashiongen.data.folder import prepare_folder, scan_folder, write_manifest
folder, out = Path({folder!r}), Path({out!r})
start = time.perf_counter()
write_manifest(out / "raw", scan_folder(folder))
scanned = time.perf_counter()
meta = prepare_folder(out / "raw", out / "prepared", folder, {size}, 3, 0.1, None, 1)
done = time.perf_counter()
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({{"scan_s": scanned - start, "decode_s": done - scanned, "counts": meta["counts"],
                   "skipped": meta["skipped_count"], "peak_rss_mb": peak_kb / 1024}}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="photos to make and decode")
    parser.add_argument("--size", type=int, default=64, choices=(32, 64, 128))
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def make_photos(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` 3000×4000 JPEGs in three class folders, each with its own block position and colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = 4000, 3000
    ramp = np.linspace(40, 215, width, dtype=np.float32)[None, :, None]
    base = (ramp + rng.normal(0, 12, (height, width, 1)).astype(np.float32)).clip(0, 255).astype(np.uint8)
    base = np.repeat(base, 3, axis=2)
    for i in range(n):
        cls = folder / f"class_{i % 3}"
        cls.mkdir(parents=True, exist_ok=True)
        pixels = base.copy()
        top, left = (int(v) for v in rng.integers(0, 2000, 2))
        pixels[top : top + 1500, left : left + 1000] = (60 * (i % 3), 120, (7 * i) % 256)
        Image.fromarray(pixels).save(cls / f"{i:05d}.jpg", quality=90)


def run(folder: Path, out: Path, size: int, draft: bool) -> dict:
    code = CHILD.format(root=str(REPO_ROOT), folder=str(folder), out=str(out), size=size, draft=draft)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "photos"
        started = time.perf_counter()
        make_photos(folder, args.n)
        megabytes = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / 2**20
        print(f"made {args.n} photos ({megabytes:.0f} MB) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        figures = {"n": args.n, "size": args.size, "photo_px": [3000, 4000], "folder_mb": megabytes}
        for name, draft in (("draft_off", False), ("draft_on", True)):
            result = run(folder, Path(scratch) / name, args.size, draft)
            result["images_per_s"] = args.n / result["decode_s"]
            figures[name] = result
            print(name, json.dumps(result), file=sys.stderr)
        change = np.concatenate([
            np.abs(np.load(Path(scratch) / "draft_on" / "prepared" / f"{split}_images.npy").astype(np.int16)
                   - np.load(Path(scratch) / "draft_off" / "prepared" / f"{split}_images.npy")).ravel()
            for split in ("train", "test")
        ])
    off, on = figures["draft_off"], figures["draft_on"]
    figures["speedup"] = on["images_per_s"] / off["images_per_s"]
    figures["pixel_change_vs_full_decode"] = {"mean_abs": float(change.mean()), "max_abs": int(change.max()),
                                              "share_changed_by_more_than_2": float((change > 2).mean())}
    import torch

    report = {"benchmark": "large_jpegs", "machine": machine(torch.device("cpu")), "revision": git_revision(),
              "figures": figures}
    print(json.dumps(report, indent=2))
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
