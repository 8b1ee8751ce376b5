"""The ``Storage`` seam: where the gateway keeps encrypted objects, and its typed errors.

A backend stores opaque bytes (AWS Encryption SDK messages) under an object key that the
gateway has already validated (see ``kmsgate.gateway.keys``). Contract every backend keeps:

* Writes stream through an ``ObjectWriter``: ``write(chunk)`` any number of times, then
  exactly one of ``commit()`` or ``abort()``. Memory held by a writer is bounded by a
  backend constant, never by the object size.
* ``commit()`` returning means durable and atomic: a reader sees either the previous object
  or the complete new one, never a prefix. ``abort()`` leaves nothing behind, and so does
  a writer whose ``write``/``commit`` raised (the backend cleans up before raising).
* Reads stream through an ``ObjectReader`` over the half-open byte range ``[start, end)``
  of the stored bytes; ``end`` past the object's size is clamped to the size.
* A missing object raises ``ObjectNotFound``; anything else that goes wrong in the
  backend raises ``StorageError`` (the gateway answers 502). Messages never contain
  object contents or credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

READ_CHUNK_BYTES = 256 * 1024
"""Preferred size of the chunks a reader yields (a backend may yield smaller ones)."""


class StorageError(Exception):
    """The backend failed; the operation may or may not be retried by the client."""


class ObjectNotFound(StorageError):
    """No object is stored under the key."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a backend knows about one stored object (sizes are of the stored bytes)."""

    key: str
    size: int
    etag: str
    last_modified: float
    """Seconds since the epoch."""


@runtime_checkable
class ObjectWriter(Protocol):
    """A streaming write in progress; finish it with ``commit`` or ``abort``."""

    @property
    def bytes_written(self) -> int: ...

    async def write(self, chunk: bytes | bytearray) -> None: ...

    async def commit(self) -> StoredObject: ...

    async def abort(self) -> None: ...


@runtime_checkable
class ObjectReader(Protocol):
    """A streaming read of ``[start, end)`` of one object; close it when done."""

    @property
    def info(self) -> StoredObject: ...

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class RangeReader:
    """The part every backend's ``ObjectReader`` shares: the object and the range it streams."""

    def __init__(self, info: StoredObject, start: int, end: int) -> None:
        self._info = info
        self._start = start
        self._end = end

    @property
    def info(self) -> StoredObject:
        return self._info

    @property
    def start(self) -> int:
        return self._start

    @property
    def end(self) -> int:
        return self._end


@runtime_checkable
class Storage(Protocol):
    """A place for encrypted objects. One module per backend implements this."""

    name: str
    """Short backend name for logs and readiness output (``file``, ``s3``)."""

    async def open_write(self, key: str) -> ObjectWriter: ...

    async def open_read(
        self, key: str, start: int | None = None, end: int | None = None
    ) -> ObjectReader:
        """Open ``[start, end)``; ``None`` means the object's beginning / end.

        Raises ``ObjectNotFound`` before any byte is produced when the key is absent.
        """
        ...

    async def head(self, key: str) -> StoredObject: ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object succeeds."""
        ...

    async def check(self) -> None:
        """Raise ``StorageError`` unless the backend is reachable and writable."""
        ...

    async def close(self) -> None: ...


def resolve_range(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """Clamp a requested half-open range to an object of ``size`` bytes.

    A start at or past the end gives an empty range. Raises ``ValueError`` for negative
    bounds (a caller bug: the gateway computes ranges itself).
    """
    lo = 0 if start is None else start
    hi = size if end is None else min(end, size)
    if lo < 0 or hi < 0:
        raise ValueError("range bounds must be non-negative")
    lo = min(lo, hi)
    return lo, hi
