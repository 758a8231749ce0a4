"""Shared pieces of the benchmarks: the machine, its matmul peak, FLOP counting, timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # this checkout's fashiongen


def machine(device: torch.device) -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": str(device),
        "date": time.strftime("%Y-%m-%d"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, sizes=(1024, 2048, 3072), repeats: int = 7) -> float:
    """The best median FLOP/s of square matmuls: the ceiling MFU is measured against."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            sync(device)
            times.append(time.perf_counter() - start)
        best = max(best, 2 * n**3 / statistics.median(times))
    return best


def flops_per_call(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` as counted by torch's FlopCounterMode (forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def images_per_second(step: Callable[[], Any], images_per_step: int, steps: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return images_per_step * steps / (time.perf_counter() - start)


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def write_json(path: str | None, data: dict) -> None:
    text = json.dumps(data, indent=2, sort_keys=True)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
