"""The PostgreSQL key store's schema: versioned migrations, applied at start under an advisory lock.

``kmsgate_schema`` lists the migrations applied (version, when). ``migrate`` takes a
transaction-scoped advisory lock first, so when several nodes start at once one applies what is
missing and the others, waiting on the lock, then find nothing left to do. PostgreSQL's DDL is
transactional: a migration that fails leaves the schema as it was. A database migrated by a
newer kmsgate (a version this one does not know) is refused rather than used.

The tables mirror the SQLite store's (``kmsgate.kms.sqlite_store``) column for column, so the
SQL in ``kmsgate.kms.transaction`` and ``kmsgate.kms.loader`` runs on both. Material is held
only wrapped under the root key (``wrapped``): the database never sees key material.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

MIGRATION_LOCK = 0x6B6D_7367_0001  # pg_advisory_xact_lock key: "kmsg" + 1
WRITE_LOCK = 0x6B6D_7367_0002  # held by every write transaction until it commits (kmsgate.kms.pg_store)

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE keys (key_id TEXT PRIMARY KEY, record BYTEA NOT NULL);
        CREATE TABLE materials (
            key_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            material_id TEXT NOT NULL,
            wrapped BYTEA NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            rotation_type TEXT,
            origin TEXT NOT NULL,
            PRIMARY KEY (key_id, version)
        );
        CREATE TABLE aliases (
            alias_name TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX aliases_by_key ON aliases (key_id);
        CREATE TABLE deleted_keys (key_id TEXT PRIMARY KEY, deleted DOUBLE PRECISION NOT NULL);
        CREATE TABLE grants (
            grant_id TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            record BYTEA NOT NULL,
            grantee_principal TEXT NOT NULL DEFAULT '',
            name TEXT
        );
        CREATE INDEX grants_by_key ON grants (key_id);
        CREATE INDEX grants_by_grantee ON grants (key_id, grantee_principal);
        CREATE INDEX grants_by_name ON grants (key_id, name);
        CREATE TABLE key_usage (key_id TEXT PRIMARY KEY, used DOUBLE PRECISION NOT NULL, operation TEXT NOT NULL);
        CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE changes (
            seq BIGSERIAL PRIMARY KEY,
            kind TEXT NOT NULL,
            key_id TEXT NOT NULL,
            name TEXT NOT NULL,
            changed DOUBLE PRECISION NOT NULL
        );
        """,
    ),
)
LATEST_VERSION = MIGRATIONS[-1][0]


class SchemaError(Exception):
    """The database's schema is not one this kmsgate can use."""


def migrate(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[int, list[int]]:
    """Apply the missing migrations in one transaction; returns (schema version, versions applied now)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS kmsgate_schema (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)"
        )
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM kmsgate_schema").fetchone()
        current = int(row[0]) if row is not None else 0
        if current > LATEST_VERSION:
            raise SchemaError(
                f"the key store's schema is version {current}, newer than this kmsgate knows ({LATEST_VERSION}): "
                "upgrade kmsgate"
            )
        applied = []
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            conn.execute(statements)  # several statements, no parameters: one simple query
            conn.execute("INSERT INTO kmsgate_schema (version, applied) VALUES (%s, %s)", (version, time.time()))
            applied.append(version)
    return max(current, LATEST_VERSION), applied
