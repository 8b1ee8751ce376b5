"""Copying a whole key store to another (``kmsgate store copy``): SQLite to PostgreSQL, back, or alike.

What is copied is every row that makes the KMS: keys (with their policies, tags and rotation
state, held in each key's record), material versions, aliases, grants, deletion markers, key
usage and the settings (when usage tracking began, the root key's check value).
Material is copied as stored, wrapped under the root key: the copy never unwraps it, so it needs
no root key, and the target must be served with the same root key as the source. The change log
is not copied: nodes starting on the target read it in full.

The source is read in one transaction (a consistent snapshot); the target is written in one
transaction, so a copy that fails leaves the target as it was. A target that already holds keys,
aliases or grants is refused unless ``replace`` is given, which empties it first. Nodes must not
serve either store while it runs: a node on the target would not see rows written beside its
change log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from kmsgate.kms.exclusive_write import exclusive_write
from kmsgate.kms.pg_sql import PgConnection
from kmsgate.kms.sql import Connection
from kmsgate.kms.stores import KeyStoreLocation

# Table and columns, in the order written; the same in both stores (``kmsgate.kms.pg_schema``).
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("keys", ("key_id", "record")),
    ("materials", ("key_id", "version", "material_id", "wrapped", "created", "rotation_type", "origin")),
    ("aliases", ("alias_name", "key_id", "created", "updated")),
    ("grants", ("grant_id", "key_id", "record", "grantee_principal", "name")),
    ("deleted_keys", ("key_id", "deleted")),
    ("key_usage", ("key_id", "used", "operation")),
    ("settings", ("name", "value")),
)
OCCUPYING_TABLES = ("keys", "aliases", "grants", "deleted_keys")  # any row here: the target is in use


class StoreCopyError(Exception):
    """The copy cannot be made; nothing was written."""


@dataclass(frozen=True, slots=True)
class CopyReport:
    rows: dict[str, int]  # table -> rows copied


def copy_store(source: KeyStoreLocation, target: KeyStoreLocation, *, replace: bool = False) -> CopyReport:
    """Copy every row of ``source`` into ``target`` (created if need be); blocking."""
    if source == target:
        raise StoreCopyError("the source and the target are the same key store")
    try:
        return _copy(source, target, replace)
    except (sqlite3.Error, psycopg.Error, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreCopyError(f"the copy failed, the target is unchanged: {first}") from exc


def _copy(source: KeyStoreLocation, target: KeyStoreLocation, replace: bool) -> CopyReport:
    with _reading(source) as reader:
        with exclusive_write(target, create=True) as writer:
            present = [table for table in OCCUPYING_TABLES if writer.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()]
            if present and not replace:
                raise StoreCopyError(
                    f"the target already holds {', '.join(present)}; give --force to replace its contents"
                )
            for table, _columns in reversed(TABLES):
                writer.execute(f"DELETE FROM {table}")
            writer.execute("DELETE FROM changes")
            rows: dict[str, int] = {}
            for table, columns in TABLES:
                listed = ", ".join(columns)
                found = reader.execute(f"SELECT {listed} FROM {table}").fetchall()
                placeholders = ", ".join("?" for _ in columns)
                writer.executemany(
                    f"INSERT INTO {table} ({listed}) VALUES ({placeholders})", [tuple(row) for row in found]
                )
                rows[table] = len(found)
    return CopyReport(rows)


@contextmanager
def _reading(location: KeyStoreLocation) -> Iterator[Connection]:
    if location.sqlite_path is not None:
        if not location.sqlite_path.is_file():
            raise StoreCopyError(f"{location.describe()}: no such key store")
        conn = sqlite3.connect(f"{location.sqlite_path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    with psycopg.connect(location.postgres_url or "", autocommit=True) as raw, raw.transaction():
        raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if raw.execute("SELECT to_regclass('keys')").fetchone() in (None, (None,)):
            raise StoreCopyError(f"{location.describe()}: no key store there")
        yield PgConnection(raw)


