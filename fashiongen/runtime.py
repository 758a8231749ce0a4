"""Process-wide settings that make the compute stages faster on CPU."""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed memory instead of handing it back to the kernel.

    A training step frees and re-allocates the same activation-sized buffers
    every time. With glibc's defaults those buffers are unmapped on free and
    every reuse faults their pages in again: about 10,000 page faults and 27 ms
    of kernel time per step of the 64/64 DCGAN at batch 128 on the 2-core
    reference machine. Raising the mmap and trim thresholds keeps the memory in
    the heap (0 faults per step). Returns False where this is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # buffers up to 32 MB come from the heap
    trim_ok = mallopt(_M_TRIM_THRESHOLD, 512 << 20)  # keep up to 512 MB of freed heap for reuse
    return bool(mmap_ok and trim_ok)
