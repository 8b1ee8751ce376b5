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

A server needs two more things, which ``CryptoPool`` also does: at most ``max_queued`` jobs
may be submitted and not yet finished (one more raises ``PoolSaturated`` at once, so that the
gateway answers 503 with ``Retry-After`` instead of letting memory and latency grow), and a
request cancelled while its job runs still waits for the job, because the job uses the
request's encryptor or decryptor until it returns. ``on_depth`` hears every change of the
number of jobs in the threads (the gateway's queue-depth gauge).

Each job's ``fn`` must only touch objects owned by the calling request (one ``Encryptor``
or ``Decryptor``), which the request never uses concurrently; shared state such as the
data-key cache is updated by the caller on the event loop.
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
MAX_QUEUED_PER_WORKER = 16


class PoolSaturated(Exception):
    """Too many crypto jobs are waiting; shed load."""


class CryptoPool:
    """Runs ``fn(data)`` inline or in a thread, by the size of ``data``. Calls on one
    encryptor or decryptor must still be awaited one at a time (they are not thread-safe)."""

    def __init__(self, *, threshold_bytes: int = THRESHOLD_BYTES, max_workers: int = MAX_WORKERS,
                 max_queued: int | None = None, on_depth: Callable[[int], None] | None = None) -> None:
        if threshold_bytes < 0 or max_workers < 1 or (max_queued is not None and max_queued < 1):
            raise ValueError("threshold must be >= 0, workers >= 1 and max_queued >= 1")
        self.threshold_bytes = threshold_bytes
        self.max_queued = max_queued if max_queued is not None else max_workers * MAX_QUEUED_PER_WORKER
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kmsgate-aead")
        self._on_depth = on_depth
        self._depth = 0
        self.inline_calls = 0
        self.pooled_calls = 0

    @property
    def depth(self) -> int:
        """Jobs submitted to the threads and not yet finished."""
        return self._depth

    async def run(self, fn: Callable[[Chunk], T], data: Chunk, *, weight: int | None = None) -> T:
        """``fn(data)``: inline when the work (``len(data)``, or ``weight`` for a call that drains
        bytes buffered inside ``fn``'s object) is below the threshold, else in a worker thread."""
        if (len(data) if weight is None else weight) < self.threshold_bytes:
            self.inline_calls += 1
            return fn(data)
        if self._depth >= self.max_queued:
            raise PoolSaturated("crypto pool queue is full")
        self._set_depth(self._depth + 1)
        self.pooled_calls += 1
        try:
            job = asyncio.get_running_loop().run_in_executor(self._executor, fn, data)
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                await asyncio.wait([job])  # the caller's objects are in use until the thread is done
                raise
        finally:
            self._set_depth(self._depth - 1)

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        if self._on_depth is not None:
            self._on_depth(depth)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
