"""The PostgreSQL key store: migrations under an advisory lock, the root-key check, what the
database holds, and racing writes from several nodes decided by the database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kmsgate.core.errors import AlreadyExistsError, NotFoundError
from kmsgate.core.principal import Caller
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.keyref import Namespace
from kmsgate.kms.pg_schema import LATEST_VERSION, SchemaError, migrate
from kmsgate.kms.pg_store import PgKeyStore
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.service import KmsService

from .helpers import ACCOUNT_ID, REGION

DAY = 86400.0


def _node(url: str, root_key: RootKey, clock: FakeClock | None = None) -> KmsService:
    return KmsService(PgKeyStore(url, root_key), Namespace(region=REGION, account_id=ACCOUNT_ID), clock or FakeClock())


def test_nodes_migrating_at_once_apply_each_migration_exactly_once(postgres_url: str) -> None:
    results: list[tuple[int, list[int]]] = []
    start = threading.Barrier(4)

    def node() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            start.wait()
            results.append(migrate(conn))

    threads = [threading.Thread(target=node) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(applied for _, applied in results) == [[], [], [], list(range(1, LATEST_VERSION + 1))]
    assert {version for version, _ in results} == {LATEST_VERSION}
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM kmsgate_schema").fetchone() == (LATEST_VERSION,)


def test_a_schema_newer_than_this_kmsgate_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO kmsgate_schema VALUES (%s, 0)", (LATEST_VERSION + 1,))
        with pytest.raises(SchemaError, match="newer than this kmsgate knows"):
            migrate(conn)


def test_a_node_with_another_root_key_is_refused(postgres_url: str) -> None:
    PgKeyStore(postgres_url, RootKey(os.urandom(32))).close()
    with pytest.raises(RootKeyError, match="not the one this key store was created with"):
        PgKeyStore(postgres_url, RootKey(os.urandom(32)))


async def test_the_database_holds_no_key_material_and_no_plaintext(postgres_url: str, caller: Caller) -> None:
    root_key = RootKey(os.urandom(32))
    service = _node(postgres_url, root_key)
    try:
        key_id = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
        await service.rotate_key_on_demand(caller=caller, key_id=key_id)
        plaintext = b"a secret the database must not see"
        await service.encrypt(caller=caller, key_id=key_id, plaintext=plaintext)
        secrets = [material.secret for material in service._snapshot.materials.values()]  # the clear material
        assert len(secrets) == 2
        dump = bytearray()
        with psycopg.connect(postgres_url) as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
            for table in tables:
                for row in conn.execute(f"SELECT * FROM {table}").fetchall():  # noqa: S608 - catalog names
                    for value in row:
                        dump += value if isinstance(value, bytes) else str(value).encode()
        for secret in secrets:
            assert secret not in dump and secret.hex().encode() not in dump
        assert plaintext not in dump
    finally:
        service.close()


async def _until_seen(node: Any, caller: Caller, key_id: str, bound_s: float = 5.0) -> None:
    """Wait (bounded) until ``node`` knows the key another node created."""
    deadline = time.monotonic() + bound_s
    while True:
        try:
            await node.describe_key(caller=caller, key_id=key_id)
            return
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_two_nodes_rotating_one_key_at_once_each_add_a_version(postgres_url: str, caller: Caller) -> None:
    root_key = RootKey(os.urandom(32))
    first, second = _node(postgres_url, root_key), _node(postgres_url, root_key)
    try:
        key_id = (await first.create_key(caller=caller))["key_metadata"]["key_id"]
        await _until_seen(second, caller, key_id)  # nodes learn of a commit by notification, within a second
        await asyncio.gather(
            *(node.rotate_key_on_demand(caller=caller, key_id=key_id) for node in (first, second, first, second))
        )
        # The first node learns of the second's rotations by notification: wait, bounded, for its view to
        # settle; a rotation lost to the race would keep the count below 4 for good.
        deadline = time.monotonic() + 5
        while True:
            rotations = await first.list_key_rotations(caller=caller, key_id=key_id)
            if len(rotations["rotations"]) >= 4 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert len(rotations["rotations"]) == 4
        assert (await first.describe_key(caller=caller, key_id=key_id))["key_metadata"]["current_key_material_id"]
    finally:
        first.close()
        second.close()


async def test_an_alias_name_created_on_two_nodes_at_once_is_taken_once(postgres_url: str, caller: Caller) -> None:
    root_key = RootKey(os.urandom(32))
    first, second = _node(postgres_url, root_key), _node(postgres_url, root_key)
    try:
        key_a = (await first.create_key(caller=caller))["key_metadata"]["key_id"]
        key_b = (await second.create_key(caller=caller))["key_metadata"]["key_id"]
        outcomes = await asyncio.gather(
            first.create_alias(caller=caller, alias_name="alias/contested", target_key_id=key_a),
            second.create_alias(caller=caller, alias_name="alias/contested", target_key_id=key_b),
            return_exceptions=True,
        )
        assert sum(isinstance(outcome, AlreadyExistsError) for outcome in outcomes) == 1
        assert sum(outcome == {} or outcome is None for outcome in outcomes) == 1
    finally:
        first.close()
        second.close()


async def test_a_grant_name_used_on_two_nodes_at_once_makes_one_grant(postgres_url: str, caller: Caller) -> None:
    root_key = RootKey(os.urandom(32))
    first, second = _node(postgres_url, root_key), _node(postgres_url, root_key)
    try:
        key_id = (await first.create_key(caller=caller))["key_metadata"]["key_id"]
        await _until_seen(second, caller, key_id)  # nodes learn of a commit by notification, within a second
        grantee = f"arn:aws:iam::{ACCOUNT_ID}:user/app"
        made = await asyncio.gather(*(
            node.create_grant(caller=caller, key_id=key_id, grantee_principal=grantee, operations=["Encrypt"],
                              name="app-grant")
            for node in (first, second, first, second)
        ))
        assert len({grant["grant_id"] for grant in made}) == 1
        # Each node learns of the other's commit by notification (within a second, as grants in AWS
        # are eventually consistent): wait, bounded, for the second node's view to settle.
        deadline = time.monotonic() + 5
        while True:
            grants = (await second.list_grants(caller=caller, key_id=key_id))["grants"]
            if grants or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert len(grants) == 1
    finally:
        first.close()
        second.close()


async def test_a_deletion_falling_due_is_done_by_one_node_only(postgres_url: str, caller: Caller) -> None:
    root_key, clock = RootKey(os.urandom(32)), FakeClock()
    nodes = [_node(postgres_url, root_key, clock) for _ in range(3)]
    try:
        key_id = (await nodes[0].create_key(caller=caller))["key_metadata"]["key_id"]
        await nodes[0].schedule_key_deletion(caller=caller, key_id=key_id, pending_window_in_days=7)
        clock.advance(7 * DAY)
        reports = await asyncio.gather(*(node.run_due() for node in nodes))
        assert [report.deleted for report in reports].count((key_id,)) == 1
        assert [report.deleted for report in reports].count(()) == 2
    finally:
        for node in nodes:
            node.close()


def test_the_store_url_keeps_its_password_out_of_descriptions(tmp_path: Path) -> None:
    from kmsgate.kms.stores import parse_key_store

    described = parse_key_store("postgresql://kms:s3cret@db:5432/kms?sslmode=verify-full&password=x", tmp_path)
    assert "s3cret" not in described.describe() and "password=x" not in described.describe()
    assert described.describe() == "postgresql://kms:***@db:5432/kms?sslmode=verify-full&password=***"


def test_store_migrate_applies_the_migrations_once_and_then_finds_nothing_to_do(postgres_url: str) -> None:
    def migrate_command() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "kmsgate", "store", "migrate", "--key-store", postgres_url],
            capture_output=True, text=True, timeout=60, check=True,
        )
        return done.stdout.strip()

    every = ", ".join(map(str, range(1, LATEST_VERSION + 1)))
    assert migrate_command().endswith(f"schema version {LATEST_VERSION} (applied {every})")
    assert migrate_command().endswith(f"schema version {LATEST_VERSION} (nothing to apply)")
