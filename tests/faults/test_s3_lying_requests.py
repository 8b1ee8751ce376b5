"""PutObject requests on the S3 API whose body disagrees with what their head declared, sent over
raw sockets (no client library sends one): a body longer than its ``Content-Length``, a chunked
body whose chunk sizes lie, a body shorter than declared and the connection closed. Each gets a
clear 4xx or a closed connection; the excess is never taken for a request of its own that stores
something; nothing is stored for a lying request (a body the server read to its declared length
with an unsigned payload is the one exception: it was a whole request); the server keeps serving.

(``tests/fuzz/test_lying_requests.py`` has the ``/v1`` counterparts.)"""

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

EXCESS = b"EXCESS-AFTER-THE-DECLARED-BODY " * 64
STREAMED_BYTES = 1024 * 1024  # a body this long is encrypted and stored as it arrives


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    server = start_server(tmp_path_factory.mktemp("s3-lying") / "data", "--s3-port", str(free_port()))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bucket(server: KmsgateServer) -> str:
    name = f"lying-{uuid.uuid4().hex[:12]}"
    s3_client(server).create_bucket(Bucket=name)
    return name


def s3_port(server: KmsgateServer) -> int:
    return int(server.extra_args[server.extra_args.index("--s3-port") + 1])


def signed_head(server: KmsgateServer, bucket: str, name: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The head of a PutObject signed as an S3 client signs it, for ``body`` (whose SHA-256 it
    names unless ``headers`` say ``UNSIGNED-PAYLOAD``), with ``headers`` as given (the lie)."""
    port = s3_port(server)
    request = AWSRequest(method="PUT", url=f"http://127.0.0.1:{port}/{bucket}/{name}", data=body, headers=headers)
    S3SigV4Auth(Credentials(server.access_key_id, server.secret_access_key), "s3", server.region).add_auth(request)
    lines = [f"PUT /{bucket}/{name} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{key}: {value}" for key, value in request.headers.items() if key.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def names_in(server: KmsgateServer, bucket: str) -> set[str]:
    listing = s3_client(server).list_objects_v2(Bucket=bucket)
    return {entry["Key"] for entry in listing.get("Contents", [])}


def assert_still_serving(server: KmsgateServer, bucket: str) -> None:
    s3 = s3_client(server)
    name = f"honest-{uuid.uuid4().hex}"
    s3.put_object(Bucket=bucket, Key=name, Body=b"an honest body")
    assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == b"an honest body"
    s3.delete_object(Bucket=bucket, Key=name)


@pytest.mark.parametrize("declared", [5, STREAMED_BYTES])
def test_an_s3_body_longer_than_its_signed_length_stores_nothing_and_its_excess_is_no_request(
        server: KmsgateServer, bucket: str, declared: int) -> None:
    name = f"long-{uuid.uuid4().hex}"
    body = b"b" * declared
    # Signed for the declared body: only the excess is the lie.
    head = signed_head(server, bucket, name, body, {"Content-Length": str(declared), "Connection": "keep-alive"})
    before = names_in(server, bucket)
    answer = exchange(s3_port(server), head + body + EXCESS, close_write=False)
    # The declared bytes are the request's body; what follows is no request the server can parse:
    # refused (400, dropping the PutObject's own answer if it was not out yet) or dropped, and the
    # connection closed (``exchange`` read to its end).
    assert statuses(answer) and set(statuses(answer)) <= {200, 400}, answer[:600]
    after = names_in(server, bucket)
    assert after - before <= {name}  # nothing under any other name
    if name in after:  # the declared body was whole and signed: that request stands, as sent
        assert s3_client(server).get_object(Bucket=bucket, Key=name)["Body"].read() == body
    assert_still_serving(server, bucket)


def test_an_s3_body_longer_than_declared_with_a_signature_over_all_of_it_stores_nothing(
        server: KmsgateServer, bucket: str) -> None:
    name = f"long-signed-{uuid.uuid4().hex}"
    sent = b"hello" + EXCESS
    head = signed_head(server, bucket, name, sent, {"Content-Length": "5", "Connection": "keep-alive"})
    answer = exchange(s3_port(server), head + sent, close_write=False)
    assert statuses(answer) and all(400 <= status < 500 for status in statuses(answer)), answer[:600]
    assert name not in names_in(server, bucket)
    assert_still_serving(server, bucket)


def chunked_head(server: KmsgateServer, bucket: str, name: str) -> bytes:
    return signed_head(server, bucket, name, b"", {"Transfer-Encoding": "chunked",
                                                   "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})


@pytest.mark.parametrize("chunks", [
    b"5\r\n" + b"c" * 200 + b"\r\n0\r\n\r\n",  # more bytes than the chunk size said
    b"10000\r\n" + b"c" * 200 + b"\r\n0\r\n\r\n",  # fewer, then the end: the end is taken as data
    b"zz\r\n" + b"c" * 200 + b"\r\n0\r\n\r\n",  # no chunk size at all
], ids=["chunk-longer", "chunk-shorter", "chunk-size-garbage"])
def test_an_s3_chunked_body_lying_about_its_chunk_sizes_stores_nothing(
        server: KmsgateServer, bucket: str, chunks: bytes) -> None:
    name = f"chunked-{uuid.uuid4().hex}"
    before = names_in(server, bucket)
    answer = exchange(s3_port(server), chunked_head(server, bucket, name) + chunks, close_write=True)
    assert all(400 <= status < 500 for status in statuses(answer)), answer[:600]
    assert names_in(server, bucket) == before
    assert_still_serving(server, bucket)


@pytest.mark.parametrize("declared", [1000, STREAMED_BYTES])
def test_an_s3_body_shorter_than_declared_then_closed_stores_nothing(
        server: KmsgateServer, bucket: str, declared: int) -> None:
    name = f"short-{uuid.uuid4().hex}"
    head = signed_head(server, bucket, name, b"", {"Content-Length": str(declared),
                                                   "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    answer = exchange(s3_port(server), head + b"s" * (declared // 2), close_write=True)
    assert all(400 <= status < 500 for status in statuses(answer)), answer[:600]
    assert name not in names_in(server, bucket)
    assert_still_serving(server, bucket)
