"""Where AES-GCM work runs: inline below a size threshold, in a thread pool above it.

pyca/cryptography releases the GIL while AES-GCM runs, so large ``update`` calls in
worker threads use the other cores and keep the event loop responsive. Small ones
run inline: handing work to a pool costs tens of microseconds of scheduling, more
than AES-GCM needs for a few KiB. ``THRESHOLD_BYTES`` comes from
``bench/envelope_threadpool.py``, which measures the hand-off cost and the AES-GCM
rate on the machine and reports the size at which the work costs several hand-offs.
The encryptor and decryptor write into one output buffer per call with
``encrypt_into``/``decrypt_into``, which avoids the allocator churn that makes pools of
plain ``encrypt()`` calls collapse under many large results in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
Chunk = bytes | bytearray | memoryview

THRESHOLD_BYTES = 256 * 1024
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
        if len(data) < self.threshold_bytes:
            self.inline_calls += 1
            return fn(data)
        self.pooled_calls += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, data)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
