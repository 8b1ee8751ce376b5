"""The ``file`` storage backend: buckets of durable objects under a local directory.

Layout under ``root``::

    catalog.sqlite3                 the catalog (``kmsgate.gateway.storage.catalog``): buckets,
                                    configs, objects, uploads and parts, and which data files
                                    hold each object's bytes (or the bytes themselves, for a
                                    small object kept inline)
    catalog-key.bin                 the wrapped catalog key (0600), written once: to a
                                    temporary file, fsync'd, then hard-linked to its name (which
                                    fails if another process linked it first; that one is kept)
    data/<n[0:2]>/<n>               one data file: a whole object or one part, ``n`` 32 random hex
    tmp/<n>.part                    writes in progress (same file system, so rename is atomic),
                                    each held open with a shared ``flock`` by its writer
    objects/<h[0:2]>/<h[2:4]>/<h>   objects of the previous layout (one flat namespace, ``h`` the
                                    SHA-256 of the key). They are not in the catalog, so no API
                                    lists or reads them, and nothing here deletes them: each is a
                                    complete message that ``/v1/decrypt`` can still decrypt.

Data file names are random, never derived from a bucket or key, so no name however hostile
(``..``, ``/``, NUL, 1 KiB long) can name a path outside ``root``, and two versions of one key
never share a file.

Durability and crash safety: a write goes to a fresh temporary file; ``commit`` writes the
rest, fsyncs it, renames it to its data file name and fsyncs the directory (and the parents of
any directory it had to create); THEN commits the catalog row that names it (the
acknowledgment point; readers see the new version from then on); then unlinks the replaced
version's files. Catalog rows are committed in groups (``kmsgate.gateway.storage.group_commit``):
the rows of the writers that reach that step while one catalog transaction commits go in the
next one, so concurrent writes share one durable ``COMMIT``, and each writer returns only
after the commit that holds its row. With 64 concurrent 1 KiB S3 PUTs this took the server's
CPU time per PUT from about 1,630 to 1,050-1,140 us (one durable commit, not one per object,
and no threads waiting their turn on the catalog's lock).

Small objects are kept inline: an object written whole whose stored bytes (at most
``INLINE_MAX_BYTES``) are all still in the writer's buffer at commit gets no data file. Its
bytes go into its catalog row (``ObjectRecord.data``), committed by the same group commit, so
the one durable ``COMMIT`` that acknowledges the row is the one that makes the bytes durable:
no file to create, write, fsync, rename and fsync the directory of, nor to unlink when the
object is replaced, and no thread hop of its own. Reads, ranges, copies and deletes see the
same object either way; a crash leaves nothing of an unacknowledged inline write. Parts of
multipart uploads always go to data files (a completed upload names them in order). With 64
concurrent 1 KiB S3 PUTs of one key (``wrk``, one worker) this took the server's CPU time per
PUT from about 1,140 to 470-740 us on the busy 2-core development machine (no fsync of a file
and of its directory per object, no unlink of the replaced version's file).

A crash before the catalog commit leaves the old version visible and an unreferenced data
file; a crash after it leaves the new version and the old files unreferenced. At open,
temporary files whose writer is gone (no process holds their lock: a writer keeps its file
open and locked until it is renamed, and the kernel drops the lock of a killed process) and
data files that the catalog does not name and that are older than ``ORPHAN_GRACE_SECONDS``
(another process may be between its rename and its catalog commit) are removed. A completed multipart upload keeps its part files,
named in order by the object's row: completing copies nothing.

A read looks the object up in the catalog, in a thread hand-off shared with the lookups of the
reads that arrived meanwhile (``GroupCommit``, used for reads). An object kept in its row is
then served from it; any other has its first data file opened and first block read in one more
thread call, and a version replaced in between is looked up again. The data files of a
multipart object are opened one after the other as the read reaches them: if the object is
replaced or deleted meanwhile, the read fails with ``StorageError`` (each file belongs to one
version, so a read never mixes two).

All blocking calls (files, the catalog) run in the default thread pool, never on the event
loop. Writes are gathered (by reference, not copied) up to ``WRITE_BUFFER_BYTES`` and written
with one ``writev``, so that a small object costs one thread hop for the whole write. A full
buffer is written behind the upload (the next one fills meanwhile; at most one write is in a
thread, and the next full buffer or the commit waits for it), and after each write the kernel is
asked to start writing those pages back, so a large object's disk writes overlap its upload
instead of all waiting for the fsync at commit. Reads go in blocks of
``READ_BLOCK_BYTES`` (a thread hand-off costs 50-100 us, as much as reading 256 KiB from the
page cache, so blocks are larger than the storage seam's preferred chunk).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from functools import partial
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

from kmsgate.gateway.storage.base import (
    MAX_BUCKET_CONFIG_BYTES,
    MAX_LIST_KEYS,
    BucketInfo,
    InvalidArgument,
    NoSuchUpload,
    ObjectPage,
    PartInfo,
    RangeReader,
    StorageError,
    StoredObject,
    UploadInfo,
    os_failure,
    check_catalog_key,
    check_completion,
    check_metadata,
    check_sealed_etag,
    check_part_metadata,
    check_part_number,
    resolve_range,
    validate_bucket_name,
    validate_config_name,
)
from kmsgate.gateway.storage.catalog import CATALOG_KEY_FILENAME, Catalog, CatalogWrite, ObjectRecord, PartRecord
from kmsgate.gateway.storage.fileio import (
    Serial,
    create_owned,
    fsync_dir,
    makedirs_durable,
    remove_unowned,
    start_writeback,
    unlink_quietly,
    write_all,
)
from kmsgate.gateway.storage.group_commit import GroupCommit
from kmsgate.gateway.storage.listing import list_page, prefix_end

WRITE_BUFFER_BYTES = 1024 * 1024
"""Bytes gathered before a write; one more such buffer may be in a thread being written meanwhile."""
INLINE_MAX_BYTES = 64 * 1024
"""An object written whole of at most this many stored bytes is kept in its catalog row."""
READ_BLOCK_BYTES = 1024 * 1024
ORPHAN_GRACE_SECONDS = 3600
"""A data file the catalog does not name is removed at open only once it is this old."""
_OPEN_ATTEMPTS = 3

R = TypeVar("R")


def _new_name() -> str:
    return secrets.token_hex(16)


class _DataFileWriter(Generic[R]):
    """Streams one data file into a temporary file; ``_record`` commits it to the catalog."""

    def __init__(self, storage: FileStorage) -> None:
        self._storage = storage
        self._name = _new_name()
        self._tmp_path = storage.tmp_dir / f"{self._name}.part"
        self._fd: int | None = None
        self._pending: list[bytes | bytearray | memoryview] = []
        self._pending_bytes = 0
        self._flushed = 0  # bytes in the file so far
        self._written = 0
        self._done = False
        self._serial = Serial()

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
            self._fd = create_owned(self._tmp_path)
        start = self._flushed
        self._flushed += write_all(self._fd, chunks)
        if writeback and self._flushed > start:
            start_writeback(self._fd, start, self._flushed - start)

    def _record(self, size: int, now: float) -> tuple[R, CatalogWrite]:
        """The result, and the catalog write that commits the data file ``self._name``."""
        raise NotImplementedError

    def _record_inline(self, data: bytes, now: float) -> tuple[R, CatalogWrite] | None:
        """The result, and the catalog write that keeps ``data`` (everything written) in the
        catalog itself; ``None`` when this writer's bytes always go to a data file."""
        return None

    def _inline_write(self, now: float) -> tuple[R, CatalogWrite] | None:
        """``_record_inline`` of the buffered bytes, when nothing went to a file and they are few."""
        if self._fd is not None or self._flushed or self._pending_bytes > self._storage.inline_max_bytes:
            return None
        return self._record_inline(b"".join(self._pending), now)

    def _persist_sync(self, chunks: list[bytes | bytearray | memoryview]) -> None:
        """Write the rest, fsync the file, rename it to its data file name and fsync the directory
        (the file stays open, so locked, until it no longer has its temporary name)."""
        self._flush_sync(chunks, writeback=False)  # the fsync below writes these at once
        fd = self._fd
        if fd is None:  # pragma: no cover - _flush_sync opened it
            raise StorageError("file storage writer lost its file")
        os.fsync(fd)
        final = self._storage.data_path(self._name)
        makedirs_durable(final.parent, self._storage.data_dir)
        os.rename(self._tmp_path, final)
        os.close(fd)
        self._fd = None
        fsync_dir(final.parent)

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
            try:  # written behind: the next buffer fills while this one goes to the file
                await self._serial.wait()
                self._serial.start(self._flush_sync, self._take_pending())
            except OSError as exc:
                await self.abort()
                raise os_failure(exc, "file storage write failed") from exc

    async def commit(self) -> R:
        if self._done:
            raise StorageError("commit after commit or abort")
        try:
            await self._serial.wait()
            inline = self._inline_write(time.time())
            if inline is not None:
                self._take_pending()
                result, write = inline
            else:
                await self._serial.run(self._persist_sync, self._take_pending())
                result, write = self._record(self._flushed, time.time())
            await self._storage.record(write)
        except OSError as exc:
            await self.abort()
            raise os_failure(exc, "file storage commit failed") from exc
        except BaseException:
            await self.abort()
            raise
        self._done = True
        return result

    async def abort(self) -> None:
        self._done = True
        self._take_pending()
        await self._serial.drain()
        await asyncio.to_thread(self._cleanup_sync)


class FileObjectWriter(_DataFileWriter[StoredObject]):
    """Streams one object; see the module docstring."""

    def __init__(self, storage: FileStorage, bucket: str, key: str, metadata: bytes) -> None:
        super().__init__(storage)
        self._bucket = bucket
        self._key = key
        self._metadata = metadata
        self._sealed_etag = b""

    async def commit(self, metadata: bytes | None = None, sealed_etag: bytes = b"") -> StoredObject:
        try:
            if metadata is not None:
                self._metadata = check_metadata(metadata)
            self._sealed_etag = check_sealed_etag(sealed_etag)
        except BaseException:
            await self.abort()
            raise
        return await super().commit()

    def _record(self, size: int, now: float) -> tuple[StoredObject, CatalogWrite]:
        info = StoredObject(bucket=self._bucket, key=self._key, size=size, etag=self._name,
                            last_modified=now, metadata=self._metadata, sealed_etag=self._sealed_etag)
        return info, ObjectRecord(info, (self._name,))

    def _record_inline(self, data: bytes, now: float) -> tuple[StoredObject, CatalogWrite]:
        info = StoredObject(bucket=self._bucket, key=self._key, size=len(data), etag=self._name,
                            last_modified=now, metadata=self._metadata, sealed_etag=self._sealed_etag)
        return info, ObjectRecord(info, (), data)


class FilePartWriter(_DataFileWriter[PartInfo]):
    """Streams one part of a multipart upload."""

    def __init__(self, storage: FileStorage, bucket: str, key: str, upload_id: str, part_number: int) -> None:
        super().__init__(storage)
        self._bucket = bucket
        self._key = key
        self._upload_id = upload_id
        self._part_number = part_number
        self._metadata = b""

    async def commit(self, metadata: bytes = b"") -> PartInfo:
        try:
            self._metadata = check_part_metadata(metadata)
        except InvalidArgument:
            await self.abort()
            raise
        return await super().commit()

    def _record(self, size: int, now: float) -> tuple[PartInfo, CatalogWrite]:
        part = PartInfo(self._part_number, size, self._name, now, self._metadata)
        return part, PartRecord(self._bucket, self._key, self._upload_id, part, self._name)


@dataclass(frozen=True, slots=True)
class _Segment:
    """One data file of an object: where its bytes sit in the object."""

    path: Path
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


def _segments(storage: FileStorage, record: ObjectRecord) -> list[_Segment]:
    sizes = record.info.part_sizes or (record.info.size,)
    if len(sizes) != len(record.files):
        raise StorageError("file storage catalog entry is inconsistent")
    segments, offset = [], 0
    for name, size in zip(record.files, sizes):
        segments.append(_Segment(storage.data_path(name), offset, size))
        offset += size
    return segments


class FileObjectReader(RangeReader):
    """Reads ``[start, end)`` of an object's data files, block by block in the thread pool."""

    def __init__(self, info: StoredObject, segments: list[_Segment], start: int, end: int) -> None:
        super().__init__(info, start, end)
        self._segments = segments
        self._index = 0  # the segment that holds ``start`` (set by ``_open_first_sync``)
        self._fd: int | None = None
        self._first = b""
        self._closed = False
        self._serial = Serial()

    def _read_sync(self, pos: int) -> bytes:
        """Read the next block at object offset ``pos``, opening its segment's file if needed
        (the descriptor is kept on ``self`` as soon as it exists, so ``aclose`` can close it)."""
        seg = self._segments[self._index]
        while pos >= seg.end:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)
            self._index += 1
            seg = self._segments[self._index]
        if self._fd is None:
            self._fd = os.open(seg.path, os.O_RDONLY)
        want = min(READ_BLOCK_BYTES, self._end - pos, seg.end - pos)
        return os.pread(self._fd, want, pos - seg.offset)

    @classmethod
    def inline(cls, info: StoredObject, data: bytes, start: int | None, end: int | None) -> FileObjectReader:
        """A reader of an object kept in its catalog row: ``data`` is all of it, read already."""
        reader = cls(replace(info, size=len(data)), [], 0, 0)
        reader._start, reader._end = resolve_range(len(data), start, end)
        reader._first = data[reader._start:reader._end]
        return reader

    @classmethod
    def open_sync(cls, info: StoredObject, segments: list[_Segment], start: int | None,
                  end: int | None) -> FileObjectReader:
        """Open the file that holds ``start`` and read the first block, closing the file when
        that block ends the range (blocking; raises ``FileNotFoundError`` when the version was
        replaced since ``info`` was looked up).

        For an object in one file, the file is the truth about the bytes: a damaged (truncated)
        file reads as the shorter message it now is, for the gateway to refuse as such."""
        reader = cls(info, segments, 0, 0)
        try:
            if len(segments) == 1:
                reader._fd = os.open(segments[0].path, os.O_RDONLY)
                size = os.fstat(reader._fd).st_size
                if size != info.size:
                    reader._info = replace(info, size=size)
                    reader._segments = [replace(segments[0], size=size)]
            reader._start, reader._end = resolve_range(reader._info.size, start, end)
            if reader._end > reader._start:
                reader._first = reader._read_sync(reader._start)
            if reader._start + len(reader._first) >= reader._end:
                reader._close_sync()  # read whole in this call: the close need not come back to the loop
        except BaseException:
            reader._close_sync()
            raise
        return reader

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pos = self._start
        try:
            if self._first:
                first, self._first = self._first, b""
                pos += len(first)
                yield first
            while pos < self._end and not self._closed:
                try:
                    chunk = await self._serial.run(self._read_sync, pos)
                except FileNotFoundError:
                    raise StorageError("file storage object was replaced during the read") from None
                except OSError as exc:
                    raise StorageError(f"file storage read failed: {exc.strerror}") from exc
                if not chunk:
                    raise StorageError("file storage read ended early")
                pos += len(chunk)
                yield chunk
        finally:
            await self.aclose()

    def _close_sync(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    async def aclose(self) -> None:
        self._closed = True
        await self._serial.drain()
        self._close_sync()


def _written_files(write: CatalogWrite) -> tuple[str, ...]:
    """The data file a writer persisted for ``write`` (an object written whole, or a part);
    none for an object kept inline."""
    return write.files if isinstance(write, ObjectRecord) else (write.file,)


def _close_unclaimed(fut: asyncio.Future[FileObjectReader]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        fut.result()._close_sync()


class FileStorage:
    """Buckets of objects under ``root`` (created if missing). ``await FileStorage.open(root)``
    builds one without blocking the event loop."""

    name = "file"

    def __init__(self, root: str | os.PathLike[str], *, inline_max_bytes: int = INLINE_MAX_BYTES) -> None:
        self.root = Path(root)
        self.inline_max_bytes = inline_max_bytes
        """Objects written whole of at most this many stored bytes are kept inline (0: none)."""
        self.data_dir = self.root / "data"
        self.tmp_dir = self.root / "tmp"
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage directory: {exc.strerror}") from exc
        self.catalog = Catalog(self.root)
        self._group = GroupCommit(self._commit_group_sync)
        self._lookups = GroupCommit(self._lookup_sync)
        self._remove_stale_tmp()
        self._remove_orphans()

    @classmethod
    async def open(cls, root: str | os.PathLike[str], *, inline_max_bytes: int = INLINE_MAX_BYTES) -> FileStorage:
        return await asyncio.to_thread(partial(cls, root, inline_max_bytes=inline_max_bytes))

    def _remove_stale_tmp(self) -> None:
        """Remove the temporary files no live writer holds (see the module docstring)."""
        for entry in os.scandir(self.tmp_dir):
            if entry.name.endswith(".part"):
                remove_unowned(entry.path)

    def _remove_orphans(self) -> None:
        """Remove data files no catalog row names (see the module docstring). The catalog is
        read first: a file committed after that read is younger than the grace period."""
        referenced = self.catalog.referenced_files()
        cutoff = time.time() - ORPHAN_GRACE_SECONDS
        for shard in os.scandir(self.data_dir):
            if not shard.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(shard.path):
                try:
                    if entry.name not in referenced and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    continue

    async def record(self, write: CatalogWrite) -> None:
        """Commit a persisted data file's catalog write, with those of other writers waiting meanwhile
        (see the module docstring); returns once it is durable, raises its own error."""
        await self._group.submit(write)

    def _commit_group_sync(self, writes: Sequence[CatalogWrite]) -> list[StorageError | None]:
        """One catalog transaction for ``writes``; then unlink the files they replaced, and the data
        file of each write that failed (nothing names it)."""
        try:
            outcomes = self.catalog.commit_group(writes)
        except BaseException:
            unlink_quietly([self.data_path(f) for w in writes for f in _written_files(w)])
            raise
        unreferenced: list[Path] = []
        for write, outcome in zip(writes, outcomes):
            if isinstance(outcome, StorageError):
                unreferenced.extend(self.data_paths(_written_files(write)))
            else:
                unreferenced.extend(self.data_paths(outcome))
        unlink_quietly(unreferenced)
        return [outcome if isinstance(outcome, StorageError) else None for outcome in outcomes]

    def _lookup_sync(self, names: Sequence[tuple[str, str]]) -> list[ObjectRecord | StorageError]:
        """The catalog rows of ``names`` (``(bucket, key)``), each its record or its own error."""
        records: list[ObjectRecord | StorageError] = []
        for bucket, key in names:
            try:
                records.append(self.catalog.get_object(bucket, key))
            except StorageError as exc:
                records.append(exc)
        return records

    async def _lookup(self, bucket: str, key: str) -> ObjectRecord:
        """An object's catalog row. One thread hand-off serves every lookup that arrived while
        the previous ones ran (the group-commit mechanism, used for reads)."""
        return await self._lookups.submit((bucket, key))

    def data_path(self, name: str) -> Path:
        """The data file ``name`` (a random hex name from this module); always inside ``data_dir``."""
        return self.data_dir / name[0:2] / name

    def data_paths(self, names: Sequence[str]) -> list[Path]:
        return [self.data_path(n) for n in names]

    def object_files(self, bucket: str, key: str) -> list[Path]:
        """The data files holding an object's bytes, in order; none when it is kept inline
        (blocking; for tools and tests)."""
        return self.data_paths(self.catalog.get_object(bucket, key).files)

    async def _run(self, fn: Callable[..., R], *args: object) -> R:
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise os_failure(exc, "file storage failed") from exc

    # -- buckets --

    async def create_bucket(self, bucket: str) -> BucketInfo:
        return await self._run(self.catalog.create_bucket, validate_bucket_name(bucket), time.time())

    async def head_bucket(self, bucket: str) -> BucketInfo:
        return await self._run(self.catalog.head_bucket, bucket)

    def _delete_bucket_sync(self, bucket: str) -> None:
        unlink_quietly(self.data_paths(self.catalog.delete_bucket(bucket)))

    async def delete_bucket(self, bucket: str) -> None:
        await self._run(self._delete_bucket_sync, bucket)

    async def list_buckets(self) -> list[BucketInfo]:
        return await self._run(self.catalog.list_buckets)

    async def put_bucket_config(self, bucket: str, name: str, document: bytes) -> None:
        if len(document) > MAX_BUCKET_CONFIG_BYTES:
            raise InvalidArgument(f"bucket configuration exceeds {MAX_BUCKET_CONFIG_BYTES} bytes")
        await self._run(self.catalog.put_bucket_config, bucket, validate_config_name(name), bytes(document))

    async def get_bucket_config(self, bucket: str, name: str) -> bytes | None:
        return await self._run(self.catalog.get_bucket_config, bucket, validate_config_name(name))

    async def delete_bucket_config(self, bucket: str, name: str) -> None:
        await self._run(self.catalog.delete_bucket_config, bucket, validate_config_name(name))

    # -- objects --

    async def open_write(self, bucket: str, key: str, metadata: bytes = b"", *,
                         length: int | None = None) -> FileObjectWriter:
        # The bytes stream to a temporary file, renamed at commit, or stay buffered to be kept
        # inline. A missing bucket fails here, before the body streams, unless the declared
        # length says the object will be kept inline: then the commit's own check (which is
        # needed anyway) is the only one, and the write costs no thread hop of its own.
        metadata = check_metadata(metadata)
        if length is None or length > self.inline_max_bytes:
            await self.head_bucket(bucket)
        return FileObjectWriter(self, bucket, key, metadata)

    def _open_sync(self, record: ObjectRecord, start: int | None, end: int | None) -> FileObjectReader:
        """Open ``record``'s first data file and read the first block, in one thread call; look
        the object up again when it was replaced since ``record`` was read."""
        info = record.info
        for _ in range(_OPEN_ATTEMPTS):
            if record.data is not None:
                return FileObjectReader.inline(record.info, record.data, start, end)
            try:
                return FileObjectReader.open_sync(record.info, _segments(self, record), start, end)
            except FileNotFoundError:
                record = self.catalog.get_object(info.bucket, info.key)  # replaced meanwhile: look again
        raise StorageError("file storage object keeps changing")

    async def open_read(
        self, bucket: str, key: str, start: int | None = None, end: int | None = None
    ) -> FileObjectReader:
        record = await self._lookup(bucket, key)
        if record.data is not None:  # kept in its row: nothing to open
            return FileObjectReader.inline(record.info, record.data, start, end)
        fut = asyncio.get_running_loop().run_in_executor(None, self._open_sync, record, start, end)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(_close_unclaimed)  # the open finishes in its thread: close what it opened
            raise
        except OSError as exc:
            raise StorageError(f"file storage read failed: {exc.strerror}") from exc

    async def head(self, bucket: str, key: str) -> StoredObject:
        record = await self._lookup(bucket, key)
        return record.info

    def _delete_sync(self, bucket: str, key: str) -> None:
        unlink_quietly(self.data_paths(self.catalog.delete_object(bucket, key)))

    async def delete(self, bucket: str, key: str) -> None:
        await self._run(self._delete_sync, bucket, key)

    def _list_sync(self, bucket: str, prefix: str, delimiter: str | None, start_after: str | None,
                   max_keys: int) -> ObjectPage:
        self.catalog.head_bucket(bucket)
        return list_page(partial(self.catalog.scan, bucket), prefix=prefix, delimiter=delimiter, start_after=start_after,
                         max_keys=max_keys)

    async def list_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, max_keys: int = MAX_LIST_KEYS,
    ) -> ObjectPage:
        return await self._run(self._list_sync, bucket, prefix, delimiter or None, start_after, max_keys)

    # -- multipart uploads --

    async def create_upload(self, bucket: str, key: str, metadata: bytes = b"") -> str:
        metadata = check_metadata(metadata)
        upload_id = secrets.token_hex(16)
        await self._run(self.catalog.create_upload, bucket, key, upload_id, metadata, time.time())
        return upload_id

    async def open_part_write(self, bucket: str, key: str, upload_id: str, part_number: int, *,
                              length: int | None = None) -> FilePartWriter:
        check_part_number(part_number)
        await self._run(self.catalog.check_upload, bucket, key, upload_id)
        return FilePartWriter(self, bucket, key, upload_id, part_number)

    async def upload_metadata(self, bucket: str, key: str, upload_id: str) -> bytes:
        return await self._run(self.catalog.upload_metadata, bucket, key, upload_id)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        return await self._run(self.catalog.list_parts, bucket, key, upload_id)

    async def list_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        upper = prefix_end(prefix) if prefix else None
        return await self._run(self.catalog.list_uploads, bucket, prefix, upper)

    def _complete_sync(self, bucket: str, key: str, upload_id: str, numbers: tuple[int, ...],
                       metadata: bytes | None, sealed_etag: bytes) -> StoredObject:
        etag = f"{_new_name()}-{len(numbers)}"
        info, stale = self.catalog.complete_upload(bucket, key, upload_id, numbers, etag, time.time(), metadata,
                                                   sealed_etag)
        unlink_quietly(self.data_paths(stale))
        return info

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, part_numbers: Sequence[int], metadata: bytes | None = None,
        sealed_etag: bytes = b"",
    ) -> StoredObject:
        numbers = check_completion(part_numbers)
        if metadata is not None:
            metadata = check_metadata(metadata)
        return await self._run(self._complete_sync, bucket, key, upload_id, numbers, metadata,
                               check_sealed_etag(sealed_etag))

    def _abort_sync(self, bucket: str, key: str, upload_id: str) -> None:
        unlink_quietly(self.data_paths(self.catalog.abort_upload(bucket, key, upload_id)))

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self._run(self._abort_sync, bucket, key, upload_id)

    def _expire_sync(self, older_than_seconds: float) -> int:
        aborted = 0
        for bucket, key, upload_id in self.catalog.uploads_before(time.time() - older_than_seconds):
            try:
                self._abort_sync(bucket, key, upload_id)
            except NoSuchUpload:
                continue  # completed or aborted meanwhile
            aborted += 1
        return aborted

    async def expire_uploads(self, older_than_seconds: float) -> int:
        return await self._run(self._expire_sync, older_than_seconds)

    # -- the catalog key --

    def _read_catalog_key_sync(self) -> bytes | None:
        try:
            return (self.root / CATALOG_KEY_FILENAME).read_bytes()
        except FileNotFoundError:
            return None

    def _create_catalog_key_sync(self, wrapped: bytes) -> bytes:
        tmp = self.tmp_dir / f"{_new_name()}.part"
        fd = create_owned(tmp)  # open (locked) until unlinked, so no sweep takes it before the link
        try:
            write_all(fd, [wrapped])
            os.fsync(fd)
            try:
                os.link(tmp, self.root / CATALOG_KEY_FILENAME)
            except FileExistsError:
                pass  # another process created it first: theirs is kept
            fsync_dir(self.root)
        finally:
            unlink_quietly([tmp])
            os.close(fd)
        kept = self._read_catalog_key_sync()
        if kept is None:
            raise StorageError("file storage lost the catalog key it wrote")
        return kept

    async def read_catalog_key(self) -> bytes | None:
        return await self._run(self._read_catalog_key_sync)

    async def create_catalog_key(self, wrapped: bytes) -> bytes:
        return await self._run(self._create_catalog_key_sync, check_catalog_key(wrapped))

    # -- the backend --

    def _check_sync(self) -> None:
        probe = self.tmp_dir / f"ready.{secrets.token_hex(8)}.part"
        try:
            fd = create_owned(probe)
            try:
                os.unlink(probe)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"file storage not writable: {exc.strerror}") from exc
        self.catalog.list_buckets()

    async def check(self) -> None:
        await asyncio.to_thread(self._check_sync)

    async def close(self) -> None:
        await self._group.aclose()
        await self._lookups.aclose()
        await asyncio.to_thread(self.catalog.close)
