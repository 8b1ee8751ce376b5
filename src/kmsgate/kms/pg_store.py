"""The shared key store: PostgreSQL, for several kmsgate nodes that behave as one KMS.

The same rows as the SQLite store (``kmsgate.kms.pg_schema``), the same SQL
(``kmsgate.kms.transaction``, ``kmsgate.kms.loader``), through psycopg 3 and a connection pool;
every call blocks and runs in a worker thread, never on the event loop.

- Writes: each transaction first takes the advisory lock ``WRITE_LOCK`` and holds it until it
  commits, so writers on every node run one at a time, as SQLite's ``BEGIN IMMEDIATE`` makes them
  on one machine. What must not race (two nodes rotating one key, an alias name taken twice, a
  grant ``Name`` reused, a deletion falling due) re-reads its rows under that lock and is decided
  by the database, not by a node's memory; a background job's pass (rotation, deletion,
  expiry) finds nothing left to do once another node committed it. The lock also keeps the change
  log's sequence numbers in commit order.
- Reads for the in-memory view run in one ``REPEATABLE READ`` transaction each, so a view and its
  change-log sequence number agree.
- Other nodes' commits: each write ``NOTIFY``s its sequence number; ``ChangeListener``
  (``kmsgate.kms.pg_listener``) follows them, and ``data_version`` returns the last number seen:
  an attribute read, no round trip on the request path.
- The root key: the store keeps a check value derived from it (``RootKey.check_value``), written
  by the first node; a node started with another root key is refused before it serves, and a
  write by a node whose root key a rotation replaced is refused (``kmsgate.kms.rootkey_state``).
- The database is sent ids, timestamps, policies and grants, and key material only wrapped
  under the root key: never clear material, plaintext or secrets.
- A database that does not answer: a write waits at most ``POOL_TIMEOUT_SECONDS`` for a
  connection and ``STATEMENT_TIMEOUT_MS`` per statement, then fails as
  ``DependencyTimeoutError``; pooled connections are checked before use, so service resumes by
  itself once the database is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from kmsgate.core.errors import DependencyTimeoutError
from kmsgate.kms import changelog
from kmsgate.kms.loader import Loaded, ViewLoader
from kmsgate.kms.pg_listener import CHANNEL, ChangeListener
from kmsgate.kms.pg_schema import WRITE_LOCK, migrate
from kmsgate.kms.pg_sql import PgConnection, Row
from kmsgate.kms import rootkey_state
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.transaction import Transaction

T = TypeVar("T")

POOL_SIZE = 4  # connections per process: writes are serialised anyway; loads and reads take the rest
POOL_TIMEOUT_SECONDS = 5.0  # waiting for a connection (the database unreachable) before giving up
CONNECT_TIMEOUT_SECONDS = 5  # unless the URL sets connect_timeout
STATEMENT_TIMEOUT_MS = 10_000
CHECK_TIMEOUT_SECONDS = 2.0  # a readiness check waits this long for a connection
USAGE_TRACKING_START = "usage_tracking_start"


class KeyStoreUnavailableError(Exception):
    """The key store's database could not be reached or set up at start."""


class PgKeyStore:
    """PostgreSQL-backed ``KeyStore``; blocking except ``data_version``."""

    def __init__(self, url: str, root_key: RootKey) -> None:
        self.root_key = root_key
        self._url = url
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(url):
            self._kwargs["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        with psycopg.connect(url, **self._kwargs) as conn:
            migrate(conn)
        self._seen = 0
        self._seen_lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url, kwargs=self._kwargs, min_size=1, max_size=POOL_SIZE, timeout=POOL_TIMEOUT_SECONDS,
            configure=_configure, check=ConnectionPool.check_connection, num_workers=1,
            name="kmsgate-key-store", open=True,
        )
        try:
            self._tracking_start = self._settle()
            self._loader = ViewLoader(self._reading, self.root_key)
            self._listener = ChangeListener(url, self._kwargs, self._advance)
        except BaseException:
            self._pool.close()
            raise

    def _settle(self) -> float:
        """First start writes the usage-tracking start and the root key's check value; every start checks it."""
        with self._write(settling=True) as (conn, _tx):
            return self._settle_in(conn)

    def _settle_in(self, conn: PgConnection) -> float:
        self._advance(changelog.last_seq(conn))
        conn.execute(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (USAGE_TRACKING_START, repr(time.time())),
        )
        self.root_key = rootkey_state.settle(conn, self.root_key)
        return float(rootkey_state.read_settings(conn)[USAGE_TRACKING_START])

    @property
    def rows_loaded(self) -> int:
        return self._loader.rows_read

    @property
    def notifications_connected(self) -> bool:
        """Whether this store is listening for other nodes' changes right now."""
        return self._listener.connected

    def close(self) -> None:
        if self._pool.closed:
            return
        self._listener.close(self._wake)
        self._loader.close(lambda: None)
        self._pool.close()

    def check(self) -> None:
        try:
            with self._pool.connection(timeout=CHECK_TIMEOUT_SECONDS) as conn:
                conn.execute("SELECT 1")
        except psycopg_pool.PoolTimeout as exc:
            raise DependencyTimeoutError(
                f"the database gave no connection within {CHECK_TIMEOUT_SECONDS:g} s (unreachable or refusing)"
            ) from exc
        except psycopg.Error as exc:
            raise DependencyTimeoutError(f"the database failed the check ({type(exc).__name__})") from exc

    def _wake(self, channel: str) -> None:
        with self._pool.connection(timeout=1.0) as conn:
            conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(channel)))

    # -- the view's version: the last change-log sequence number known committed ---------

    def data_version(self) -> int:
        return self._seen

    def _advance(self, seq: int) -> None:
        with self._seen_lock:
            if seq > self._seen:
                self._seen = seq

    # -- reads ------------------------------------------------------------------------------

    def last_usage(self, key_id: str) -> tuple[float, str] | None:
        with _unavailable_as_timeout(), self._pool.connection() as raw:
            row = PgConnection(raw).execute(
                "SELECT used, operation FROM key_usage WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def usage_tracking_start(self) -> float:
        return self._tracking_start

    def was_deleted(self, key_id: str) -> bool:
        with _unavailable_as_timeout(), self._pool.connection() as raw:
            row = PgConnection(raw).execute("SELECT 1 FROM deleted_keys WHERE key_id = ?", (key_id,)).fetchone()
        return row is not None

    @contextmanager
    def _reading(self) -> Iterator[PgConnection]:
        with _unavailable_as_timeout(), self._pool.connection() as raw, raw.transaction():
            raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PgConnection(raw)

    def load(self) -> Loaded:
        return self._loader.load()

    def load_changes(self, held: Loaded) -> Loaded:
        return self._loader.load_changes(held)

    # -- writes -----------------------------------------------------------------------------

    @contextmanager
    def _write(self, settling: bool = False) -> Iterator[tuple[PgConnection, Transaction]]:
        """One write transaction under ``WRITE_LOCK``, logging and notifying what it changed as it commits.

        Unless ``settling`` (the start's own check, which explains a refusal better), it first checks
        that this node's root key is still the store's.
        """
        with _unavailable_as_timeout():
            with self._pool.connection() as raw, raw.transaction():
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                conn = PgConnection(raw)
                if not settling:
                    rootkey_state.require_active(conn, self.root_key)
                tx = Transaction(conn, self.root_key)
                yield conn, tx
                committed = 0
                if tx.changed:
                    changelog.append(conn, tx.changed, time.time())
                    committed = changelog.last_seq(conn)
                    conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(committed)))
            self._advance(committed)

    def mutate(self, change: Callable[[Transaction], T]) -> T:
        with self._write() as (_conn, tx):
            return change(tx)

    def prune_changes(self, older_than: float) -> None:
        with self._write() as (conn, _tx):
            changelog.prune(conn, older_than)


def _configure(conn: psycopg.Connection[Row]) -> None:
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")


@contextmanager
def _unavailable_as_timeout() -> Iterator[None]:
    """The database unreachable or too slow, as the KMS error AWS uses for a dependency that timed out."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise DependencyTimeoutError("The key store did not answer; retry the request") from exc
