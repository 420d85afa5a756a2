"""The `embaug` command fixes glibc's mmap threshold (embaug.allocator)."""

from __future__ import annotations

from embaug.allocator import MMAP_THRESHOLD, fix_mmap_threshold


def test_glibc_takes_the_threshold():
    assert MMAP_THRESHOLD == 1 << 20
    assert fix_mmap_threshold() is True  # Linux with glibc, as CI and the clusters the README names
