"""Hand freed memory back to the operating system, for one-shot commands whose peak memory is what users see."""

from __future__ import annotations

import ctypes


def release_freed_memory() -> None:
    """Return the heap's free pages to the OS (glibc's ``malloc_trim``): after a large table is dropped, glibc keeps
    its pages for reuse, so the next table would be counted on top of it. A no-op where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator hands pages back on its own terms
        return
