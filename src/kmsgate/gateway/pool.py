"""The crypto thread pool: large AES-GCM work off the event loop, small work inline, bounded queue.

``CryptoPool.run(fn, data)`` calls ``fn(data)`` inline when ``len(data)`` is below
``inline_bytes``, otherwise in a thread pool of ``workers`` threads. The default threshold
is the envelope core's measured one (``kmsgate.envelope.pool.THRESHOLD_BYTES``, 2 MiB on the
2-core machine: a hand-off costs 50-100 us, AES-GCM of 256 KiB about 35 us), so there is one
policy for where AES-GCM runs; this class adds what a server needs on top of it. At most ``max_queued`` jobs may be submitted and not
finished at once; one more raises ``PoolSaturated`` at once, which the gateway answers with
503 and ``Retry-After`` instead of letting memory and latency grow without bound. AES-GCM
in OpenSSL releases the GIL, so threads scale on several cores.

Each job's ``fn`` must only touch objects owned by the calling request (one ``Encryptor``
or ``Decryptor``), which the request never uses concurrently; shared state such as the
data-key cache is updated by the caller on the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from kmsgate.envelope.pool import THRESHOLD_BYTES

T = TypeVar("T")

DEFAULT_INLINE_BYTES = THRESHOLD_BYTES
DEFAULT_MAX_QUEUED_PER_WORKER = 16


class PoolSaturated(Exception):
    """Too many crypto jobs are waiting; shed load."""


class CryptoPool:
    def __init__(self, *, workers: int | None = None, inline_bytes: int = DEFAULT_INLINE_BYTES,
                 max_queued: int | None = None, on_depth: Callable[[int], None] | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.inline_bytes = inline_bytes
        self.max_queued = max_queued if max_queued is not None else self.workers * DEFAULT_MAX_QUEUED_PER_WORKER
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="kmsgate-crypto")
        self._depth = 0
        self._on_depth = on_depth
        self.pooled_calls = 0
        """Jobs handed to the threads so far (inline calls are not counted)."""

    @property
    def depth(self) -> int:
        """Jobs submitted to the threads and not yet finished."""
        return self._depth

    async def run(self, fn: Callable[[bytes], T], data: bytes, *, weight: int | None = None) -> T:
        """``weight`` overrides ``len(data)`` as the work estimate (for a call that drains
        bytes buffered inside ``fn``'s object)."""
        if (len(data) if weight is None else weight) < self.inline_bytes:
            return fn(data)
        if self._depth >= self.max_queued:
            raise PoolSaturated("crypto pool queue is full")
        self._set_depth(self._depth + 1)
        self.pooled_calls += 1
        try:
            fut = asyncio.get_running_loop().run_in_executor(self._executor, fn, data)
            # The caller's objects stay in use until the thread finishes, even if the
            # request is cancelled meanwhile; so wait for the job before propagating.
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                await asyncio.wait([fut])
                raise
        finally:
            self._set_depth(self._depth - 1)

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        if self._on_depth is not None:
            self._on_depth(depth)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
