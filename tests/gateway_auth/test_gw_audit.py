"""Audit entries for the KMS calls the gateway makes as its callers.

The application is assembled in the test the way ``kmsgate serve`` assembles it (identities
directory, key-policy authorizer, in-process KMS service, ``AuditLog`` through ``KmsAuditSink``,
``gateway_authenticator``), on a real loopback port, because the server does not hand the
gateway its audit sink yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kmsgate.auth.adapters import KeyPolicyAuthorizer, KmsAuditSink
from kmsgate.auth.audit import AuditLog
from kmsgate.auth.identities import AccessKey, RootCredentials, build_directory, parse_identities
from kmsgate.core.principal import account_root
from kmsgate.envelope.kms_client import InProcessKmsClient
from kmsgate.gateway.auth import gateway_authenticator
from kmsgate.gateway.headers import CONTEXT_HEADER, KEY_ID_HEADER, encode_context
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.object_access import ObjectAccess
from kmsgate.gateway.exchange import GATEWAY
from kmsgate.gateway.routes import setup_gateway
from kmsgate.gateway.service import Gateway, GatewaySettings
from kmsgate.gateway.storage.file import FileStorage
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import open_service

from .conftest import ACCOUNT_ID, ALICE, CAROL, REGION, ROOT_ARN, USE, allow, identities_toml


@dataclass
class InProcess:
    url: str
    key_arn: str
    audit_path: Path
    audit: AuditLog
    gateway: Gateway


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[InProcess]:
    root = RootCredentials(AccessKey("AKIAGWROOTAUDIT00001", "r" * 40), "env")
    directory = build_directory(ACCOUNT_ID, root, parse_identities(identities_toml()))
    authorizer = KeyPolicyAuthorizer(directory, grants_for=lambda arn: service.grants_for(arn))
    service = open_service(tmp_path / "kms", RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID,
                           authorizer=authorizer)
    statement = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN}, "Action": "kms:*", "Resource": "*"}
    policy = json.dumps({"Version": "2012-10-17", "Statement": [statement, allow(ALICE, USE)]})
    key_arn = str((await service.create_key(caller=account_root(ACCOUNT_ID), policy=policy))["key_metadata"]["arn"])
    audit = AuditLog(tmp_path / "audit.log", fsync="none")
    await audit.start()

    async def factory(app: web.Application) -> Gateway:
        return Gateway(
            storage=FileStorage(tmp_path / "objects"),
            kms=InProcessKmsClient(service, account_root(ACCOUNT_ID)),
            kms_for=lambda caller: InProcessKmsClient(service, caller),
            audit=KmsAuditSink(audit).record,
            authenticator=gateway_authenticator(directory, REGION),
            object_access=ObjectAccess(directory),
            metrics=GatewayMetrics(),
            settings=GatewaySettings(frame_length=4096),
        )

    application = web.Application()
    setup_gateway(application, factory)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield InProcess(f"http://127.0.0.1:{port}", key_arn, tmp_path / "audit.log", audit, application[GATEWAY])
    finally:
        await runner.cleanup()
        await audit.close()
        service.close()


async def audit_lines(env: InProcess) -> list[dict[str, Any]]:
    """Every entry, once the log has written all it queued (it is closed for that)."""
    await env.audit.close()
    return [json.loads(line) for line in env.audit_path.read_text().splitlines() if line.strip()]


async def send(http: aiohttp.ClientSession, method: str, url: str, token: str, data: bytes = b"",
               headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with http.request(method, url, data=data,
                            headers={"Authorization": f"Bearer {token}", **(headers or {})}) as resp:
        return resp.status, await resp.read()


async def test_allowed_and_denied_gateway_kms_calls_are_audited_without_secrets(app: InProcess) -> None:
    secret = os.urandom(32).hex().encode()
    context = {"tenant": "blue"}
    headers = {KEY_ID_HEADER: app.key_arn, CONTEXT_HEADER: encode_context(context)}
    async with aiohttp.ClientSession() as http:
        assert (await send(http, "PUT", f"{app.url}/v1/objects/a", ALICE.token, secret, headers))[0] == 201
        assert (await send(http, "GET", f"{app.url}/v1/objects/a", ALICE.token)) == (200, secret)
        assert (await send(http, "PUT", f"{app.url}/v1/objects/c", CAROL.token, secret, headers))[0] == 403
        assert (await send(http, "GET", f"{app.url}/v1/objects/a", CAROL.token))[0] == 403
    data_keys = [entry.materials.data_key for m in app.gateway.caller_materials.managers()
                 for entry in m.cache._entries.values()]
    assert data_keys, "alice's data key should be cached"
    lines = await audit_lines(app)
    seen = [(e["operation"], e["principal_arn"], e["outcome"], e["error_code"]) for e in lines]
    assert seen == [
        ("GenerateDataKey", ALICE.arn, "success", None),
        ("Decrypt", ALICE.arn, "success", None),
        ("GenerateDataKey", CAROL.arn, "denied", "AccessDeniedException"),
        ("Decrypt", CAROL.arn, "denied", "AccessDeniedException"),
    ]
    objects = ["a", "a", "c", "a"]  # each KMS call carries the object's ARN in its context
    assert [e["encryption_context"] for e in lines] == [
        {**context, "aws:s3:arn": f"arn:aws:s3:::kmsgate/{name}"} for name in objects]
    assert all(e["key_arn"] == app.key_arn for e in lines)
    assert all(e["source_ip"] == "127.0.0.1" for e in lines)
    raw = app.audit_path.read_bytes()
    for value in (secret, *data_keys, ALICE.token.encode(), CAROL.token.encode()):
        assert value not in raw and value.hex().encode() not in raw
