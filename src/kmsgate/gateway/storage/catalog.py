"""The file backend's catalog: buckets, bucket configs, objects, uploads and parts in SQLite.

One database (``catalog.sqlite3`` under the storage root; WAL, ``synchronous=FULL``, a busy
timeout) shared by every worker process. Writes run in ``BEGIN IMMEDIATE`` transactions, so
SQLite's locking serialises processes and a check (does the bucket exist? the upload?) and the
write it guards are one atomic step. Reads use a connection of their own per thread (read-only),
so they wait neither for a write transaction in progress nor for each other (WAL readers see the
last committed state). A committed transaction is durable when ``COMMIT``
returns: that commit is the acknowledgment point of every storage operation. ``commit_group``
records the new objects and parts of several writers in one transaction, each in its own
savepoint.

An object row names its data files (unique random names, see ``kmsgate.gateway.storage.file``)
in order, with the stored size of each part for a completed multipart upload; or, for a small
object written whole, holds its stored bytes itself (``data``, with no file named), so that
they are durable with the row, in the same ``COMMIT``. Methods that
drop a row return the data files nobody references any more; the caller unlinks them after the
commit. Blocking: call from a worker thread.

Keys are ``TEXT`` compared with the ``BINARY`` collation, i.e. by their UTF-8 bytes: S3's order.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kmsgate.gateway.storage.base import (
    BucketAlreadyExists,
    BucketInfo,
    BucketNotEmpty,
    InvalidPart,
    NoSuchBucket,
    NoSuchUpload,
    ObjectEntry,
    ObjectNotFound,
    PartInfo,
    StorageError,
    StorageFull,
    StoredObject,
    UploadInfo,
)

CATALOG_FILENAME = "catalog.sqlite3"
BUSY_TIMEOUT_SECONDS = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS bucket_configs (
    bucket TEXT NOT NULL, name TEXT NOT NULL, document BLOB NOT NULL,
    PRIMARY KEY (bucket, name));
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    last_modified REAL NOT NULL, metadata BLOB NOT NULL,
    files TEXT NOT NULL,            -- data file names, space-separated, in order
    part_sizes TEXT NOT NULL,       -- stored part sizes, space-separated ('' when written whole)
    sealed_etag BLOB NOT NULL DEFAULT x'',
    data BLOB,                      -- the stored bytes of an object kept inline (files ''), else NULL
    PRIMARY KEY (bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
    metadata BLOB NOT NULL, initiated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, initiated);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, last_modified REAL NOT NULL, file TEXT NOT NULL,
    metadata BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (upload_id, part_number)) WITHOUT ROWID;
"""
_PARTS_METADATA_COLUMN = "ALTER TABLE parts ADD COLUMN metadata BLOB NOT NULL DEFAULT x''"
"""For a catalog made before parts kept a metadata blob."""
_OBJECTS_SEALED_ETAG_COLUMN = "ALTER TABLE objects ADD COLUMN sealed_etag BLOB NOT NULL DEFAULT x''"
"""For a catalog made before objects kept a sealed ETag (their rows get an empty one)."""
_OBJECTS_DATA_COLUMN = "ALTER TABLE objects ADD COLUMN data BLOB"
"""For a catalog made before small objects were kept inline (their rows get NULL: in files)."""
CATALOG_KEY_FILENAME = "catalog-key.bin"
"""The wrapped catalog key, beside the catalog (0600)."""


def _catalog_failure(exc: sqlite3.Error) -> StorageError:
    """A failed catalog write as a storage error (``StorageFull`` when the disk is full)."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return StorageFull("file storage catalog is out of space")
    return StorageError(f"file storage catalog failed: {type(exc).__name__}")


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """An object and the data files that hold its bytes, in order; or, with ``data``, its bytes
    themselves, kept in the catalog row (then ``files`` is empty)."""

    info: StoredObject
    files: tuple[str, ...]
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class PartRecord:
    """A part of a multipart upload and the data file that holds its bytes."""

    bucket: str
    key: str
    upload_id: str
    part: PartInfo
    file: str


CatalogWrite = ObjectRecord | PartRecord
"""What ``Catalog.commit_group`` records: an object's current version, or a part."""


def _object(bucket: str, row: tuple[str, int, str, float, bytes, str, str, bytes, bytes | None]) -> ObjectRecord:
    key, size, etag, modified, metadata, files, part_sizes, sealed_etag, data = row
    sizes = tuple(int(s) for s in part_sizes.split())
    info = StoredObject(bucket=bucket, key=key, size=int(size), etag=etag, last_modified=float(modified),
                        metadata=bytes(metadata), part_sizes=sizes, sealed_etag=bytes(sealed_etag))
    return ObjectRecord(info, tuple(files.split()), None if data is None else bytes(data))


_OBJECT_COLUMNS = "key, size, etag, last_modified, metadata, files, part_sizes, sealed_etag, data"


class Catalog:
    """The catalog database; see the module docstring."""

    def __init__(self, root: Path) -> None:
        path = root / CATALOG_FILENAME
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._path = path
        self._readers = threading.local()
        self._readers_lock = threading.Lock()  # not the writer's: a first read must not wait for a write
        self._reader_connections: list[sqlite3.Connection] = []
        self._closed = False
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=BUSY_TIMEOUT_SECONDS)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._write() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                if "metadata" not in {str(row[1]) for row in db.execute("PRAGMA table_info(parts)")}:
                    db.execute(_PARTS_METADATA_COLUMN)
                object_columns = {str(row[1]) for row in db.execute("PRAGMA table_info(objects)")}
                if "sealed_etag" not in object_columns:
                    db.execute(_OBJECTS_SEALED_ETAG_COLUMN)
                if "data" not in object_columns:
                    db.execute(_OBJECTS_DATA_COLUMN)
        except sqlite3.Error as exc:
            raise StorageError(f"file storage catalog failed: {type(exc).__name__}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._readers_lock:
            self._closed = True
            for reader in self._reader_connections:
                reader.close()
            self._reader_connections.clear()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; a typed storage error raised inside rolls it back."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _catalog_failure(exc) from exc

    def _reader(self) -> sqlite3.Connection:
        """This thread's own read connection: in WAL mode readers neither wait for the writer nor
        for each other, so reads do not queue on the writer's lock (a 1 KiB GET's catalog lookup
        waited there behind other lookups under load)."""
        reader: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if reader is None:
            with self._readers_lock:
                if self._closed:
                    raise StorageError("file storage catalog is closed")
                reader = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                         timeout=BUSY_TIMEOUT_SECONDS)
                reader.execute("PRAGMA query_only=ON")
                self._reader_connections.append(reader)
            self._readers.connection = reader
        return reader

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._reader()
        except sqlite3.Error as exc:
            raise StorageError(f"file storage catalog failed: {type(exc).__name__}") from exc

    @staticmethod
    def _require_bucket(db: sqlite3.Connection, bucket: str) -> BucketInfo:
        row = db.execute("SELECT created FROM buckets WHERE name = ?", (bucket,)).fetchone()
        if row is None:
            raise NoSuchBucket(bucket)
        return BucketInfo(bucket, float(row[0]))

    # -- buckets --

    def create_bucket(self, bucket: str, now: float) -> BucketInfo:
        with self._write() as db:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone():
                raise BucketAlreadyExists(bucket)
            db.execute("INSERT INTO buckets (name, created) VALUES (?, ?)", (bucket, now))
        return BucketInfo(bucket, now)

    def head_bucket(self, bucket: str) -> BucketInfo:
        with self._read() as db:
            return self._require_bucket(db, bucket)

    def delete_bucket(self, bucket: str) -> list[str]:
        """Drop an empty bucket, its configs and its uploads; return the uploads' part files."""
        with self._write() as db:
            self._require_bucket(db, bucket)
            if db.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (bucket,)).fetchone():
                raise BucketNotEmpty(bucket)
            files = [str(r[0]) for r in db.execute(
                "SELECT file FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = ?)",
                (bucket,))]
            db.execute("DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = ?)",
                       (bucket,))
            db.execute("DELETE FROM uploads WHERE bucket = ?", (bucket,))
            db.execute("DELETE FROM bucket_configs WHERE bucket = ?", (bucket,))
            db.execute("DELETE FROM buckets WHERE name = ?", (bucket,))
        return files

    def list_buckets(self) -> list[BucketInfo]:
        with self._read() as db:
            rows = db.execute("SELECT name, created FROM buckets ORDER BY name").fetchall()
        return [BucketInfo(str(name), float(created)) for name, created in rows]

    def put_bucket_config(self, bucket: str, name: str, document: bytes) -> None:
        with self._write() as db:
            self._require_bucket(db, bucket)
            db.execute("INSERT OR REPLACE INTO bucket_configs (bucket, name, document) VALUES (?, ?, ?)",
                       (bucket, name, document))

    def get_bucket_config(self, bucket: str, name: str) -> bytes | None:
        with self._read() as db:
            self._require_bucket(db, bucket)
            row = db.execute("SELECT document FROM bucket_configs WHERE bucket = ? AND name = ?",
                             (bucket, name)).fetchone()
        return None if row is None else bytes(row[0])

    def delete_bucket_config(self, bucket: str, name: str) -> None:
        with self._write() as db:
            self._require_bucket(db, bucket)
            db.execute("DELETE FROM bucket_configs WHERE bucket = ? AND name = ?", (bucket, name))

    # -- objects --

    def get_object(self, bucket: str, key: str) -> ObjectRecord:
        with self._read() as db:
            row = db.execute(f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?",
                             (bucket, key)).fetchone()
            if row is None:
                self._require_bucket(db, bucket)
                raise ObjectNotFound(key)
        return _object(bucket, row)

    @staticmethod
    def _replace_object(db: sqlite3.Connection, record: ObjectRecord) -> list[str]:
        info = record.info
        old = db.execute("SELECT files FROM objects WHERE bucket = ? AND key = ?",
                         (info.bucket, info.key)).fetchone()
        db.execute(
            f"INSERT OR REPLACE INTO objects (bucket, {_OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (info.bucket, info.key, info.size, info.etag, info.last_modified, info.metadata,
             " ".join(record.files), " ".join(str(s) for s in info.part_sizes), info.sealed_etag, record.data),
        )
        return [] if old is None else [f for f in str(old[0]).split() if f not in record.files]

    def put_object(self, record: ObjectRecord) -> list[str]:
        """Make ``record`` the object's current version; return the replaced version's files."""
        with self._write() as db:
            return self._put_object(db, record)

    @classmethod
    def _put_object(cls, db: sqlite3.Connection, record: ObjectRecord) -> list[str]:
        cls._require_bucket(db, record.info.bucket)
        return cls._replace_object(db, record)

    def commit_group(self, writes: Sequence[CatalogWrite]) -> list[list[str] | StorageError]:
        """Record every write in one transaction, so one durable ``COMMIT`` serves them all.

        Each write runs in its own savepoint: one that fails (``NoSuchBucket``, ``NoSuchUpload``)
        is rolled back alone and its error is its outcome; the others' outcome is the data files
        they replaced. A failed ``COMMIT`` raises: then none of the group was recorded."""
        outcomes: list[list[str] | StorageError] = []
        with self._write() as db:
            for write in writes:
                db.execute("SAVEPOINT group_write")
                try:
                    if isinstance(write, ObjectRecord):
                        stale = self._put_object(db, write)
                    else:
                        stale = self._put_part(db, write)
                except StorageError as exc:
                    db.execute("ROLLBACK TO group_write")
                    outcomes.append(exc)
                else:
                    outcomes.append(stale)
                db.execute("RELEASE group_write")
        return outcomes

    def delete_object(self, bucket: str, key: str) -> list[str]:
        with self._write() as db:
            self._require_bucket(db, bucket)
            row = db.execute("SELECT files FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
            if row is None:
                return []
            db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
        return str(row[0]).split()

    def scan(self, bucket: str, lower: str, inclusive: bool, upper: str | None, limit: int) -> list[ObjectEntry]:
        """Up to ``limit`` objects of ``bucket`` in key order, in ``(lower, upper)`` (see ``listing.Scan``)."""
        sql = "SELECT key, size, etag, last_modified FROM objects WHERE bucket = ? AND key " + (
            ">= ?" if inclusive else "> ?")
        args: list[object] = [bucket, lower]
        if upper is not None:
            sql += " AND key < ?"
            args.append(upper)
        sql += " ORDER BY key LIMIT ?"
        args.append(limit)
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [ObjectEntry(str(k), int(s), str(e), float(m)) for k, s, e, m in rows]

    # -- multipart uploads --

    def create_upload(self, bucket: str, key: str, upload_id: str, metadata: bytes, now: float) -> None:
        with self._write() as db:
            self._require_bucket(db, bucket)
            db.execute("INSERT INTO uploads (upload_id, bucket, key, metadata, initiated) VALUES (?, ?, ?, ?, ?)",
                       (upload_id, bucket, key, metadata, now))

    @staticmethod
    def _require_upload(db: sqlite3.Connection, bucket: str, key: str, upload_id: str) -> bytes:
        row = db.execute("SELECT metadata FROM uploads WHERE upload_id = ? AND bucket = ? AND key = ?",
                         (upload_id, bucket, key)).fetchone()
        if row is None:
            Catalog._require_bucket(db, bucket)
            raise NoSuchUpload(upload_id)
        return bytes(row[0])

    def check_upload(self, bucket: str, key: str, upload_id: str) -> None:
        with self._read() as db:
            self._require_upload(db, bucket, key, upload_id)

    def upload_metadata(self, bucket: str, key: str, upload_id: str) -> bytes:
        with self._read() as db:
            return self._require_upload(db, bucket, key, upload_id)

    def put_part(self, bucket: str, key: str, upload_id: str, part: PartInfo, file: str) -> list[str]:
        """Record a part (replacing one of the same number); return the replaced part's file."""
        with self._write() as db:
            return self._put_part(db, PartRecord(bucket, key, upload_id, part, file))

    @classmethod
    def _put_part(cls, db: sqlite3.Connection, record: PartRecord) -> list[str]:
        part = record.part
        cls._require_upload(db, record.bucket, record.key, record.upload_id)
        old = db.execute("SELECT file FROM parts WHERE upload_id = ? AND part_number = ?",
                         (record.upload_id, part.part_number)).fetchone()
        db.execute("INSERT OR REPLACE INTO parts (upload_id, part_number, size, etag, last_modified, file, "
                   "metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (record.upload_id, part.part_number, part.size, part.etag, part.last_modified, record.file,
                    part.metadata))
        return [] if old is None else [str(old[0])]

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        with self._read() as db:
            self._require_upload(db, bucket, key, upload_id)
            rows = db.execute("SELECT part_number, size, etag, last_modified, metadata FROM parts "
                              "WHERE upload_id = ? ORDER BY part_number", (upload_id,)).fetchall()
        return [PartInfo(int(n), int(s), str(e), float(m), bytes(b)) for n, s, e, m, b in rows]

    def list_uploads(self, bucket: str, prefix: str, upper: str | None) -> list[UploadInfo]:
        sql = "SELECT key, upload_id, initiated FROM uploads WHERE bucket = ? AND key >= ?"
        args: list[object] = [bucket, prefix]
        if upper is not None:
            sql += " AND key < ?"
            args.append(upper)
        with self._read() as db:
            self._require_bucket(db, bucket)
            rows = db.execute(sql + " ORDER BY key, initiated, upload_id", args).fetchall()
        return [UploadInfo(str(k), str(u), float(i)) for k, u, i in rows]

    def complete_upload(self, bucket: str, key: str, upload_id: str, part_numbers: Sequence[int],
                        etag: str, now: float, metadata: bytes | None,
                        sealed_etag: bytes = b"") -> tuple[StoredObject, list[str]]:
        """Turn the upload into the object's current version, atomically, with ``metadata``
        (``None``: the upload's) and ``sealed_etag``; return it and the files nobody references any more (parts
        left out, the replaced version's)."""
        with self._write() as db:
            upload_metadata = self._require_upload(db, bucket, key, upload_id)
            if metadata is None:
                metadata = upload_metadata
            parts = {int(n): (int(s), str(f)) for n, s, f in db.execute(
                "SELECT part_number, size, file FROM parts WHERE upload_id = ?", (upload_id,))}
            missing = [n for n in part_numbers if n not in parts]
            if missing:
                raise InvalidPart(f"part {missing[0]} was not uploaded")
            sizes = tuple(parts[n][0] for n in part_numbers)
            files = tuple(parts[n][1] for n in part_numbers)
            info = StoredObject(bucket=bucket, key=key, size=sum(sizes), etag=etag, last_modified=now,
                                metadata=metadata, part_sizes=sizes, sealed_etag=sealed_etag)
            unused = [f for n, (_, f) in parts.items() if n not in set(part_numbers)]
            replaced = self._replace_object(db, ObjectRecord(info, files))
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
        return info, unused + replaced

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> list[str]:
        with self._write() as db:
            self._require_upload(db, bucket, key, upload_id)
            files = [str(r[0]) for r in db.execute("SELECT file FROM parts WHERE upload_id = ?", (upload_id,))]
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
        return files

    def uploads_before(self, cutoff: float) -> list[tuple[str, str, str]]:
        """``(bucket, key, upload_id)`` of every upload initiated before ``cutoff``."""
        with self._read() as db:
            rows = db.execute("SELECT bucket, key, upload_id FROM uploads WHERE initiated < ?", (cutoff,)).fetchall()
        return [(str(b), str(k), str(u)) for b, k, u in rows]

    def referenced_files(self) -> set[str]:
        """Every data file an object or a part names."""
        names: set[str] = set()
        with self._read() as db:
            db.execute("BEGIN")  # one snapshot: a completion moves files from parts to objects
            try:
                for (files,) in db.execute("SELECT files FROM objects"):
                    names.update(str(files).split())
                names.update(str(f) for (f,) in db.execute("SELECT file FROM parts"))
            finally:
                db.execute("COMMIT")
        return names
