"""Requests that lie about their size, and 100 KB headers, on the gateway's ``PUT /v1/objects`` and the
S3 front's PutObject: a clear 4xx (or a closed connection for a body that never comes), nothing stored.

Raw sockets: no client library will send a body that disagrees with its own Content-Length.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import KmsgateServer, free_port, start_server
from tests.raw_http import exchange, statuses
from tests.s3front.conftest import s3_client

BIG_HEADER_BYTES = 100 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    server = start_server(tmp_path_factory.mktemp("lying") / "data", "--s3-port", str(free_port()))
    yield server
    server.stop()


def s3_port(server: KmsgateServer) -> int:
    return int(server.extra_args[server.extra_args.index("--s3-port") + 1])


def gateway_head(server: KmsgateServer, name: str, declared: int, extra: str = "") -> bytes:
    return (f"PUT /v1/objects/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.root_token}\r\n"
            f"Content-Length: {declared}\r\n{extra}\r\n").encode()


def stored(server: KmsgateServer, name: str) -> tuple[int, bytes]:
    head = (f"GET /v1/objects/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.root_token}\r\n"
            "Connection: close\r\n\r\n").encode()
    answer = exchange(server.port, head)
    status = statuses(answer)[0]
    return status, answer.split(b"\r\n\r\n", 1)[1]


def test_a_gateway_body_shorter_than_declared_stores_nothing(server: KmsgateServer) -> None:
    name = f"short-{uuid.uuid4().hex}"
    answer = exchange(server.port, gateway_head(server, name, 1000) + b"x" * 10, close_write=True)
    assert all(400 <= status < 500 for status in statuses(answer)), answer[:300]
    assert stored(server, name)[0] == 404


def test_a_gateway_body_longer_than_declared_gets_a_400_and_its_excess_is_never_stored(server: KmsgateServer) -> None:
    name = f"long-{uuid.uuid4().hex}"
    answer = exchange(server.port, gateway_head(server, name, 5, "Connection: keep-alive\r\n")
                      + b"hello" + b"GARBAGE-AFTER-THE-BODY" * 10)
    # The declared 5 bytes are the request's body; what follows is a malformed next request, refused
    # (aiohttp then closes the connection, dropping the answer to the PUT if it was not out yet).
    assert 400 in statuses(answer) and all(status in (201, 400) for status in statuses(answer)), answer[:600]
    status, body = stored(server, name)
    assert (status, body) == (200, b"hello") or status == 404


def test_a_100_KB_header_on_the_gateway_is_refused_and_stores_nothing(server: KmsgateServer) -> None:
    name = f"big-header-{uuid.uuid4().hex}"
    padding = f"X-Padding: {'p' * BIG_HEADER_BYTES}\r\n"
    answer = exchange(server.port, gateway_head(server, name, 5, padding) + b"hello")
    assert statuses(answer) and all(400 <= status < 500 for status in statuses(answer)), answer[:300]
    assert stored(server, name)[0] == 404


def s3_head(server: KmsgateServer, bucket: str, name: str, body: bytes, declared: int, extra: dict[str, str]) -> bytes:
    """A PutObject of ``body`` signed as any S3 client signs it, with ``declared`` as its Content-Length."""
    url = f"http://127.0.0.1:{s3_port(server)}/{bucket}/{name}"
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Length": str(declared), **extra})
    S3SigV4Auth(Credentials(server.access_key_id, server.secret_access_key), "s3", server.region).add_auth(request)
    lines = [f"PUT /{bucket}/{name} HTTP/1.1", f"Host: 127.0.0.1:{s3_port(server)}"]
    lines += [f"{key}: {value}" for key, value in request.headers.items() if key.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def bucket(server: KmsgateServer) -> str:
    name = f"lying-{uuid.uuid4().hex[:12]}"
    s3_client(server).create_bucket(Bucket=name)
    return name


def s3_object_names(server: KmsgateServer, bucket: str) -> list[str]:
    listing = s3_client(server).list_objects_v2(Bucket=bucket)
    return [entry["Key"] for entry in listing.get("Contents", [])]


@pytest.mark.parametrize("payload", ["signed", "UNSIGNED-PAYLOAD"])
def test_an_s3_body_shorter_than_declared_stores_nothing(server: KmsgateServer, bucket: str, payload: str) -> None:
    name = f"short-{uuid.uuid4().hex}"
    extra = {} if payload == "signed" else {"X-Amz-Content-SHA256": payload}
    answer = exchange(s3_port(server), s3_head(server, bucket, name, b"x" * 1000, 1000, extra) + b"x" * 10,
                      close_write=True)
    assert all(400 <= status < 500 for status in statuses(answer)), answer[:300]
    assert name not in s3_object_names(server, bucket)


def test_a_100_KB_header_on_s3_is_refused_and_stores_nothing(server: KmsgateServer, bucket: str) -> None:
    name = f"big-header-{uuid.uuid4().hex}"
    extra = {"X-Amz-Meta-Padding": "p" * BIG_HEADER_BYTES}
    answer = exchange(s3_port(server), s3_head(server, bucket, name, b"hello", 5, extra) + b"hello")
    assert statuses(answer) and all(400 <= status < 500 for status in statuses(answer)), answer[:300]
    assert name not in s3_object_names(server, bucket)
