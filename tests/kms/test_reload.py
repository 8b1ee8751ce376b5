"""Reloading the service's in-memory view: a reload reads only what changed since the view it
holds, reads it off the event-loop thread, and sees what another connection (another worker
process, or another node on PostgreSQL) committed. Every test runs on both stores."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kmsgate.auth.grants import Grant, new_grant
from kmsgate.core.principal import Caller
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.keyref import Namespace
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService
from kmsgate.kms.snapshot import Snapshot
from kmsgate.kms.store import KeyStore
from kmsgate.kms.transaction import Transaction

from .helpers import ACCOUNT_ID, REGION

SEEDED_GRANTS = 5_000
OpenKeyStore = Callable[[RootKey], KeyStore]


@pytest.fixture
def root_key() -> RootKey:
    return RootKey(os.urandom(32))


def _service(store: Any) -> KmsService:
    return KmsService(store, Namespace(region=REGION, account_id=ACCOUNT_ID), FakeClock())


def _grant(key_arn: str, n: int, operations: tuple[str, ...] = ("Encrypt",)) -> Grant:
    return new_grant(
        key_arn=key_arn, grantee_principal=f"arn:aws:iam::{ACCOUNT_ID}:user/u{n}",
        operations=list(operations), account_id=ACCOUNT_ID, now=float(n),
    )


def _seed(key_id: str, key_arn: str, count: int) -> Callable[[Transaction], None]:
    def change(tx: Transaction) -> None:
        for n in range(count):
            tx.put_grant(key_id, _grant(key_arn, n))

    return change


async def _next_turn() -> None:
    """Let the event loop finish its turn: a commit made outside the service is seen after it."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _view(snapshot: Snapshot) -> tuple[object, ...]:
    """A snapshot as comparable values (a key's grants as a mapping: their order carries no meaning)."""
    grants = {key_id: {g.grant_id: g for g in held} for key_id, held in snapshot.grants.items()}
    return snapshot.keys, snapshot.aliases, snapshot.materials, grants


async def test_a_reload_after_one_create_grant_among_5000_grants_reads_only_the_changed_rows(
    open_key_store: OpenKeyStore, root_key: RootKey, caller: Caller
) -> None:
    store = open_key_store(root_key)
    service = _service(store)
    try:
        key_id = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
        key_arn = service.namespace.key_arn(key_id)
        store.mutate(_seed(key_id, key_arn, SEEDED_GRANTS))
        await _next_turn()
        await service.list_grants(caller=caller, key_id=key_id, limit=1)  # takes the seeded grants in
        assert len(service.grants_for(key_arn)) == SEEDED_GRANTS
        before = store.rows_loaded
        await service.create_grant(
            caller=caller, key_id=key_id, grantee_principal=f"arn:aws:iam::{ACCOUNT_ID}:user/new",
            operations=["Decrypt"],
        )
        assert len(service.grants_for(key_arn)) == SEEDED_GRANTS + 1
        assert store.rows_loaded - before == 2  # the change-log row and the new grant's row
    finally:
        service.close()


class ThreadRecordingStore:
    """Wraps a real ``KeyStore``; notes each method called on the thread that created the wrapper."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._thread = threading.get_ident()
        self.called_on_loop_thread: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:
                self.called_on_loop_thread.add(name)
            return attribute(*args, **kwargs)

        return call


async def test_requests_read_the_store_off_the_event_loop_thread_except_its_data_version(
    open_key_store: OpenKeyStore, root_key: RootKey, caller: Caller
) -> None:
    recording = ThreadRecordingStore(open_key_store(root_key))
    service = _service(recording)
    other = _service(open_key_store(root_key))  # another worker process's service
    try:
        recording.called_on_loop_thread.clear()  # the first load, at start-up, runs before serving
        key_id = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
        await service.create_grant(
            caller=caller, key_id=key_id, grantee_principal=f"arn:aws:iam::{ACCOUNT_ID}:user/a",
            operations=["Encrypt"],
        )
        await other.disable_key(caller=caller, key_id=key_id)
        # SQLite sees the other commit on the next request; PostgreSQL once it is notified.
        await _until(lambda: _state(service, caller, key_id), "Disabled")
        assert recording.called_on_loop_thread == {"data_version"}
    finally:
        service.close()
        other.close()


async def _state(service: KmsService, caller: Caller, key_id: str) -> str:
    return str((await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]["key_state"])


async def _until(read: Callable[[], Awaitable[object]], wanted: object, within_s: float = 2.0) -> None:
    """Wait until ``read()`` gives ``wanted`` (a change reaches another node within a second)."""
    deadline = time.monotonic() + within_s
    while (got := await read()) != wanted:
        assert time.monotonic() < deadline, f"still {got!r}, not {wanted!r}, after {within_s} s"
        await asyncio.sleep(0.01)


async def _key_with_material_alias_and_grants(service: KmsService, caller: Caller) -> str:
    key_id: str = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
    await service.rotate_key_on_demand(caller=caller, key_id=key_id)
    await service.create_alias(caller=caller, alias_name="alias/app", target_key_id=key_id)
    for user in ("a", "b", "c"):
        await service.create_grant(
            caller=caller, key_id=key_id, grantee_principal=f"arn:aws:iam::{ACCOUNT_ID}:user/{user}",
            operations=["Encrypt"],
        )
    grant_id = (await service.list_grants(caller=caller, key_id=key_id, limit=1))["grants"][0]["GrantId"]
    await service.revoke_grant(caller=caller, key_id=key_id, grant_id=grant_id)
    return key_id


async def test_changes_committed_through_another_connection_are_loaded(
    open_key_store: OpenKeyStore, root_key: RootKey, caller: Caller
) -> None:
    first, second = open_key_store(root_key), open_key_store(root_key)
    writer = _service(second)
    try:
        held = first.load()
        key_id = await _key_with_material_alias_and_grants(writer, caller)
        loaded = first.load_changes(held)
        assert not loaded.full and loaded.change_seq > held.change_seq
        assert _view(loaded.snapshot) == _view(first.load().snapshot)
        assert loaded.snapshot.keys[key_id].current_version == 2
        assert {version for owner, version in loaded.snapshot.materials if owner == key_id} == {1, 2}
        assert loaded.snapshot.aliases["alias/app"].key_id == key_id
        assert len(loaded.snapshot.grants[key_id]) == 2
    finally:
        writer.close()
        first.close()


async def test_a_key_deleted_by_another_connection_leaves_nothing_behind_in_the_view(
    open_key_store: OpenKeyStore, root_key: RootKey, caller: Caller
) -> None:
    first, second = open_key_store(root_key), open_key_store(root_key)
    clock = FakeClock()
    writer = KmsService(second, Namespace(region=REGION, account_id=ACCOUNT_ID), clock)
    try:
        doomed = await _key_with_material_alias_and_grants(writer, caller)
        kept = (await writer.create_key(caller=caller))["key_metadata"]["key_id"]
        held = first.load()
        await writer.schedule_key_deletion(caller=caller, key_id=doomed, pending_window_in_days=7)
        clock.advance(8 * 86400)
        assert (await writer.run_due()).deleted == (doomed,)
        loaded = first.load_changes(held)
        assert not loaded.full
        assert _view(loaded.snapshot) == _view(first.load().snapshot)
        assert list(loaded.snapshot.keys) == [kept]
        assert loaded.snapshot.aliases == {} and loaded.snapshot.grants == {}
        assert {owner for owner, _ in loaded.snapshot.materials} == {kept}
    finally:
        writer.close()
        first.close()


async def test_a_commit_that_changes_no_served_row_is_loaded_by_reading_nothing(
    open_key_store: OpenKeyStore, root_key: RootKey, caller: Caller
) -> None:
    store = open_key_store(root_key)
    try:
        service = _service(store)
        key_id = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
        held = store.load()
        store.mutate(lambda tx: tx.record_usage(key_id, 1.0, "Encrypt"))  # what a usage flush commits
        before = store.rows_loaded
        loaded = store.load_changes(held)
        assert store.rows_loaded == before and loaded.snapshot is held.snapshot
    finally:
        store.close()


async def test_a_view_older_than_the_pruned_change_log_is_loaded_in_full(
    open_key_store: OpenKeyStore, root_key: RootKey, caller: Caller
) -> None:
    first, second = open_key_store(root_key), open_key_store(root_key)
    writer = _service(second)
    try:
        held = first.load()
        key_id = await _key_with_material_alias_and_grants(writer, caller)
        second.prune_changes(older_than=float("inf"))
        loaded = first.load_changes(held)
        assert loaded.full
        assert _view(loaded.snapshot) == _view(first.load().snapshot)
        assert len(loaded.snapshot.grants[key_id]) == 2
        # Once caught up, the next change is read incrementally again.
        await writer.create_grant(
            caller=caller, key_id=key_id, grantee_principal=f"arn:aws:iam::{ACCOUNT_ID}:user/d",
            operations=["Decrypt"],
        )
        after = first.load_changes(loaded)
        assert not after.full and len(after.snapshot.grants[key_id]) == 3
    finally:
        writer.close()
        first.close()
