"""A fixed glibc mmap threshold, so that a long CPU job's memory does not creep.

glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
blocks of that size come from the heap, where tensors of ever-changing shapes (dynamic padding)
leave holes it never returns. Measured on the demo's MLM pretraining (2 CPU cores, 20 steps):
resident memory grew from 1.2 to 1.95 GB with glibc's default and stayed at 1.3 GB with a fixed
threshold; the 500-step job peaked at 4.1 GB. Neither torch nor a maintained package sets this, and
the environment variable (MALLOC_MMAP_THRESHOLD_) only works when set before the process starts,
so the `embaug` command sets it itself through mallopt.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 1 << 20
"""Blocks from 1 MiB up (activations, gradients) are mapped and returned whole when freed."""


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold (which also stops its dynamic raising); False where there is no
    glibc (macOS, musl), and nothing changes there."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError, TypeError):
        return False
