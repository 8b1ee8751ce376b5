"""The verification floor of the KMS figures: the bare handler's ``POST /`` verifies SigV4 with kmsgate's verifier."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest

from bench.ceilings import start_http_ceiling
from bench.kmsreq import Credentials, kms_request, send_once
from bench.procs import ServerProcess, free_port

CREDENTIALS = Credentials("AKIAKMSGATEFLOOR0001", "floor-secret-0123456789abcdefghijklmnopq")
PAYLOAD = {"KeyId": "alias/floor", "KeySpec": "AES_256"}


@pytest.fixture(scope="module")
def floor_server() -> Iterator[ServerProcess]:
    server = start_http_ceiling(free_port(), env_extra={
        "KMSGATE_ROOT_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
        "KMSGATE_ROOT_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
    })
    try:
        yield server
    finally:
        server.stop()


def test_a_signed_kms_request_is_answered_with_a_reply_of_the_requested_size(floor_server: ServerProcess) -> None:
    template = kms_request(floor_server.url, "GenerateDataKey", PAYLOAD, CREDENTIALS)
    template = replace(template, headers=(*template.headers, ("X-Bench-Reply-Bytes", "300")))
    status, body = send_once(floor_server.url, template)
    assert status == 200
    assert len(body) == 300


def test_a_tampered_body_fails_verification(floor_server: ServerProcess) -> None:
    template = kms_request(floor_server.url, "GenerateDataKey", PAYLOAD, CREDENTIALS)
    tampered = replace(template, body=template.body.replace(b"alias/floor", b"alias/other"))
    status, body = send_once(floor_server.url, tampered)
    assert status == 403
    assert orjson.loads(body) == {"__type": "InvalidSignatureException"}


def test_another_secret_fails_verification(floor_server: ServerProcess) -> None:
    other = Credentials(CREDENTIALS.access_key_id, "another-secret-0123456789abcdefghijklmn")
    status, body = send_once(floor_server.url, kms_request(floor_server.url, "GenerateDataKey", PAYLOAD, other))
    assert status == 403
    assert orjson.loads(body) == {"__type": "InvalidSignatureException"}


def test_without_credentials_the_floor_is_not_served(ceiling_server: ServerProcess) -> None:
    status, _ = send_once(ceiling_server.url, kms_request(ceiling_server.url, "GenerateDataKey", PAYLOAD, CREDENTIALS))
    assert status == 404
