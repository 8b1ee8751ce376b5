"""The S3 API over the ``s3`` storage backend: kmsgate in front of another S3 (moto's server, on loopback).

Put, get, list and a multipart upload through kmsgate's S3 API, with the objects and parts
kept encrypted in the upstream bucket (read there directly: no plaintext).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from tests.conftest import KmsgateServer, free_port, start_server
from tests.s3front.conftest import s3_client

UPSTREAM_ACCESS_KEY_ID = "AKIAUPSTREAMTESTS001"
UPSTREAM_SECRET_ACCESS_KEY = "upstream-test-secret-key-0123456789abcde"
PART = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, str]]:
    """A moto S3 server on a free loopback port with one empty bucket: (endpoint, bucket)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint, bucket = f"http://{host}:{port}", f"kmsgate-upstream-{uuid.uuid4().hex[:8]}"
    upstream_client(endpoint).create_bucket(Bucket=bucket)
    try:
        yield endpoint, bucket
    finally:
        server.stop()


def upstream_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=UPSTREAM_ACCESS_KEY_ID, aws_secret_access_key=UPSTREAM_SECRET_ACCESS_KEY)


@pytest.fixture(scope="module")
def server(upstream: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    endpoint, bucket = upstream
    running = start_server(tmp_path_factory.mktemp("kmsgate-on-s3") / "data", "--s3-port", str(free_port()),
                           "--storage", "s3", "--s3-bucket", bucket, "--s3-endpoint-url", endpoint,
                           "--s3-region", "us-east-1", AWS_ACCESS_KEY_ID=UPSTREAM_ACCESS_KEY_ID,
                           AWS_SECRET_ACCESS_KEY=UPSTREAM_SECRET_ACCESS_KEY, AWS_CONFIG_FILE=os.devnull,
                           AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    yield running
    running.stop()


def upstream_bytes(endpoint: str, bucket: str) -> bytes:
    client = upstream_client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return b"".join(client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed)


def test_put_get_list_and_multipart_through_the_s3_api_on_the_s3_backend(
        server: KmsgateServer, upstream: tuple[str, str], tmp_path: Path) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket="over-s3")
    small = b"a small object kept upstream, encrypted " * 10
    s3.put_object(Bucket="over-s3", Key="small", Body=small, Metadata={"kind": "small"})
    got = s3.get_object(Bucket="over-s3", Key="small")
    assert (got["Body"].read(), got["Metadata"]) == (small, {"kind": "small"})
    assert got["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'

    parts = [os.urandom(PART), b"the last part, kept upstream too"]
    upload_id = s3.create_multipart_upload(Bucket="over-s3", Key="large", ContentType="text/x-large")["UploadId"]
    completed = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="over-s3", Key="large", UploadId=upload_id,
                                                          PartNumber=n, Body=body)["ETag"]}
                 for n, body in enumerate(parts, start=1)]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="over-s3", Key="large", UploadId=upload_id)["Parts"]] == [
        1, 2]
    s3.complete_multipart_upload(Bucket="over-s3", Key="large", UploadId=upload_id,
                                 MultipartUpload={"Parts": completed})
    large = s3.get_object(Bucket="over-s3", Key="large")
    assert (large["Body"].read(), large["ContentType"]) == (b"".join(parts), "text/x-large")
    assert large["ETag"].endswith('-2"')

    listed = s3.list_objects_v2(Bucket="over-s3")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("large", sum(len(p) for p in parts)), ("small", len(small))]
    stored = upstream_bytes(*upstream)
    assert stored and small[:40] not in stored and parts[0][:64] not in stored and parts[1] not in stored


def test_a_client_that_disconnects_midway_leaves_nothing_upstream(
        server: KmsgateServer, upstream: tuple[str, str]) -> None:
    endpoint, upstream_bucket = upstream
    s3 = s3_client(server)
    s3.create_bucket(Bucket="cut-short")
    size = 12 * 1024 * 1024  # over the backend's 8 MiB upstream part: a multipart upload upstream
    url = urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": "cut-short", "Key": "half"},
                                             ExpiresIn=600))
    admin = upstream_client(endpoint)

    def uploads() -> list[Any]:
        return list(admin.list_multipart_uploads(Bucket=upstream_bucket).get("Uploads", []))

    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    try:
        connection.sendall(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                           f"Content-Length: {size}\r\n\r\n".encode())
        connection.sendall(os.urandom(9 * 1024 * 1024))
        wait_for(lambda: bool(uploads()))  # the first part is on its way upstream while the client sends
    finally:
        connection.close()
    wait_for(lambda: not uploads())
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=upstream_bucket).get("Contents", [])]
    assert not [k for k in keys if k.endswith("cut-short/half")]
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket="cut-short", Key="half")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_get_and_head_by_part_number_on_the_s3_backend(server: KmsgateServer) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket="by-part")
    parts = [os.urandom(PART), os.urandom(PART + 1), b"the last part"]
    upload_id = s3.create_multipart_upload(Bucket="by-part", Key="mp")["UploadId"]
    completed = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="by-part", Key="mp", UploadId=upload_id,
                                                          PartNumber=n, Body=body)["ETag"]}
                 for n, body in enumerate(parts, start=1)]
    s3.complete_multipart_upload(Bucket="by-part", Key="mp", UploadId=upload_id, MultipartUpload={"Parts": completed})
    size = sum(len(p) for p in parts)
    got = s3.get_object(Bucket="by-part", Key="mp", PartNumber=2)
    assert got["Body"].read() == parts[1]
    assert (got["ContentRange"], got["PartsCount"]) == (f"bytes {PART}-{2 * PART}/{size}", 3)
    head = s3.head_object(Bucket="by-part", Key="mp", PartNumber=3)
    assert (head["ContentLength"], head["PartsCount"]) == (len(parts[2]), 3)
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="by-part", Key="mp", PartNumber=4)
    assert err.value.response["Error"]["Code"] == "InvalidPartNumber"
