"""Small objects, which the file storage keeps in their catalog row, through the S3 API with boto3:
durable once acknowledged (``kill -9`` right after the 200), read whole and by range, copied,
overwritten by and with objects kept in data files, deleted, and never in the clear at rest."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kmsgate.gateway.storage.file import INLINE_MAX_BYTES
from kmsgate.web.app import OBJECTS_DIRNAME
from tests.conftest import KmsgateServer, free_port, start_server
from tests.s3front.conftest import s3_client

BUCKET = "small-objects"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KmsgateServer]:
    server = start_server(tmp_path / "data", "--s3-port", str(free_port()))
    try:
        yield server
    finally:
        server.stop()


def data_files(server: KmsgateServer) -> list[Path]:
    return [p for p in (server.data_dir / OBJECTS_DIRNAME / "data").rglob("*") if p.is_file()]


def body(s3: Any, key: str, **kwargs: Any) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key, **kwargs)["Body"].read())


def test_small_objects_acknowledged_survive_kill_9_and_read_whole_and_by_range(server: KmsgateServer) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket=BUCKET)
    small, large = os.urandom(1024), os.urandom(INLINE_MAX_BYTES * 2)
    put = s3.put_object(Bucket=BUCKET, Key="small", Body=small, ContentType="text/x-small",
                        Metadata={"kind": "inline"})
    assert put["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'
    s3.put_object(Bucket=BUCKET, Key="large", Body=large)
    assert len(data_files(server)) == 1  # the large one's; the small one is in the catalog

    server.kill()  # kill -9 right after the 200s: no shutdown, no flush
    server.start()
    s3 = s3_client(server)
    got = s3.get_object(Bucket=BUCKET, Key="small")
    assert got["Body"].read() == small and got["ETag"] == put["ETag"]
    assert got["ContentType"] == "text/x-small" and got["Metadata"] == {"kind": "inline"}
    assert body(s3, "large") == large
    assert body(s3, "small", Range="bytes=100-199") == small[100:200]
    assert body(s3, "small", Range="bytes=-10") == small[-10:]
    assert body(s3, "small", Range="bytes=1000-") == small[1000:]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=BUCKET, Key="small", Range="bytes=5000-")
    assert err.value.response["Error"]["Code"] == "InvalidRange"
    head = s3.head_object(Bucket=BUCKET, Key="small")
    assert head["ContentLength"] == 1024 and head["ETag"] == put["ETag"]
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert listed["small"]["Size"] == 1024 and listed["small"]["ETag"] == put["ETag"]


def test_small_objects_copy_overwrite_and_delete_leave_no_stale_bytes(server: KmsgateServer) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket=BUCKET)
    small, large = b"small object " * 10, os.urandom(INLINE_MAX_BYTES * 2)
    s3.put_object(Bucket=BUCKET, Key="k", Body=small)
    s3.copy_object(Bucket=BUCKET, Key="copy", CopySource={"Bucket": BUCKET, "Key": "k"})
    assert body(s3, "copy") == small and data_files(server) == []
    s3.put_object(Bucket=BUCKET, Key="k", Body=large)  # kept inline, then in a data file
    assert body(s3, "k") == large and len(data_files(server)) == 1
    s3.put_object(Bucket=BUCKET, Key="k", Body=small)  # and back: the data file goes
    assert body(s3, "k") == small and data_files(server) == []
    s3.delete_object(Bucket=BUCKET, Key="k")
    s3.delete_object(Bucket=BUCKET, Key="copy")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=BUCKET, Key="k")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
    assert s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
    s3.delete_bucket(Bucket=BUCKET)


def test_a_small_object_is_not_in_the_clear_in_the_catalog(server: KmsgateServer) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket=BUCKET)
    marker = b"INLINE-PLAINTEXT-" + os.urandom(8).hex().encode()
    s3.put_object(Bucket=BUCKET, Key="secret", Body=marker * 20, Metadata={"note": "inline-metadata-marker"})
    assert body(s3, "secret") == marker * 20
    for path in server.data_dir.rglob("*"):  # the catalog and its WAL included
        if path.is_file():
            content = path.read_bytes()
            assert marker not in content and b"inline-metadata-marker" not in content, path
