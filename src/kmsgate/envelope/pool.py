"""Where AES-GCM work runs: inline below a size threshold, in a thread pool above it.

pyca/cryptography releases the GIL while AES-GCM runs, so large ``update`` calls in
worker threads use the other core and keep the event loop responsive. Small ones run
inline: a hand-off costs more than the AES-GCM work of a small chunk.

``THRESHOLD_BYTES`` is measured, not guessed:
``PYTHONPATH=src .venv/bin/python bench/envelope_threadpool.py`` times one asyncio
``run_in_executor`` hand-off of a no-op to a 2-thread pool and the inline cost of
``Encryptor.update``/``Decryptor.update`` (64 KiB frames) per size, and picks the smallest
size whose work is at least 4x the hand-off (so a hand-off adds at most a quarter to
the work it moves). Three runs on the 2-core development machine, shared with other
load (medians of short rounds; microseconds):

    size      hand-off   encrypt  decrypt  raw AES-GCM
    64 KiB    86-102     9.5      21       7.1
    256 KiB   86-102     33-35    45-46    25.6
    1 MiB     64-86      126-128  140-163  101-103
    2 MiB     48-91      250-770  262-654  209-324
    4 MiB     48-93      496-1264 525-1158 399-802
    threshold (work >= 4x hand-off): 2 MiB, 4 MiB, 2 MiB

The hand-off (thread wake-up, future, self-pipe wake of the loop) costs 50-100 us on
this machine, so chunks up to 1 MiB stay inline (at most ~150 us of loop time) and
2 MiB and up go to the pool. On a machine with idle cores the hand-off is cheaper;
pass ``threshold_bytes`` to move the line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
Chunk = bytes | bytearray | memoryview

THRESHOLD_BYTES = 2 * 1024 * 1024  # see the measurements above
MAX_WORKERS = 2


class CryptoPool:
    """Runs ``fn(data)`` inline or in a thread, by the size of ``data``. Calls on one
    encryptor or decryptor must still be awaited one at a time (they are not thread-safe)."""

    def __init__(self, *, threshold_bytes: int = THRESHOLD_BYTES, max_workers: int = MAX_WORKERS) -> None:
        if threshold_bytes < 0 or max_workers < 1:
            raise ValueError("threshold must be >= 0 and workers >= 1")
        self.threshold_bytes = threshold_bytes
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kmsgate-aead")
        self.inline_calls = 0
        self.pooled_calls = 0

    async def run(self, fn: Callable[[Chunk], T], data: Chunk) -> T:
        """``fn(data)``: inline when ``len(data)`` is below the threshold, else in a worker thread."""
        if len(data) < self.threshold_bytes:
            self.inline_calls += 1
            return fn(data)
        self.pooled_calls += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, data)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
