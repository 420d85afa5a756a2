"""The pretraining loop hands freed heap memory back every few batches (embaug.allocator)."""

from __future__ import annotations

from embaug.allocator import TRIM_EVERY, HeapTrimmer, heap_trim


def test_glibc_has_malloc_trim():
    trim = heap_trim()  # Linux with glibc, as CI and the clusters the README names
    assert trim is not None
    assert trim(0) in (0, 1)  # 1: memory was returned, 0: there was none to return


def test_the_trimmer_trims_on_every_eighth_batch():
    trimmer = HeapTrimmer()
    calls: list[int] = []
    trimmer.trim = lambda pad: calls.append(pad) or 0
    for _ in range(3 * TRIM_EVERY + 5):
        trimmer.tick()
    assert TRIM_EVERY == 8 and calls == [0, 0, 0]


def test_without_glibc_the_trimmer_does_nothing():
    trimmer = HeapTrimmer(every=1)
    trimmer.trim = None
    trimmer.tick()
    assert trimmer.ticks == 1
