"""Upstream requests of the s3 backend whose body is sent as it is produced, never held whole.

A ``StreamedCall`` starts one upstream request (``PutObject`` or ``UploadPart``) with a body of
exactly ``length`` bytes, declared up front as its ``Content-Length``, and the writer feeds the
body chunk by chunk. At most ``PIPE_CHUNKS`` chunks wait between the writer and the connection:
``feed`` waits while they do, so the client's body is read only as fast as the upstream takes it,
and a writer holds a few chunks whatever the object size.

An upstream stores a request only once it received every byte its ``Content-Length`` declared.
So a writer that keeps the last chunk back until it commits, and ``cancel``s on failure (the
connection closes mid-body), leaves nothing behind. The body cannot be replayed: an upstream
error is the writer's failure, never a resend (``S3Storage.streaming_client`` makes one attempt).

The upstream client must not read the body before sending it: payload signing off
(``UNSIGNED-PAYLOAD``, as S3 does itself over TLS) and request checksums only when an operation
requires one (``PutObject`` and ``UploadPart`` do not); see ``S3Storage.open``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kmsgate.gateway.storage.base import StorageError

PIPE_CHUNKS = 2
"""Chunks that may wait in a body between the writer and the upstream connection."""


class StreamBody:
    """A request body of ``length`` bytes, iterated by the HTTP client as the writer feeds it."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.queued_bytes = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(PIPE_CHUNKS)

    def read(self, size: int = -1) -> bytes:
        """Never called: botocore accepts a body that has ``read``; aiohttp iterates this one."""
        raise io.UnsupportedOperation("a streamed body is iterated, not read")

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.length:
            chunk = await self._queue.get()
            self.queued_bytes -= len(chunk)
            sent += len(chunk)
            yield chunk

    async def put(self, chunk: bytes) -> None:
        self.queued_bytes += len(chunk)
        await self._queue.put(chunk)


class StreamedCall:
    """One upstream request, started now, whose body of ``length`` bytes the caller feeds."""

    def __init__(self, length: int, call: Callable[[StreamBody], Awaitable[dict[str, Any]]]) -> None:
        self.body = StreamBody(length)
        self.fed = 0
        self._task: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(call(self.body))

    @property
    def remaining(self) -> int:
        return self.body.length - self.fed

    @property
    def held_bytes(self) -> int:
        """Bytes fed and not yet taken by the connection."""
        return self.body.queued_bytes

    async def feed(self, chunk: bytes) -> None:
        """Add ``chunk`` to the body, waiting while ``PIPE_CHUNKS`` wait; raises the request's own
        error if it ended first."""
        if len(chunk) > self.remaining:
            raise StorageError("s3 streamed body longer than declared")
        self.fed += len(chunk)
        put: asyncio.Future[Any] = asyncio.ensure_future(self.body.put(chunk))
        waiting: set[asyncio.Future[Any]] = {put, self._task}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            put.cancel()
            raise
        if not put.done():
            put.cancel()
            await self._task  # raises its error
            raise StorageError("s3 upstream answered before the body was sent")

    async def result(self) -> dict[str, Any]:
        """The upstream's answer, once every byte was fed."""
        if self.remaining:
            raise StorageError("s3 streamed body shorter than declared")
        return await self._task

    async def cancel(self) -> None:
        """Abandon the request: the connection closes before the body ends, so nothing is stored."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # its outcome no longer matters
            await self._task
