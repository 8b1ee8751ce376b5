"""The gateway as a client of a real ``kmsgate serve`` KMS on loopback: KMS outages, official-SDK interop.

The KMS runs as its own process (the project's ``kmsgate_server``/``fresh_server``
fixtures); the gateway reaches it over HTTP with SigV4 through ``RemoteKmsClient``. An
outage is made real by killing that process.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aws_encryption_sdk
import botocore.session
import pytest
from aiohttp import web
from aws_encryption_sdk.identifiers import CommitmentPolicy
from gateway_harness import RunningGateway, TrustAsRoot, start_gateway, stored_bytes

from kmsgate.auth.identities import AccessKey, RootCredentials, build_directory, parse_identities
from kmsgate.envelope.kms_client import RemoteKmsClient, RemoteKmsSettings
from kmsgate.gateway.auth import RequestAuthenticator, gateway_authenticator
from kmsgate.gateway.headers import CONTEXT_HEADER, encode_context
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.object_access import ObjectAccess
from kmsgate.gateway.routes import setup_gateway
from kmsgate.gateway.service import Gateway, GatewaySettings
from kmsgate.gateway.storage.file import FileStorage


def use_server_credentials(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.endpoint_url)


async def remote_gateway(tmp_path: Path, server: Any, authenticator: RequestAuthenticator | None = None,
                         object_access: ObjectAccess | None = None) -> AsyncIterator[RunningGateway]:
    key_arn = str(server.kms_client().create_key(Description="gateway")["KeyMetadata"]["Arn"])
    storage = FileStorage(tmp_path / "objects")
    settings = GatewaySettings(default_key_id=key_arn, frame_length=4096, kms_timeout_seconds=5)

    async def factory(app: web.Application) -> Gateway:
        kms = RemoteKmsClient(RemoteKmsSettings(endpoint_url=server.endpoint_url, region=server.region,
                                                connect_timeout_seconds=1, read_timeout_seconds=3, max_attempts=1))
        await kms.start()
        return Gateway(storage=storage, kms=kms, metrics=GatewayMetrics(), settings=settings, on_close=kms.close,
                       authenticator=authenticator or TrustAsRoot(), object_access=object_access)

    app = web.Application()
    setup_gateway(app, factory)
    runner, url = await start_gateway(app)
    try:
        yield RunningGateway(url=url, app=app, service=None, key_arn=key_arn, root_secret=b"")
    finally:
        await runner.cleanup()


@pytest.fixture
async def shared_kms_gateway(tmp_path: Path, kmsgate_server: Any,
                             monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningGateway]:
    use_server_credentials(kmsgate_server, monkeypatch)
    async for gw in remote_gateway(tmp_path, kmsgate_server):
        yield gw


@pytest.fixture
async def own_kms_gateway(tmp_path: Path, fresh_server: Any,
                          monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[RunningGateway, Any]]:
    use_server_credentials(fresh_server, monkeypatch)
    async for gw in remote_gateway(tmp_path, fresh_server):
        yield gw, fresh_server


async def test_stored_object_decrypts_offline_with_official_sdk(shared_kms_gateway: RunningGateway) -> None:
    gw = shared_kms_gateway
    data = os.urandom(3 * 4096 + 5)
    context = {"tenant": "acme", "purpose": "interop"}
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{gw.url}/v1/objects/sdk/obj", data=data,
                            headers={CONTEXT_HEADER: encode_context(context)}) as resp:
            assert resp.status == 201
    stored = stored_bytes(gw, "sdk/obj")
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[gw.key_arn], botocore_session=botocore.session.Session())
    plaintext, header = client.decrypt(source=stored, key_provider=provider)
    assert plaintext == data
    assert {k: v for k, v in header.encryption_context.items() if not k.startswith("aws-crypto-")} == {
        **context, "aws:s3:arn": "arn:aws:s3:::kmsgate/sdk/obj"}


async def test_kms_outage_with_warm_and_cold_cache(own_kms_gateway: tuple[RunningGateway, Any]) -> None:
    gw, server = own_kms_gateway
    warm = {CONTEXT_HEADER: encode_context({"tenant": "warm"})}
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{gw.url}/v1/objects/a", data=b"first", headers=warm) as r:
            assert r.status == 201
        async with http.get(f"{gw.url}/v1/objects/a") as r:
            assert await r.read() == b"first"
        async with http.put(f"{gw.url}/v1/objects/unread", data=b"never read",
                            headers={CONTEXT_HEADER: encode_context({"tenant": "other"})}) as r:
            assert r.status == 201

        server.kill()  # the KMS is gone

        # Warm cache: a rewrite of the object under the same key and context continues under
        # the cached data key; reads of objects whose data key is cached continue.
        async with http.put(f"{gw.url}/v1/objects/a", data=b"second", headers=warm) as r:
            assert r.status == 201
        async with http.get(f"{gw.url}/v1/objects/a") as r:
            assert r.status == 200 and await r.read() == b"second"
        # Cold cache: a new partition (another context, or another object: its ARN is in its
        # context), or an object whose data key was never unwrapped.
        for key, tenant in (("c", "cold"), ("b", "warm")):
            async with http.put(f"{gw.url}/v1/objects/{key}", data=b"x",
                                headers={CONTEXT_HEADER: encode_context({"tenant": tenant})}) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
        async with http.get(f"{gw.url}/v1/objects/unread") as r:
            assert r.status == 503
            assert "Retry-After" in r.headers
        async with http.head(f"{gw.url}/v1/objects/c") as r:
            assert r.status == 404  # the refused write left nothing behind
        async with http.get(f"{gw.url}/readyz") as r:
            assert r.status == 503
            assert (await r.json())["checks"]["kms"] == "failed"


USER_TOKEN = "remote-mode-user-token-0123456789abcdef0123"
USER_IDENTITIES = f"""
[[principal]]
arn = "arn:aws:iam::111122223333:user/remote-user"
tokens = ["{USER_TOKEN}"]
policy = '''{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "s3:*Object",
             "Resource": "arn:aws:s3:::kmsgate/*"}}]}}'''
[[principal.access_keys]]
access_key_id = "AKIAREMOTEUSER000001"
secret_access_key = "remoteUserSecret000000000000000000000000"
"""


async def test_remote_kms_callers_are_authenticated_and_the_kms_sees_the_gateway(
        tmp_path: Path, kmsgate_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway's own identities (not the remote server's): a user the remote KMS has never heard of.
    root = RootCredentials(AccessKey("AKIAGATEWAYROOT00001", "g" * 40), "env")
    directory = build_directory("111122223333", root, parse_identities(USER_IDENTITIES))
    use_server_credentials(kmsgate_server, monkeypatch)
    async for gw in remote_gateway(tmp_path, kmsgate_server, gateway_authenticator(directory, "us-east-1"),
                                   ObjectAccess(directory)):
        async with aiohttp.ClientSession() as http:
            async with http.put(f"{gw.url}/v1/objects/r", data=b"remote") as r:
                assert r.status == 401
                assert (await r.json())["error"] == "MissingAuthenticationTokenException"
            auth = {"Authorization": f"Bearer {USER_TOKEN}"}
            async with http.put(f"{gw.url}/v1/objects/r", data=b"remote", headers=auth) as r:
                assert r.status == 201  # the remote KMS authorized the gateway's credentials
            async with http.get(f"{gw.url}/v1/objects/r", headers=auth) as r:
                assert (r.status, await r.read()) == (200, b"remote")
        assert not gw.gateway.caller_materials.per_caller
