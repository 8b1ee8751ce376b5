"""The seam adapters: gateway authentication over loopback, the service authorizer, the audit sink."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from kmsgate.auth.adapters import GatewayAuthenticator, KeyPolicyAuthorizer, KmsAuditSink
from kmsgate.auth.audit import AuditLog
from kmsgate.auth.grants import grant_token, new_grant
from kmsgate.auth.key_policies import admin_user_key_policy, default_key_policy
from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.core.errors import (
    AccessDeniedError,
    InvalidGrantTokenError,
    KmsError,
    MalformedPolicyDocumentError,
)
from kmsgate.core.principal import Caller, account_root

from .conftest import ACCOUNT, ALICE_AKID, ALICE_ARN, ALICE_SECRET, ALICE_TOKEN, BOB_ARN, REGION

KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALICE = Caller(ALICE_ARN, ACCOUNT)
BOB = Caller(BOB_ARN, ACCOUNT)


class Key:
    def __init__(self, policy: str) -> None:
        self.arn = KEY_ARN
        self.policy = policy


@pytest.fixture
async def gateway(directory, clock):
    """A loopback server whose one route authenticates like a gateway route."""
    authenticator = GatewayAuthenticator(
        directory, SigV4Verifier(directory, REGION, "s3", clock, allow_unsigned_payload=True)
    )

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            caller = authenticator.authenticate(request, body)
        except KmsError as exc:
            status = 401 if exc.code == "MissingAuthenticationTokenException" else 403
            return web.json_response({"code": exc.code}, status=status)
        return web.json_response({"principal": caller.arn})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def fetch(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=b"object bytes", method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_gateway_bearer_token_maps_to_principal(gateway):
    status, body = await asyncio.to_thread(fetch, gateway + "/v1/objects/a", {"Authorization": f"Bearer {ALICE_TOKEN}"})
    assert (status, body) == (200, {"principal": ALICE_ARN})


async def test_gateway_root_token(gateway):
    status, body = await asyncio.to_thread(fetch, gateway + "/v1/objects/a", {"Authorization": "bearer root-token-" + "r" * 32})
    assert body == {"principal": f"arn:aws:iam::{ACCOUNT}:root"}


async def test_gateway_unknown_token_is_refused(gateway):
    status, body = await asyncio.to_thread(fetch, gateway + "/v1/objects/a", {"Authorization": "Bearer " + "n" * 40})
    assert (status, body) == (403, {"code": "UnrecognizedClientException"})


async def test_gateway_without_credentials_is_401(gateway):
    status, body = await asyncio.to_thread(fetch, gateway + "/v1/objects/a", {})
    assert (status, body) == (401, {"code": "MissingAuthenticationTokenException"})


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_gateway_curl_sigv4(gateway):
    done = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", f"{ALICE_AKID}:{ALICE_SECRET}",
         "-X", "PUT", "--data-binary", "payload", gateway + "/v1/objects/a"],
        capture_output=True, text=True, timeout=30,
    )
    assert json.loads(done.stdout) == {"principal": ALICE_ARN}, done.stderr


def test_authorizer_uses_policy_and_account_actions(directory):
    authorizer = KeyPolicyAuthorizer(directory)
    key = Key(admin_user_key_policy(ACCOUNT, admins=[BOB_ARN], users=[ALICE_ARN]))
    authorizer.authorize(ALICE, "kms:Encrypt", key, {"encryption_context": {"a": "b"}, "grant_tokens": []})
    with pytest.raises(AccessDeniedError):
        authorizer.authorize(BOB, "kms:Encrypt", key, {})
    authorizer.authorize(account_root(ACCOUNT), "kms:Decrypt", Key(default_key_policy(ACCOUNT)), {})
    authorizer.authorize(ALICE, "kms:ListKeys", None, {})
    with pytest.raises(AccessDeniedError):
        authorizer.authorize(ALICE, "kms:CreateKey", None, {})
    authorizer.authorize(BOB, "kms:CreateKey", None, {})
    assert authorizer.policy(key.policy) is authorizer.policy(key.policy)


def test_authorizer_applies_stored_grants_and_checks_tokens(directory):
    grant = new_grant(key_arn=KEY_ARN, grantee_principal=ALICE_ARN, operations=["Decrypt"],
                      account_id=ACCOUNT, now=0.0, encryption_context_subset={"t": "1"})
    grants = [grant]
    authorizer = KeyPolicyAuthorizer(directory, grants_for=lambda arn: grants if arn == KEY_ARN else [])
    key = Key(default_key_policy(ACCOUNT))
    token = grant_token(grant.grant_id)
    authorizer.authorize(ALICE, "kms:Decrypt", key, {"encryption_context": {"t": "1"}, "grant_tokens": [token]})
    with pytest.raises(AccessDeniedError):
        authorizer.authorize(ALICE, "kms:Decrypt", key, {"encryption_context": {"t": "2"}})
    with pytest.raises(InvalidGrantTokenError):
        authorizer.authorize(ALICE, "kms:Decrypt", key, {"encryption_context": {"t": "1"}, "grant_tokens": ["junk"]})
    grants.clear()  # revoked
    with pytest.raises(AccessDeniedError):
        authorizer.authorize(ALICE, "kms:Decrypt", key, {"encryption_context": {"t": "1"}})


def test_check_new_policy(directory):
    authorizer = KeyPolicyAuthorizer(directory)
    users_only = admin_user_key_policy(ACCOUNT, admins=[], users=[ALICE_ARN])
    with pytest.raises(MalformedPolicyDocumentError, match="will not allow you"):
        authorizer.check_new_policy(ALICE, KEY_ARN, users_only, bypass=False)
    authorizer.check_new_policy(ALICE, KEY_ARN, users_only, bypass=True)
    authorizer.check_new_policy(account_root(ACCOUNT), KEY_ARN, users_only, bypass=False)
    with pytest.raises(MalformedPolicyDocumentError):
        authorizer.check_new_policy(account_root(ACCOUNT), KEY_ARN, "{}", bypass=True)


async def test_audit_sink_maps_adapter_entries(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.log")
    await log.start()
    sink = KmsAuditSink(log, clock=lambda: 0.0)
    sink.record({"request_id": "r1", "operation": "Encrypt", "caller": Caller(ALICE_ARN, ACCOUNT, ALICE_AKID),
                 "source_ip": "127.0.0.1", "key_id": "alias/app", "encryption_context": {"a": "b"},
                 "error_code": None, "plaintext": b"never-written"})
    await sink.write({"request_id": "r2", "operation": "Decrypt", "caller": None, "error_code": "AccessDeniedException"})
    await log.close()
    first, second = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert first["outcome"] == "success" and first["principal_arn"] == ALICE_ARN
    assert first["access_key_id"] == ALICE_AKID and first["key_arn"] == "alias/app"
    assert "never-written" not in (tmp_path / "audit.log").read_text()
    assert second["outcome"] == "denied" and second["principal_arn"] is None
