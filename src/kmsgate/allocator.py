"""Allocator settings for a process that streams large buffers (glibc only).

The gateway handles bodies in blocks of a few hundred kilobytes: socket reads, frames,
ciphertext and plaintext buffers. With glibc's defaults a block that size is usually
``mmap``'d, and freed memory above a small threshold is handed back to the kernel, so
every block costs fresh pages and a page fault per 4 KiB; on a virtual machine that costs
more than the AES-GCM work on the same bytes. ``tune_allocator`` asks glibc to serve
blocks below ``MMAP_THRESHOLD_BYTES`` from the heap and to keep up to
``TRIM_THRESHOLD_BYTES`` of freed heap for reuse.

The price is memory that stays with the process after a burst: up to
``TRIM_THRESHOLD_BYTES`` of free heap per malloc arena, and free pages inside the heap that
glibc never returns by itself. Each worker therefore calls ``trim_heap`` every
``TRIM_INTERVAL_SECONDS``, which hands every arena's free pages back to the kernel: a burst keeps
its reused blocks, and the resident size follows what is in use (a 10-minute soak with the tuning
and no trimming saw each worker grow by about 1 MiB a minute). An operator who sets
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` keeps their own values; other C
libraries are left alone.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Mapping

MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
TRIM_INTERVAL_SECONDS = 60.0
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # not glibc
        return None
    return libc


def tune_allocator(environ: Mapping[str, str]) -> bool:
    """Apply the settings above; ``True`` if glibc accepted them. Call before starting workers."""
    libc = _glibc()
    if libc is None or any(name in environ for name in _OPERATOR_SETTINGS):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)


def trim_heap() -> bool:
    """Return the free pages of every malloc arena to the kernel (glibc's ``malloc_trim(0)``);
    ``True`` if any memory was released. A few milliseconds at most for a worker's heap."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    malloc_trim = libc.malloc_trim
    malloc_trim.argtypes = (ctypes.c_size_t,)
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0) == 1)
