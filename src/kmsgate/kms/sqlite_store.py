"""The embedded key store (the default): SQLite (WAL, synchronous=FULL) holding keys, aliases, wrapped material and grants.

Key material is written only wrapped by the root key (``kmsgate.kms.rootkey``); the clear bytes
exist only in memory. A commit returns only after SQLite has synced the write-ahead log, so
whatever a response acknowledged survives a crash or ``kill -9``.

Every write transaction also records which served entities it changed in the change log
(``kmsgate.kms.changelog``), in the same commit, so that a reader can load only what changed
(``kmsgate.kms.loader``).

The root key's check value is kept in ``settings`` (``kmsgate.kms.rootkey_state``): a store
opened with another root key is refused, and every write transaction first checks that its root
key is still the store's (a rotation may have replaced it).

Connections: a write connection used from worker threads under a lock, inside ``BEGIN
IMMEDIATE`` transactions (several processes may share one data dir, and SQLite's own locking
serialises them); a read connection used on the event-loop thread only for cheap reads
(``PRAGMA data_version``, usage, deletion markers); and the loader's connection, used from one
worker thread at a time for ``load`` and ``load_changes``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import orjson

from kmsgate.core.errors import DependencyTimeoutError
from kmsgate.kms import changelog
from kmsgate.kms.grant_records import grant_from_record
from kmsgate.kms.loader import Loaded, ViewLoader
from kmsgate.kms import rootkey_state
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.transaction import Transaction

DB_FILENAME = "kms.sqlite3"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS materials (
    key_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    material_id TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    created REAL NOT NULL,
    rotation_type TEXT,
    origin TEXT NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    alias_name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS aliases_by_key ON aliases (key_id);
CREATE TABLE IF NOT EXISTS deleted_keys (
    key_id TEXT PRIMARY KEY,
    deleted REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    record BLOB NOT NULL,
    grantee_principal TEXT NOT NULL DEFAULT '',
    name TEXT
);
CREATE INDEX IF NOT EXISTS grants_by_key ON grants (key_id);
CREATE TABLE IF NOT EXISTS key_usage (
    key_id TEXT PRIMARY KEY,
    used REAL NOT NULL,
    operation TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# Created after ``_add_grant_columns`` (a store made by an older kmsgate lacks the columns).
_GRANT_INDEXES = """
CREATE INDEX IF NOT EXISTS grants_by_grantee ON grants (key_id, grantee_principal);
CREATE INDEX IF NOT EXISTS grants_by_name ON grants (key_id, name);
"""
USAGE_TRACKING_START = "usage_tracking_start"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _add_grant_columns(conn: sqlite3.Connection) -> None:
    """Give a grants table made by an older kmsgate its grantee and name columns, filled from the records."""
    if "grantee_principal" in {row[1] for row in conn.execute("PRAGMA table_info(grants)")}:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "grantee_principal" not in {row[1] for row in conn.execute("PRAGMA table_info(grants)")}:
            conn.execute("ALTER TABLE grants ADD COLUMN grantee_principal TEXT NOT NULL DEFAULT ''")
            conn.execute("ALTER TABLE grants ADD COLUMN name TEXT")
            for grant_id, record in conn.execute("SELECT grant_id, record FROM grants").fetchall():
                grant = grant_from_record(orjson.loads(record))
                conn.execute(
                    "UPDATE grants SET grantee_principal = ?, name = ? WHERE grant_id = ?",
                    (grant.grantee_principal, grant.name, grant_id),
                )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables, and bring a store written by an older kmsgate up to date (idempotent)."""
    conn.executescript(_SCHEMA + changelog.SCHEMA)
    _add_grant_columns(conn)
    conn.executescript(_GRANT_INDEXES)
    conn.execute(
        "INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)", (USAGE_TRACKING_START, repr(time.time()))
    )


class SqliteKeyStore:
    """SQLite-backed ``KeyStore``. Blocking: call ``mutate``, ``load`` and ``load_changes`` from a worker thread."""

    def __init__(self, data_dir: Path, root_key: RootKey, filename: str = DB_FILENAME) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / filename
        self._write_lock = threading.Lock()
        if not self.path.exists():
            # Wrapped material is still secret-adjacent: owner-only, and SQLite gives its
            # -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._writer = _connect(self.path)
        try:
            create_schema(self._writer)
            root_key = self._settle(root_key)
        except BaseException:
            self._writer.close()
            raise
        self.root_key = root_key
        self._root_key = root_key
        self._reader = _connect(self.path)
        self._version_cursor = self._reader.cursor()  # reused: data_version is read on every request
        self._load_conn = _connect(self.path)
        self._loader = ViewLoader(self._reading, root_key)

    def _settle(self, root_key: RootKey) -> RootKey:
        """Record the root key's check value on first use; refuse another root key (``kmsgate.kms.rootkey_state``)."""
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            settled = rootkey_state.settle(self._writer, root_key)
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")
        return settled

    @property
    def rows_loaded(self) -> int:
        """How many rows the loads of this store have read so far (what a reload costs)."""
        return self._loader.rows_read

    def close(self) -> None:
        self._writer.close()
        self._reader.close()
        self._loader.close(self._load_conn.close)

    def check(self) -> None:
        """Read the settings through the write connection (not the event loop's), so a check never races a request."""
        with self._write_lock:
            try:
                self._writer.execute("SELECT COUNT(*) FROM settings").fetchone()
            except sqlite3.Error as exc:
                raise DependencyTimeoutError(f"the key store cannot be read ({type(exc).__name__})") from exc

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The loader's connection inside one read transaction (the loader holds its lock)."""
        self._load_conn.execute("BEGIN")
        try:
            yield self._load_conn
        finally:
            self._load_conn.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection (any process, or our writer) commits."""
        row = self._version_cursor.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def last_usage(self, key_id: str) -> tuple[float, str] | None:
        """The stored (time, operation) of a key's last successful cryptographic use."""
        row = self._reader.execute("SELECT used, operation FROM key_usage WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def usage_tracking_start(self) -> float:
        """When this key store began recording key usage."""
        row = self._reader.execute("SELECT value FROM settings WHERE name = ?", (USAGE_TRACKING_START,)).fetchone()
        return float(row[0]) if row is not None else 0.0

    def was_deleted(self, key_id: str) -> bool:
        """Whether a key with this id existed and was deleted (read only on error paths)."""
        row = self._reader.execute("SELECT 1 FROM deleted_keys WHERE key_id = ?", (key_id,)).fetchone()
        return row is not None

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                rootkey_state.require_active(self._writer, self._root_key)
                tx = Transaction(self._writer, self._root_key)
                yield tx
                changelog.append(self._writer, tx.changed, time.time())
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def mutate(self, change: Callable[[Transaction], T]) -> T:
        """Run ``change`` in one durable transaction; an exception rolls everything back."""
        with self._transaction() as tx:
            return change(tx)

    def prune_changes(self, older_than: float) -> None:
        """Drop the change-log rows written before ``older_than`` (POSIX seconds) now."""
        with self._transaction():
            changelog.prune(self._writer, older_than)

    def load(self) -> Loaded:
        """Every key, alias, grant and (unwrapped) material version."""
        return self._loader.load()

    def load_changes(self, held: Loaded) -> Loaded:
        """``held`` brought up to date by reading only what changed since; in full if the log was pruned past it."""
        return self._loader.load_changes(held)
