"""Fixtures for the auth tests: a directory of identities, a fake clock and a real loopback server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from kmsgate.auth.identities import AccessKey, IdentityDirectory, RootCredentials, build_directory
from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.core.errors import KmsError
from kmsgate.core.principal import Caller

ACCOUNT = "111122223333"
REGION = "us-east-1"
ROOT_AKID = "AKIAKMSGATETEST00001"
ROOT_SECRET = "rootSecretKeyForTests0000000000000000000"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
ALICE_AKID = "AKIAALICE00000000001"
ALICE_SECRET = "aliceSecretKeyForTests000000000000000000"
ALICE_TOKEN = "alice-token-0123456789abcdef0123456789abcdef"
BOB_ARN = f"arn:aws:iam::{ACCOUNT}:role/ops/bob"
BOB_AKID = "AKIABOB0000000000001"
BOB_SECRET = "bobSecretKeyForTests00000000000000000000"

IDENTITIES = {
    "principal": [
        {
            "arn": ALICE_ARN,
            "access_keys": [{"access_key_id": ALICE_AKID, "secret_access_key": ALICE_SECRET}],
            "tokens": [ALICE_TOKEN],
        },
        {
            "arn": BOB_ARN,
            "access_keys": [{"access_key_id": BOB_AKID, "secret_access_key": BOB_SECRET}],
            "account_actions": ["kms:CreateKey", "kms:List*"],
        },
    ]
}


@dataclass
class FakeClock:
    """Seconds since the epoch: real time plus a settable offset."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def directory() -> IdentityDirectory:
    root = RootCredentials(AccessKey(ROOT_AKID, ROOT_SECRET), "env")
    return build_directory(ACCOUNT, root, IDENTITIES, root_token="root-token-" + "r" * 32)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class VerifyingServer:
    """A loopback HTTP server that authenticates every request with a SigV4Verifier."""

    port: int
    callers: list[Caller] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _app(verifiers: dict[str, SigV4Verifier], server: VerifyingServer) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        path, _, query = request.raw_path.partition("?")
        service = "s3" if request.method in ("PUT", "GET") and path.startswith("/v1/") else "kms"
        try:
            if "X-Amz-Signature=" in query:  # a presigned URL
                caller = verifiers[service].check_presigned(
                    request.method, path, query, request.headers.items(), source_ip=request.remote
                ).verify_body(body)
            else:
                caller = verifiers[service].verify(
                    request.method, path, query, request.headers.items(), body, source_ip=request.remote
                )
        except KmsError as exc:
            return web.json_response({"__type": exc.code, "message": exc.message}, status=exc.status)
        server.callers.append(caller)
        if service == "s3":  # S3 clients read a non-empty 200 body as an error document
            return web.Response(headers={"X-Caller": caller.arn})
        return web.json_response({}, headers={"X-Caller": caller.arn})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.fixture
def verifying_server(directory: IdentityDirectory, clock: FakeClock) -> Iterator[VerifyingServer]:
    """Serves on 127.0.0.1 (free port) from a thread of its own, so sync clients can call it."""
    verifiers = {
        "kms": SigV4Verifier(directory, REGION, "kms", clock),
        "s3": SigV4Verifier(directory, REGION, "s3", clock, allow_unsigned_payload=True),
    }
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        server = VerifyingServer(port=0)
        runner = web.AppRunner(_app(verifiers, server), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.port = runner.addresses[0][1]
        holder["server"], holder["runner"] = server, runner

    def run() -> None:
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield holder["server"]  # type: ignore[misc]
    finally:
        runner = holder["runner"]
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def aws_env(tmp_path: Path) -> dict[str, str]:
    """Environment for the aws CLI: isolated config, alice's credentials."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        AWS_ACCESS_KEY_ID=ALICE_AKID,
        AWS_SECRET_ACCESS_KEY=ALICE_SECRET,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env
