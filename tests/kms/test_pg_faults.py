"""Nodes on PostgreSQL when the database goes away: cryptography keeps serving from memory, management
fails fast with the AWS error for a dependency, ``/readyz`` says why, and all resumes by itself; a node
killed with ``kill -9`` loses nothing and the other nodes' clients see no error."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kmsgate.core.principal import account_root
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.keyref import Namespace
from kmsgate.kms.pg_listener import FALLBACK_CHECK_SECONDS, RETRY_MAX_SECONDS
from kmsgate.kms.pg_store import CONNECT_TIMEOUT_SECONDS, POOL_TIMEOUT_SECONDS, PgKeyStore
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService
from tests.conftest import KmsgateServer, start_server
from tests.postgres import RestartablePostgres, fresh_database

from .helpers import ACCOUNT_ID, REGION

# Generous: a management call waits for a connection (the pool's timeout) and at most one connect
# attempt (its own timeout) before it answers; anything near this bound is a hang, not slowness.
ANSWERS_WITHIN_S = 3 * (POOL_TIMEOUT_SECONDS + CONNECT_TIMEOUT_SECONDS)
# After the database returns: the listener's longest back-off, then one periodic check, with room.
RESUMES_WITHIN_S = 3 * (RETRY_MAX_SECONDS + FALLBACK_CHECK_SECONDS + POOL_TIMEOUT_SECONDS)
DEPENDENCY_ERRORS = {"DependencyTimeoutException", "KMSInternalException"}


@pytest.fixture(scope="module")
def restartable_postgres() -> Iterator[RestartablePostgres]:
    # Not under pytest's temporary directory: a pytest session starting beside this one makes that
    # owner-only again, and the server, running as pgserver's own user, could not start there.
    base_dir = Path(tempfile.mkdtemp(prefix="kmsgate-pg-faults-"))
    try:
        server = RestartablePostgres(base_dir)
        yield server
        server.close()
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture
def database(restartable_postgres: RestartablePostgres) -> Iterator[str]:
    restartable_postgres.start()  # a test that failed while it was down leaves it running for the next
    with fresh_database(restartable_postgres.url) as url:
        yield url


@pytest.fixture
def start_nodes(database: str, tmp_path: Path) -> Iterator[Callable[[int], list[KmsgateServer]]]:
    """Starts nodes on one database with the same root key; stops (or finds killed) them after the test."""
    env = {"KMSGATE_KEY_STORE": database, "KMSGATE_ROOT_KEY": base64.b64encode(os.urandom(32)).decode()}
    started: list[KmsgateServer] = []

    def start(count: int) -> list[KmsgateServer]:
        for _ in range(count):
            started.append(start_server(tmp_path / f"node{len(started)}", **env))
        return started[-count:]

    yield start
    for node in reversed(started):
        node.stop()


def _until(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {within_s} s"
        time.sleep(0.05)


def _readyz(node: KmsgateServer) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _error_code(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return None


def _timed_error_code(call: Callable[[], Any]) -> tuple[str | None, float]:
    started = time.monotonic()
    code = _error_code(call)
    return code, time.monotonic() - started


def test_with_postgresql_down_crypto_serves_management_fails_fast_readyz_says_why_and_all_resumes(
    restartable_postgres: RestartablePostgres, start_nodes: Callable[[int], list[KmsgateServer]],
) -> None:
    a_node, b_node = start_nodes(2)
    a, b = a_node.kms_client(), b_node.kms_client()
    key_id = a.create_key(Description="before the outage")["KeyMetadata"]["KeyId"]
    _until(lambda: _error_code(lambda: b.encrypt(KeyId=key_id, Plaintext=b"x")) is None, 5.0, "key seen on b")
    blob = a.encrypt(KeyId=key_id, Plaintext=b"made before")["CiphertextBlob"]
    status, body = _readyz(a_node)
    assert status == 200 and body["checks"]["key_store"] == "ok"

    restartable_postgres.stop()
    try:
        for client in (a, b):
            assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made before"
            made = client.encrypt(KeyId=key_id, Plaintext=b"made during")["CiphertextBlob"]
            assert client.decrypt(CiphertextBlob=made)["Plaintext"] == b"made during"
            data_key = client.generate_data_key(KeyId=key_id, KeySpec="AES_256")
            assert client.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]

        for call in (lambda: a.create_key(), lambda: b.disable_key(KeyId=key_id),
                     lambda: a.create_alias(AliasName="alias/during", TargetKeyId=key_id)):
            code, took = _timed_error_code(call)
            assert code in DEPENDENCY_ERRORS
            assert took < ANSWERS_WITHIN_S

        status, body = _readyz(a_node)
        assert status == 503
        assert body["checks"]["key_store"] == "failed"
        assert body["checks"]["kms"] == "ok"  # the keys it holds still serve
        assert body["reasons"]["key_store"]
        assert "password" not in json.dumps(body)
    finally:
        restartable_postgres.start()

    _until(lambda: _readyz(a_node)[0] == 200 and _readyz(b_node)[0] == 200, RESUMES_WITHIN_S, "ready again")
    made_after = a.create_key(Description="after the outage")["KeyMetadata"]["KeyId"]
    _until(lambda: _error_code(lambda: b.encrypt(KeyId=made_after, Plaintext=b"x")) is None, RESUMES_WITHIN_S,
           "a key made on a after the outage encrypts on b")
    a.disable_key(KeyId=key_id)
    _until(lambda: _error_code(lambda: b.encrypt(KeyId=key_id, Plaintext=b"x")) == "DisabledException",
           RESUMES_WITHIN_S, "a key disabled on a after the outage is refused on b")


def test_a_node_killed_mid_load_loses_nothing_and_the_others_clients_see_no_error(
    start_nodes: Callable[[int], list[KmsgateServer]],
) -> None:
    a_node, b_node, c_node = start_nodes(3)
    a, b, c = a_node.kms_client(), b_node.kms_client(), c_node.kms_client()
    key_id = a.create_key(Description="shared")["KeyMetadata"]["KeyId"]
    _until(lambda: all(_error_code(lambda: n.describe_key(KeyId=key_id)) is None for n in (b, c)), 5.0,
           "key seen on b and c")
    blob = b.encrypt(KeyId=key_id, Plaintext=b"made on b")["CiphertextBlob"]
    assert c.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made on b"

    acknowledged: list[str] = []  # keys whose CreateKey some node answered
    errors: list[str] = []  # what a client of b or c saw go wrong
    stop = threading.Event()

    def create_on_a() -> None:
        client = a_node.kms_client()
        while not stop.is_set():
            try:
                acknowledged.append(client.create_key()["KeyMetadata"]["KeyId"])
            except Exception:  # a's own connections fail once it is killed: no promise is broken
                return

    def serve_on_b_and_c() -> None:
        while not stop.is_set():
            try:
                made = b.encrypt(KeyId=key_id, Plaintext=b"load")["CiphertextBlob"]
                if c.decrypt(CiphertextBlob=made)["Plaintext"] != b"load":
                    errors.append("c decrypted another plaintext")
                acknowledged.append(c.create_key()["KeyMetadata"]["KeyId"])
            except Exception as exc:
                errors.append(repr(exc))

    writers = [threading.Thread(target=create_on_a), threading.Thread(target=serve_on_b_and_c)]
    for thread in writers:
        thread.start()
    try:
        _until(lambda: len(acknowledged) >= 10, 60.0, "keys created under load")
        a_node.kill()
        after_kill = len(acknowledged)
        _until(lambda: len(acknowledged) >= after_kill + 10, 60.0, "b and c serving after a was killed")
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=60)

    assert errors == []

    def keys_on(client: Any) -> set[str]:
        held = set()
        for page in client.get_paginator("list_keys").paginate():
            held.update(entry["KeyId"] for entry in page["Keys"])
        return held

    for client in (b, c):  # everything acknowledged, by a before it died or by c, is held by both
        _until(lambda: set(acknowledged) <= keys_on(client), 5.0, "acknowledged keys listed")
    assert all(b.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled" for key in acknowledged)


async def test_a_node_that_was_told_of_a_change_just_before_the_outage_keeps_serving_what_it_holds(
    restartable_postgres: RestartablePostgres, database: str,
) -> None:
    root_key, caller = RootKey(os.urandom(32)), account_root(ACCOUNT_ID)
    namespace = Namespace(region=REGION, account_id=ACCOUNT_ID)
    first = KmsService(PgKeyStore(database, root_key), namespace, FakeClock())
    second_store = PgKeyStore(database, root_key)
    second = KmsService(second_store, namespace, FakeClock())
    try:
        key_id = (await first.create_key(caller=caller))["key_metadata"]["key_id"]
        blob = (await second.encrypt(caller=caller, key_id=key_id, plaintext=b"held")).ciphertext_blob
        told = second_store.data_version()
        made_before = (await first.create_key(caller=caller))["key_metadata"]["key_id"]  # second has not read it
        await asyncio.to_thread(_until, lambda: second_store.data_version() > told, 5.0, "second notified")

        restartable_postgres.stop()
        try:
            started = time.monotonic()
            for _ in range(3):
                made = await second.encrypt(caller=caller, key_id=key_id, plaintext=b"during")
                opened = await second.decrypt(caller=caller, ciphertext_blob=made.ciphertext_blob)
                assert opened.plaintext == b"during"
                assert (await second.decrypt(caller=caller, ciphertext_blob=blob)).plaintext == b"held"
            assert time.monotonic() - started < ANSWERS_WITHIN_S  # one wait for the store at most, no hang
        finally:
            restartable_postgres.start()
        deadline = time.monotonic() + RESUMES_WITHIN_S
        while not any(k["key_id"] == made_before for k in (await second.list_keys(caller=caller))["keys"]):
            assert time.monotonic() < deadline, "the change notified before the outage is loaded after it"
            await asyncio.sleep(0.05)
    finally:
        first.close()
        second.close()
