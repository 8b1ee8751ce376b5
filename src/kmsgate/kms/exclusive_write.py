"""One write transaction on a key store that no other writer runs beside.

The key-store tools (``kmsgate store copy``, ``kmsgate root-key rotate``) write through this, outside
a running store object: SQLite in WAL mode with ``BEGIN IMMEDIATE``; PostgreSQL under the same
advisory lock the stores' own writers take. Either way the schema is created or migrated first.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from kmsgate.kms.sql import Connection
from kmsgate.kms.sqlite_store import create_schema
from kmsgate.kms.stores import KeyStoreLocation

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a SQLite writer waits for another one to finish."""


@contextmanager
def exclusive_write(location: KeyStoreLocation, *, create: bool) -> Iterator[Connection]:
    """A write transaction on ``location``, committed when the block ends, rolled back if it raises.

    ``create``: a SQLite file that does not exist yet is made (mode 0600, its directory 0700);
    without it the caller has checked that the file exists."""
    if location.sqlite_path is not None:
        path = location.sqlite_path
        if create:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            create_schema(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    import psycopg

    from kmsgate.kms.pg_schema import WRITE_LOCK, migrate
    from kmsgate.kms.pg_sql import PgConnection

    with psycopg.connect(location.postgres_url or "", autocommit=True) as raw:
        migrate(raw)
        with raw.transaction():
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield PgConnection(raw)
