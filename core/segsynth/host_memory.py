"""Keep freed host memory for the next training step instead of handing it back to the kernel.

An eager training step on the CPU allocates the same few hundred MiB every step: activations,
bf16 copies of the weights, gradients. glibc's ``malloc`` serves every block above its mmap
threshold (dynamic, at most 32 MiB) with fresh pages from ``mmap`` and unmaps them on ``free``,
so each step pays a page fault per 4 KiB page plus the kernel zeroing it. On the 2-core CPUs
of docs/benchmarks.md that was up to a quarter of a bf16 step and almost a third of an fp32
one (the U-Net evaluator's bf16 step: 290,000 minor faults and 0.4 s of system time). With
``M_MMAP_MAX = 0`` every block comes from the heap, and a high ``M_TRIM_THRESHOLD`` keeps
freed heap memory for reuse: after the first steps a training loop allocates without
touching the kernel.

The price is that the process keeps its peak working set (up to 2 GiB of free heap) until it
exits rather than shrinking between steps, which a training process needs again at the next
step anyway (on the three training benchmarks peak RSS grew by 0-270 MiB). The setting is
process-wide and applied once; other C libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import platform
import sys

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_FREE_BYTES = 2**31 - 1  # the largest value mallopt takes: 2 GiB of free heap kept

_applied: bool | None = None  # None: not tried yet


def retain_freed_memory() -> bool:
    """Make glibc's ``malloc`` reuse freed memory (once per process); ``False`` where it cannot."""
    global _applied
    if _applied is None:
        _applied = _set_malloc_options()
    return _applied


def _set_malloc_options() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_BYTES))
