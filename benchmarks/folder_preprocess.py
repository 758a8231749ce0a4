"""Folder preprocessing at scale: wall time and peak memory of decoding N photos to 128 px.

Makes N synthetic JPEG "photos" (sizes between 200 and 600 px, three class
folders) in a scratch folder, then runs the scan (the download stage's work)
and the decode (the preprocess stage's) in a child process with
``data.workers`` processes, and reports the peak resident memory of the
parent and of the largest worker (``getrusage``), the output size and the
images per second. The bar (issue 8): 20k images at 128 px under 1.5 GB.

    python benchmarks/folder_preprocess.py --n 20000 --size 128 --json docs/results/folder_preprocess_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO_ROOT, git_revision, machine, write_json

CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from fashiongen.data.folder import prepare_folder, scan_folder, write_manifest
folder, out, size, workers = Path({folder!r}), Path({out!r}), {size}, {workers}
start = time.perf_counter()
write_manifest(out / "raw", scan_folder(folder))
scanned = time.perf_counter()
meta = prepare_folder(out / "raw", out / "prepared", folder, size, 3, 0.1, None, workers)
done = time.perf_counter()
# VmHWM: this process's own peak (ru_maxrss would include the parent's size at fork, kept across exec)
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({{
    "scan_s": scanned - start, "decode_s": done - scanned, "counts": meta["counts"],
    "parent_peak_rss_mb": peak_kb / 1024,
    # an upper bound: a worker's ru_maxrss starts from this process's size when it was forked
    "largest_worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="photos to make and decode")
    parser.add_argument("--size", type=int, default=128, choices=(32, 64, 128))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def make_photos(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` JPEGs of random sizes: a coloured rectangle on noise, in three class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (600, 600, 3), dtype=np.uint8)
    for i in range(n):
        cls = folder / f"class_{i % 3}"
        cls.mkdir(parents=True, exist_ok=True)
        w, h = (int(v) for v in rng.integers(200, 601, 2))
        pixels = noise[:h, :w].copy()
        pixels[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (80 * (i % 3), 120, 200)
        Image.fromarray(pixels).save(cls / f"{i:06d}.jpg", quality=90)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder, out = Path(scratch) / "photos", Path(scratch) / "out"
        started = time.perf_counter()
        make_photos(folder, args.n)
        print(f"made {args.n} photos in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        code = CHILD.format(root=str(REPO_ROOT), folder=str(folder), out=str(out), size=args.size, workers=args.workers)
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        images = out / "prepared" / "train_images.npy"
        figures.update({
            "n": args.n, "size": args.size, "workers": args.workers,
            "output_mb": sum(f.stat().st_size for f in (out / "prepared").iterdir()) / 2**20,
            "train_images_mb": images.stat().st_size / 2**20,
            "images_per_s": args.n / figures["decode_s"],
            "bar_peak_rss_mb": 1536,
        })
    figures["bar_met"] = max(figures["parent_peak_rss_mb"], figures["largest_worker_peak_rss_mb"]) < 1536
    import torch

    report = {"benchmark": "folder_preprocess", "machine": machine(torch.device("cpu")), "revision": git_revision(),
              "figures": figures}
    write_json(args.json, report)


if __name__ == "__main__":
    main()
