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

A ``Lane`` (``CryptoPool.lane``) is work that need not be awaited block by block: the S3 API's
MD5 of an upload. Its blocks are hashed in order in a thread while the request goes on reading,
encrypting and writing the next ones, so the slowest step of an upload (MD5 runs at about
700 MB/s on this machine, AES-GCM at about 10 GB/s) runs beside the rest instead of between
its steps: with the upload's file writes also made behind it, a 64 MiB S3 PutObject (two in
flight) went from 0.47-0.51 to 0.59-0.64 of the streaming echo
(``bench/results/2026-12-05-vm-s3-lane.md``, ``bench/results/2026-12-05-vm-session.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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

    def lane(self, fn: Callable[[Chunk], object], *, weight: int = 1, max_pending_bytes: int) -> Lane:
        """An ordered lane of ``fn`` calls beside the caller (see ``Lane``); a block's work is
        ``weight`` per byte against the threshold, and at most ``max_pending_bytes`` wait."""
        return Lane(self, fn, weight=weight, max_pending_bytes=max_pending_bytes)

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        if self._on_depth is not None:
            self._on_depth(depth)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class Lane:
    """``fn`` called on each block fed to it, in order, in the pool's threads, while the caller
    goes on; ``finish`` waits for the last call and raises what a call raised.

    At most one job of a lane is in a thread at a time (so ``fn`` sees the blocks in order and
    never concurrently), and it takes every block fed since the last one started. A lane holds
    one of the pool's ``max_queued`` places from its first pooled block until it is idle again:
    ``feed`` raises ``PoolSaturated`` when none is free, as ``CryptoPool.run`` does. A block fed
    to an idle lane whose work is below the pool's threshold runs inline, like a small
    ``CryptoPool.run`` call. ``feed`` waits while ``max_pending_bytes`` already wait for a thread,
    so a slow ``fn`` holds the caller back instead of its memory growing. ``fn`` must own what
    it touches; ``close`` drops the blocks not yet started (a job in a thread finishes alone).
    """

    __slots__ = ("_pool", "_fn", "_weight", "_max_pending", "_pending", "_pending_bytes", "_job",
                 "_error", "_room", "_closed")

    def __init__(self, pool: CryptoPool, fn: Callable[[Chunk], object], *, weight: int,
                 max_pending_bytes: int) -> None:
        self._pool = pool
        self._fn = fn
        self._weight = weight
        self._max_pending = max_pending_bytes
        self._pending: list[Chunk] = []
        self._pending_bytes = 0
        self._job: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._room: asyncio.Future[None] | None = None
        self._closed = False

    async def feed(self, block: Chunk) -> None:
        """Queue ``block`` (the caller must not change it afterwards)."""
        if self._error is not None:
            raise self._error
        if self._job is None and len(block) * self._weight < self._pool.threshold_bytes:
            self._pool.inline_calls += 1
            self._fn(block)
            return
        self._pending.append(block)
        self._pending_bytes += len(block)
        if self._job is None:
            pool = self._pool
            if pool.depth >= pool.max_queued:
                self._pending.clear()
                self._pending_bytes = 0
                raise PoolSaturated("crypto pool queue is full")
            pool._set_depth(pool.depth + 1)
            self._start()
        while self._pending_bytes > self._max_pending and self._job is not None:
            await self._wait()
        if self._error is not None:
            raise self._error

    async def finish(self) -> None:
        """Wait until every block fed has been through ``fn``; raise what a call raised."""
        while self._job is not None:
            await self._wait()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Drop the blocks no job took yet."""
        self._closed = True
        self._pending.clear()
        self._pending_bytes = 0

    async def _wait(self) -> None:
        if self._room is None:
            self._room = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._room)

    def _start(self) -> None:
        blocks, self._pending, self._pending_bytes = self._pending, [], 0
        self._pool.pooled_calls += 1
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool._executor, self._run, blocks)
        job.add_done_callback(self._done)
        self._job = job

    def _run(self, blocks: list[Chunk]) -> None:
        fn = self._fn
        for block in blocks:
            fn(block)

    def _done(self, job: asyncio.Future[None] | Future[None]) -> None:
        self._job = None
        if job.cancelled():
            self._error = PoolSaturated("crypto pool stopped")
        elif (error := job.exception()) is not None:
            self._error = error
        if self._pending and self._error is None and not self._closed:
            self._start()
        else:
            self._pending.clear()
            self._pending_bytes = 0
            self._pool._set_depth(self._pool.depth - 1)
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)
