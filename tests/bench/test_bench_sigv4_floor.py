"""The verification floors: the bare handler verifies SigV4 with kmsgate's verifier (KMS ``POST /``, S3 PutObject)."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import orjson
import pytest

from bench.ceilings import start_http_ceiling
from bench.kmsreq import Credentials, kms_request, send_once
from bench.loadgen import RequestTemplate
from bench.procs import ServerProcess, free_port
from bench.s3req import s3_request

CREDENTIALS = Credentials("AKIAKMSGATEFLOOR0001", "floor-secret-0123456789abcdefghijklmnopq")
PAYLOAD = {"KeyId": "alias/floor", "KeySpec": "AES_256"}
VERIFY = (("X-Bench-Verify", "s3"),)


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


def test_a_signed_s3_put_is_answered_with_the_bodys_md5(floor_server: ServerProcess) -> None:
    body = b"floor object body" * 60
    template = s3_request(floor_server.url, "PUT", "/bucket/key", CREDENTIALS, body=body, headers=VERIFY)
    status, _, headers = _send(floor_server.url, template)
    assert status == 200
    assert headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'


def test_an_s3_put_whose_body_is_not_the_signed_one_fails_verification(floor_server: ServerProcess) -> None:
    template = s3_request(floor_server.url, "PUT", "/bucket/key", CREDENTIALS, body=b"signed body", headers=VERIFY)
    status, body, _ = _send(floor_server.url, replace(template, body=b"other body!"))
    assert status == 403
    assert orjson.loads(body)["__type"] == "InvalidSignatureException"


def test_an_s3_put_without_the_verify_header_is_the_unverified_ceiling(floor_server: ServerProcess) -> None:
    other = Credentials(CREDENTIALS.access_key_id, "another-secret-0123456789abcdefghijklmn")
    status, _, _ = _send(floor_server.url, s3_request(floor_server.url, "PUT", "/bucket/key", other, body=b"x"))
    assert status == 200


def _send(url: str, template: RequestTemplate) -> tuple[int, bytes, dict[str, str]]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
    try:
        conn.request(template.method, template.path, body=template.body,
                     headers={k: v for k, v in template.headers if k.lower() != "host"})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()
