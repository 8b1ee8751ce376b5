"""Blocking file primitives of the file backend: serialised thread calls, durable directories, writeback hints."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MAX_IOV = 1024  # IOV_MAX on Linux
_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages in the range, do not wait
_sync_file_range: Any
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _sync_file_range = _libc.sync_file_range
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    _sync_file_range.restype = ctypes.c_int
except (AttributeError, OSError):  # pragma: no cover - not Linux
    _sync_file_range = None


class Serial:
    """Runs blocking calls for one file descriptor in the thread pool, one at a time.

    ``run`` waits for its call; ``start`` leaves it running while the caller goes on (a write
    behind the upload), and the next ``run``, ``wait`` or ``start`` first waits for it. A
    cancelled caller does not stop a call already in a thread; ``drain`` waits for it, so the
    descriptor is never closed (and its number reused) under a running ``write``/``pread``.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: asyncio.Future[Any] | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        await self.wait()
        fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._pending = fut
        try:
            result: T = await asyncio.shield(fut)
        finally:
            if self._pending is fut and fut.done():  # its caller has the outcome
                self._pending = None
        return result

    async def wait(self) -> None:
        """Wait for the call in a thread, if any; raise what it raised."""
        fut = self._pending
        if fut is not None:
            try:
                await asyncio.shield(fut)
            finally:
                if self._pending is fut and fut.done():  # reported once; a cancelled waiter leaves it to drain
                    self._pending = None

    def start(self, fn: Callable[..., object], *args: object) -> None:
        """Start ``fn(*args)`` in a thread and return; only after ``wait`` (one call at a time)."""
        if self._pending is not None and not self._pending.done():
            raise RuntimeError("a call is still running")
        self._pending = asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def drain(self) -> None:
        """Wait for the call in a thread, if any, whatever it raised."""
        fut, self._pending = self._pending, None
        if fut is not None and not fut.done():
            await asyncio.wait([fut])


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``[offset, offset + length)`` to disk now (Linux
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)``). Only a hint that spreads the disk work over
    the upload: durability still comes from the fsync at commit. A no-op where unavailable."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def write_all(fd: int, chunks: Sequence[bytes | bytearray | memoryview]) -> int:
    """Write ``chunks`` in order with as few ``writev`` calls as the kernel allows; return the count."""
    views = [memoryview(c).cast("B") for c in chunks if len(c)]
    total = 0
    while views:
        n = os.writev(fd, views[:MAX_IOV])
        total += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]
    return total


_CREATE_ATTEMPTS = 3


def create_owned(path: Path) -> int:
    """Create ``path`` (it must not exist) for writing and return its descriptor, which holds a
    shared ``flock`` on the file for as long as it is open: the mark of a live writer, which the
    kernel drops when the writer closes it or dies however it dies (``kill -9`` included).

    ``remove_unowned`` may lock and remove the file between its creation and this lock; then
    the path no longer names the locked file, and the file is created again."""
    for _ in range(_CREATE_ATTEMPTS):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise FileExistsError(f"{path.name} was removed as soon as it was created")


def remove_unowned(path: str) -> bool:
    """Remove ``path`` unless a live writer holds it (see ``create_owned``); True if removed.
    What cannot be opened as a file (gone meanwhile, a symlink, not readable) is left alone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.unlink(path)
        return True
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durable(path: Path, stop: Path) -> None:
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
        fsync_dir(d.parent)


def unlink_quietly(paths: Sequence[Path]) -> None:
    """Remove files nobody references any more, after the catalog commit that dropped them.

    That commit was the acknowledgment point, so a failure here must not turn the operation
    into an error: what stays behind is an orphan, which the sweep at open removes."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            continue
