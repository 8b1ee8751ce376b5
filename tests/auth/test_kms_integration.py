"""The auth pieces plugged into the KMS JSON adapter and service, driven by boto3 over loopback.

The server here is wired in the test (the production wiring lives in ``create_app``): the real
``KmsApi`` and ``KmsService`` with ``SigV4Authenticator``, ``KeyPolicyAuthorizer`` and the audit
log. Grants are not stored by the service yet, so grants are covered by the authorizer tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError

from kmsgate.auth.adapters import KeyPolicyAuthorizer, KmsAuditSink, SigV4Authenticator
from kmsgate.auth.audit import AuditLog
from kmsgate.auth.key_policies import admin_user_key_policy
from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.web.exchange import LOAD, Load

from .conftest import (
    ACCOUNT, ALICE_AKID, ALICE_ARN, ALICE_SECRET, BOB_AKID, BOB_ARN, BOB_SECRET, REGION, ROOT_AKID, ROOT_SECRET,
)

kms_api = pytest.importorskip("kmsgate.web.kms_api", reason="the KMS JSON adapter is not in this tree")
kms_service = pytest.importorskip("kmsgate.kms.service", reason="the KMS service is not in this tree")
from kmsgate.kms.rootkey import RootKey  # noqa: E402

CAROL_ARN = f"arn:aws:iam::{ACCOUNT}:user/carol"


@dataclass
class KmsServer:
    url: str
    audit_path: Path
    stop: Callable[[], None]


@pytest.fixture
def kms_server(tmp_path: Path, directory, clock) -> Iterator[KmsServer]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}
    audit_path = tmp_path / "audit.log"

    async def start() -> None:
        service = kms_service.open_service(
            tmp_path, RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT,
            authorizer=KeyPolicyAuthorizer(directory, clock=clock),
        )
        audit = AuditLog(audit_path)
        await audit.start()
        api = kms_api.KmsApi(
            service, SigV4Authenticator(SigV4Verifier(directory, REGION, "kms", clock)), KmsAuditSink(audit, clock)
        )
        app = web.Application()
        app[kms_api.KMS_API] = api
        app[LOAD] = Load(max_in_flight=1024, metrics=GatewayMetrics())
        kms_api.add_kms_route(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        state.update(service=service, audit=audit, runner=runner, port=runner.addresses[0][1])

    async def stop() -> None:
        await state["runner"].cleanup()  # type: ignore[attr-defined]
        await state["audit"].close()  # type: ignore[attr-defined]
        state["service"].close()  # type: ignore[attr-defined]

    def run() -> None:
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    def stop_once() -> None:
        if loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        yield KmsServer(f"http://127.0.0.1:{state['port']}", audit_path, stop_once)
    finally:
        stop_once()


def client(server: KmsServer, akid: str, secret: str):
    return boto3.client(
        "kms", endpoint_url=server.url, region_name=REGION, aws_access_key_id=akid,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}),
    )


def error_code(call, *args, **kwargs) -> str | None:
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return None


@pytest.fixture
def clients(kms_server):
    return (
        client(kms_server, ROOT_AKID, ROOT_SECRET),
        client(kms_server, ALICE_AKID, ALICE_SECRET),
        client(kms_server, BOB_AKID, BOB_SECRET),
    )


def test_admin_and_user_permissions(clients):
    root, alice, bob = clients
    policy = admin_user_key_policy(ACCOUNT, admins=[BOB_ARN], users=[ALICE_ARN])
    key_id = root.create_key(Policy=policy)["KeyMetadata"]["Arn"]
    context = {"tenant": "acme"}

    blob = alice.encrypt(KeyId=key_id, Plaintext=b"hello", EncryptionContext=context)["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"hello"
    assert len(alice.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]) == 32
    alice.describe_key(KeyId=key_id)
    assert error_code(alice.disable_key, KeyId=key_id) == "AccessDeniedException"
    assert error_code(alice.put_key_policy, KeyId=key_id, PolicyName="default", Policy=policy) == "AccessDeniedException"

    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"
    assert error_code(bob.decrypt, CiphertextBlob=blob, EncryptionContext=context) == "AccessDeniedException"
    assert json.loads(bob.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]) == json.loads(policy)
    bob.disable_key(KeyId=key_id)
    bob.enable_key(KeyId=key_id)

    # The root is all-powerful; the default policy admits nobody else.
    other = root.create_key()["KeyMetadata"]["Arn"]
    root.encrypt(KeyId=other, Plaintext=b"x")
    assert error_code(alice.encrypt, KeyId=other, Plaintext=b"x") == "AccessDeniedException"


def test_deny_overrides_allow_and_context_conditions(clients):
    root, alice, _ = clients
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ALICE_ARN}, "Action": "kms:*", "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": ["acme", "globex"]}}},
        {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "globex"}}},
    ]})
    key_id = root.create_key(Policy=policy)["KeyMetadata"]["KeyId"]
    acme, globex = {"tenant": "acme"}, {"tenant": "globex"}
    blob = alice.encrypt(KeyId=key_id, Plaintext=b"a", EncryptionContext=acme)["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob, EncryptionContext=acme)["Plaintext"] == b"a"
    blob2 = alice.encrypt(KeyId=key_id, Plaintext=b"g", EncryptionContext=globex)["CiphertextBlob"]
    assert error_code(alice.decrypt, CiphertextBlob=blob2, EncryptionContext=globex) == "AccessDeniedException"
    assert error_code(alice.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "x"}) == (
        "AccessDeniedException"
    )
    assert error_code(alice.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"
    assert root.decrypt(CiphertextBlob=blob2, EncryptionContext=globex)["Plaintext"] == b"g"


def test_account_actions(clients):
    _, alice, bob = clients
    alice.list_keys()
    alice.list_aliases()
    assert error_code(alice.create_key) == "AccessDeniedException"
    bob.create_key()


def test_audit_lines_for_allowed_and_denied_calls_hold_no_secrets(kms_server, clients):
    root, alice, _ = clients
    key_id = root.create_key(Policy=admin_user_key_policy(ACCOUNT, [], [ALICE_ARN]))["KeyMetadata"]["Arn"]
    plaintext = b"TOP-SECRET-PLAINTEXT-0123456789"
    alice.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext={"tenant": "acme"})
    data_key = alice.generate_data_key(KeyId=key_id, NumberOfBytes=32)["Plaintext"]
    assert error_code(alice.disable_key, KeyId=key_id) == "AccessDeniedException"
    bad = client(kms_server, ALICE_AKID, "wrong-secret-wrong-secret-wrong-secret!!")
    assert error_code(bad.list_keys) == "InvalidSignatureException"

    kms_server.stop()  # the adapter queues audit lines; closing the log writes them all
    raw = kms_server.audit_path.read_bytes()
    lines = [json.loads(line) for line in raw.splitlines()]
    by_op = {(line["operation"], line["outcome"]): line for line in lines}
    encrypt = by_op[("Encrypt", "success")]
    assert encrypt["principal_arn"] == ALICE_ARN and encrypt["access_key_id"] == ALICE_AKID
    assert encrypt["encryption_context"] == {"tenant": "acme"}
    assert encrypt["source_ip"] == "127.0.0.1"
    denied = by_op[("DisableKey", "denied")]
    assert denied["error_code"] == "AccessDeniedException" and denied["principal_arn"] == ALICE_ARN
    unsigned = by_op[("ListKeys", "denied")]
    assert unsigned["error_code"] == "InvalidSignatureException" and unsigned["principal_arn"] is None
    for secret in (plaintext, base64.b64encode(plaintext), data_key, base64.b64encode(data_key),
                   ALICE_SECRET.encode(), ROOT_SECRET.encode(), b"wrong-secret"):
        assert secret not in raw


def test_aws_cli_principals_allowed_and_denied(kms_server, clients, aws_env):
    import subprocess
    import sys

    root, _, _ = clients
    key_id = root.create_key(Policy=admin_user_key_policy(ACCOUNT, [BOB_ARN], [ALICE_ARN]))["KeyMetadata"]["KeyId"]

    def aws(akid: str, secret: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(aws_env, AWS_ACCESS_KEY_ID=akid, AWS_SECRET_ACCESS_KEY=secret)
        return subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", kms_server.url, "kms", *args],
                              env=env, capture_output=True, text=True, timeout=60)

    args = ("generate-data-key", "--key-id", key_id, "--key-spec", "AES_256",
            "--encryption-context", "tenant=acme")
    allowed = aws(ALICE_AKID, ALICE_SECRET, *args)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["KeyId"].endswith(key_id)
    denied = aws(BOB_AKID, BOB_SECRET, *args)
    assert denied.returncode != 0 and "AccessDeniedException" in denied.stderr
    assert f"User: {BOB_ARN} is not authorized to perform: kms:GenerateDataKey" in denied.stderr
