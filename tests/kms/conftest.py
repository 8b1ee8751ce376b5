"""Fixtures for the KMS tests: an in-process ``KmsService`` on a ``FakeClock``, and boto3 helpers.

The service and its key store run once on SQLite and once on PostgreSQL (``key_store_url``):
every test that takes ``service`` or ``open_key_store`` holds for both stores.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from kmsgate.core.principal import Caller, account_root
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service
from kmsgate.kms.sqlite_store import DB_FILENAME
from kmsgate.kms.store import KeyStore
from kmsgate.kms.stores import open_store

from .helpers import ACCOUNT_ID, REGION


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def caller() -> Caller:
    return account_root(ACCOUNT_ID)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(params=["sqlite", "postgresql"])
def key_store_url(request: pytest.FixtureRequest) -> str | None:
    """``--key-store`` for this run of the test: ``None`` (SQLite in the data dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def open_key_store(key_store_url: str | None, tmp_path: Path) -> Iterator[Callable[[RootKey], KeyStore]]:
    """Opens key stores on this test's one store (like worker processes or nodes sharing it); closes them after."""
    opened: list[KeyStore] = []

    def open_one(root_key: RootKey) -> KeyStore:
        store = open_store(key_store_url, tmp_path, root_key)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
async def service(data_dir: Path, clock: FakeClock, key_store_url: str | None) -> AsyncIterator[KmsService]:
    svc = open_service(
        data_dir, RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID, clock=clock, key_store=key_store_url
    )
    yield svc
    svc.close()


@pytest.fixture
def count_stored(key_store_url: str | None, data_dir: Path) -> Callable[[str, str], int]:
    """``count_stored(table, key_id)``: the rows of a key in a table, read from the database itself."""

    def count(table: str, key_id: str) -> int:
        if key_store_url is None:
            with sqlite3.connect(data_dir / DB_FILENAME) as conn:
                return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE key_id = ?", (key_id,)).fetchone()[0])
        with psycopg.connect(key_store_url) as pg:
            query = sql.SQL("SELECT COUNT(*) FROM {} WHERE key_id = %s").format(sql.Identifier(table))
            row = pg.execute(query, (key_id,)).fetchone()
            return int(row[0]) if row is not None else 0

    return count
