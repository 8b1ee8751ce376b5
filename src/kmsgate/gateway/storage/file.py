"""The ``file`` storage backend: durable objects under a local directory.

Layout under ``root``::

    objects/<h[0:2]>/<h[2:4]>/<h>     the stored bytes of the object whose key hashes to h
    tmp/<h>.<16 hex random>.part       writes in progress (same file system, so rename is atomic)

``h`` is the lowercase hex SHA-256 of the object key's UTF-8 bytes. Paths are derived
only from that digest, so no key, however hostile (``..``, ``/``, NUL, 1 KiB long), can
name a path outside ``root`` or collide with another key's file; keys ``a`` and ``a/b``
coexist, as they do in S3.

Durability: a write goes to a fresh temporary file; ``commit`` writes the rest, fsyncs the
file, renames it over the final name and fsyncs the directory (and the parents of any
directory it had to create). Until the rename a reader sees the previous object; after
``commit`` returns the new one survives a crash. A failed or aborted write unlinks its
temporary file. Temporary files older than ``STALE_TMP_SECONDS`` are left-overs of a
crash and are removed when the backend opens.

All blocking file-system calls run in the default thread pool, never on the event loop.
Writes are gathered (by reference, not copied) up to ``WRITE_BUFFER_BYTES`` and written with
one ``writev``, so that a small object costs one thread hop for the whole commit; after each
write the kernel is asked to start writing those pages back, so a large object's disk writes
overlap its upload instead of all waiting for the fsync at commit. Reads go in blocks of ``READ_BLOCK_BYTES`` (a thread
hand-off costs 50-100 us, as much as reading 256 KiB from the page cache, so blocks are
larger than the storage seam's preferred chunk); the first block is read by the same thread
call that opens the file, so an object of at most one block costs one hop.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from kmsgate.gateway.storage.base import (
    ObjectNotFound,
    RangeReader,
    StorageError,
    StoredObject,
    resolve_range,
)

WRITE_BUFFER_BYTES = 1024 * 1024
READ_BLOCK_BYTES = 1024 * 1024
STALE_TMP_SECONDS = 24 * 3600

T = TypeVar("T")


class _Serial:
    """Runs blocking calls for one file descriptor in the thread pool, one at a time.

    A cancelled caller does not stop a call already in a thread; ``drain`` waits for it, so
    the descriptor is never closed (and its number reused) under a running ``write``/``pread``.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: asyncio.Future[Any] | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._pending = fut
        return await fut

    async def drain(self) -> None:
        fut, self._pending = self._pending, None
        if fut is not None and not fut.done():
            await asyncio.wait([fut])


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _etag(st: os.stat_result) -> str:
    token = f"{st.st_ino:x}:{st.st_mtime_ns:x}:{st.st_size:x}".encode()
    return hashlib.sha256(token).hexdigest()[:32]


def _info(key: str, st: os.stat_result) -> StoredObject:
    return StoredObject(key=key, size=st.st_size, etag=_etag(st), last_modified=st.st_mtime)


_MAX_IOV = 1024  # IOV_MAX on Linux
_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages in the range, do not wait
_sync_file_range: Any
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _sync_file_range = _libc.sync_file_range
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    _sync_file_range.restype = ctypes.c_int
except (AttributeError, OSError):  # pragma: no cover - not Linux
    _sync_file_range = None


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``[offset, offset + length)`` to disk now (Linux
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)``). Only a hint that spreads the disk work over
    the upload: durability still comes from the fsync at commit. A no-op where unavailable."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: Path, stop: Path) -> None:
    """Create ``path`` and missing parents below ``stop``, fsyncing each new entry's parent."""
    missing: list[Path] = []
    cur = path
    while cur != stop and not cur.is_dir():
        missing.append(cur)
        cur = cur.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(d.parent)


class FileObjectWriter:
    """Streams one object into a temporary file; see the module docstring."""

    def __init__(self, storage: FileStorage, key: str) -> None:
        self._storage = storage
        self._key = key
        self._digest = _digest(key)
        self._tmp_path = storage.tmp_dir / f"{self._digest}.{secrets.token_hex(8)}.part"
        self._fd: int | None = None
        self._pending: list[bytes | bytearray | memoryview] = []
        self._pending_bytes = 0
        self._flushed = 0  # bytes in the file so far
        self._written = 0
        self._done = False
        self._serial = _Serial()

    @property
    def bytes_written(self) -> int:
        return self._written

    def _take_pending(self) -> list[bytes | bytearray | memoryview]:
        chunks, self._pending, self._pending_bytes = self._pending, [], 0
        return chunks

    def _flush_sync(self, chunks: list[bytes | bytearray | memoryview], writeback: bool = True) -> None:
        """Write ``chunks`` (one ``writev`` when the kernel takes them whole) and start their
        writeback, so that the fsync at commit finds little left to write."""
        if self._fd is None:
            self._fd = os.open(self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        start = self._flushed
        views = [memoryview(c).cast("B") for c in chunks if len(c)]
        while views:
            n = os.writev(self._fd, views[:_MAX_IOV])
            self._flushed += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if n:
                views[0] = views[0][n:]
        if writeback and self._flushed > start:
            _start_writeback(self._fd, start, self._flushed - start)

    def _commit_sync(self, chunks: list[bytes | bytearray | memoryview]) -> StoredObject:
        self._flush_sync(chunks, writeback=False)  # the fsync below writes these at once
        assert self._fd is not None  # _flush_sync opened it
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        final = self._storage.object_path(self._key)
        _makedirs_durable(final.parent, self._storage.objects_dir)
        os.rename(self._tmp_path, final)
        _fsync_dir(final.parent)
        return _info(self._key, os.stat(final))

    def _cleanup_sync(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None
        try:
            os.unlink(self._tmp_path)
        except FileNotFoundError:
            pass

    async def write(self, chunk: bytes | bytearray) -> None:
        """Take ``chunk``; it is kept by reference until written, so the caller hands over a
        buffer it does not change afterwards (the encryptor returns a fresh one per call)."""
        if self._done:
            raise StorageError("write after commit or abort")
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        self._written += len(chunk)
        if self._pending_bytes >= WRITE_BUFFER_BYTES:
            try:
                await self._serial.run(self._flush_sync, self._take_pending())
            except OSError as exc:
                await self.abort()
                raise StorageError(f"file storage write failed: {exc.strerror}") from exc

    async def commit(self) -> StoredObject:
        if self._done:
            raise StorageError("commit after commit or abort")
        try:
            info = await self._serial.run(self._commit_sync, self._take_pending())
        except OSError as exc:
            await self.abort()
            raise StorageError(f"file storage commit failed: {exc.strerror}") from exc
        self._done = True
        return info

    async def abort(self) -> None:
        self._done = True
        self._take_pending()
        await self._serial.drain()
        await asyncio.to_thread(self._cleanup_sync)


class FileObjectReader(RangeReader):
    """Reads ``[start, end)`` of an open file descriptor in thread-pool chunks."""

    def __init__(self, fd: int, info: StoredObject, start: int, end: int, first: bytes = b"") -> None:
        """``first``: the bytes from ``start`` already read (by the call that opened ``fd``)."""
        super().__init__(info, start, end)
        self._fd: int | None = fd
        self._first = first
        self._serial = _Serial()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pos = self._start
        try:
            if self._first:
                first, self._first = self._first, b""
                pos += len(first)
                yield first
            while pos < self._end and self._fd is not None:
                want = min(READ_BLOCK_BYTES, self._end - pos)
                try:
                    chunk = await self._serial.run(os.pread, self._fd, want, pos)
                except OSError as exc:
                    raise StorageError(f"file storage read failed: {exc.strerror}") from exc
                if not chunk:
                    raise StorageError("file storage read ended early")
                pos += len(chunk)
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            await self._serial.drain()
            os.close(fd)


def _close_unclaimed(fut: asyncio.Future[FileObjectReader]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        reader = fut.result()
        if reader._fd is not None:
            os.close(reader._fd)
            reader._fd = None


class FileStorage:
    """Objects as files under ``root`` (created if missing)."""

    name = "file"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.objects_dir = self.root / "objects"
        self.tmp_dir = self.root / "tmp"
        try:
            self.objects_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage directory: {exc.strerror}") from exc
        self._remove_stale_tmp()

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        for entry in os.scandir(self.tmp_dir):
            try:
                if entry.name.endswith(".part") and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue

    def object_path(self, key: str) -> Path:
        """The file that holds ``key``; always inside ``objects_dir``."""
        h = _digest(key)
        return self.objects_dir / h[0:2] / h[2:4] / h

    async def open_write(self, key: str) -> FileObjectWriter:
        return FileObjectWriter(self, key)

    def _open_sync(self, key: str, start: int | None, end: int | None) -> FileObjectReader:
        """Open, stat and read the first block, in one thread call."""
        try:
            fd = os.open(self.object_path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageError(f"file storage open failed: {exc.strerror}") from exc
        try:
            info = _info(key, os.fstat(fd))
            lo, hi = resolve_range(info.size, start, end)
            first = os.pread(fd, min(READ_BLOCK_BYTES, hi - lo), lo) if hi > lo else b""
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"file storage read failed: {exc.strerror}") from exc
        except BaseException:
            os.close(fd)
            raise
        return FileObjectReader(fd, info, lo, hi, first)

    async def open_read(
        self, key: str, start: int | None = None, end: int | None = None
    ) -> FileObjectReader:
        fut = asyncio.get_running_loop().run_in_executor(None, self._open_sync, key, start, end)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(_close_unclaimed)  # the open finishes in its thread: close what it opened
            raise

    def _head_sync(self, key: str) -> StoredObject:
        try:
            return _info(key, os.stat(self.object_path(key)))
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageError(f"file storage stat failed: {exc.strerror}") from exc

    async def head(self, key: str) -> StoredObject:
        return await asyncio.to_thread(self._head_sync, key)

    def _delete_sync(self, key: str) -> None:
        path = self.object_path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"file storage delete failed: {exc.strerror}") from exc
        _fsync_dir(path.parent)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete_sync, key)

    def _check_sync(self) -> None:
        probe = self.tmp_dir / f"ready.{secrets.token_hex(8)}.part"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StorageError(f"file storage not writable: {exc.strerror}") from exc

    async def check(self) -> None:
        await asyncio.to_thread(self._check_sync)

    async def close(self) -> None:
        return None
