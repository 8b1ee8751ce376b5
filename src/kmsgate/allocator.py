"""Allocator settings for a process that streams large buffers (glibc only).

The gateway handles bodies in blocks of a few hundred kilobytes: socket reads, frames,
ciphertext and plaintext buffers. With glibc's defaults a block that size is usually
``mmap``'d, and freed memory above a small threshold is handed back to the kernel, so
every block costs fresh pages and a page fault per 4 KiB; on a virtual machine that costs
more than the AES-GCM work on the same bytes. ``tune_allocator`` asks glibc to serve
blocks below ``MMAP_THRESHOLD_BYTES`` from the heap and to keep up to
``TRIM_THRESHOLD_BYTES`` of freed heap for reuse.

The price is memory that stays with the process after a burst: at most
``TRIM_THRESHOLD_BYTES`` of free heap per malloc arena. An operator who sets
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` keeps their own values; other C
libraries are left alone.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Mapping

MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_allocator(environ: Mapping[str, str]) -> bool:
    """Apply the settings above; ``True`` if glibc accepted them. Call before starting workers."""
    if not sys.platform.startswith("linux") or any(name in environ for name in _OPERATOR_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # not glibc
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)
