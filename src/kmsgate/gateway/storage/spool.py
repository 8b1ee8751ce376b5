"""Bytes of a write whose length is not known, kept in memory while few and on disk beyond that.

The s3 backend sends an upstream request only once it knows the request's length. A body of
unknown length is therefore held until a part (or the object) is complete. A ``Spool`` keeps
up to ``MEMORY_BYTES`` in memory (most objects end there, and no file is made), then moves them
to an anonymous temporary file (removed by the system when closed, even after a crash) in the
system's temporary directory, and appends the rest there: a writer's memory stays at most
``MEMORY_BYTES`` plus one chunk whatever the part size. ``body()`` gives what was spooled, as
bytes or as the file rewound, for an upstream request that reads it in chunks as it sends it.
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import BinaryIO

MEMORY_BYTES = 256 * 1024
"""Bytes a spool holds in memory before it moves to a temporary file."""


class Spool:
    """Bytes appended until they are sent; ``clear`` to start again, ``close`` when done."""

    def __init__(self) -> None:
        self._memory = bytearray()
        self._file: BinaryIO | None = None
        self.size = 0

    @property
    def memory_bytes(self) -> int:
        """Bytes held in memory now."""
        return len(self._memory)

    async def write(self, data: bytes | bytearray) -> None:
        self.size += len(data)
        if self._file is None and len(self._memory) + len(data) <= MEMORY_BYTES:
            self._memory += data
            return
        if self._file is None:
            self._file = await asyncio.to_thread(tempfile.TemporaryFile)
        if self._memory:
            data, self._memory = bytes(self._memory) + data, bytearray()
        await asyncio.to_thread(self._file.write, data)

    async def body(self) -> bytes | BinaryIO:
        """Everything spooled: bytes, or the temporary file at its start (read it, never close it)."""
        if self._file is None:
            return bytes(self._memory)
        file = self._file
        await asyncio.to_thread(file.flush)
        file.seek(0)
        return file

    async def clear(self) -> None:
        self._memory = bytearray()
        self.size = 0
        if self._file is not None:
            file = self._file
            file.seek(0)
            await asyncio.to_thread(file.truncate)

    def close(self) -> None:
        self._memory = bytearray()
        self.size = 0
        file, self._file = self._file, None
        if file is not None:
            file.close()
