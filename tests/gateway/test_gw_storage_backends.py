"""Backend-specific storage behaviour: file durability layout, S3 multipart and abort."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kmsgate.gateway.storage.base import ObjectNotFound, StorageError
from kmsgate.gateway.storage.file import STALE_TMP_SECONDS, FileStorage
from kmsgate.gateway.storage.s3 import MIN_PART_BYTES, S3Storage


def test_file_paths_never_leave_the_root(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "store")
    root = storage.objects_dir.resolve()
    for key in ["../../x", "/etc/passwd", "a/../../b", "..", ".", "\x00", "x" * 1024]:
        path = storage.object_path(key).resolve()
        assert path.is_relative_to(root)
        assert path.parent.parent.parent == root


async def test_file_commit_leaves_no_temporary_files(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "store")
    writer = await storage.open_write("k")
    await writer.write(os.urandom(3 * 1024 * 1024))
    assert len(os.listdir(storage.tmp_dir)) == 1
    await writer.commit()
    assert os.listdir(storage.tmp_dir) == []
    assert storage.object_path("k").stat().st_size == 3 * 1024 * 1024


async def test_file_failed_commit_cleans_up_and_raises_storage_error(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "store")
    # A plain file where the object's directory must go makes the rename step fail.
    shutil.rmtree(storage.objects_dir)
    storage.objects_dir.write_bytes(b"not a directory")
    writer = await storage.open_write("k")
    await writer.write(b"data" * 1000)
    with pytest.raises(StorageError):
        await writer.commit()
    assert os.listdir(storage.tmp_dir) == []
    with pytest.raises(StorageError):
        await storage.head("k")


async def test_file_stale_temporaries_are_removed_at_open(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "store")
    stale = storage.tmp_dir / "abc.0000000000000000.part"
    fresh = storage.tmp_dir / "abc.1111111111111111.part"
    stale.write_bytes(b"left over")
    fresh.write_bytes(b"in progress")
    old = os.path.getmtime(stale) - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    FileStorage(tmp_path / "store")
    assert not stale.exists()
    assert fresh.exists()


async def test_file_check_fails_when_not_writable(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "store")
    shutil.rmtree(storage.tmp_dir)
    with pytest.raises(StorageError):
        await storage.check()


async def test_s3_large_object_goes_up_as_multipart(
    s3_storage: S3Storage, s3_admin: Any, s3_bucket: str
) -> None:
    data = os.urandom(2 * MIN_PART_BYTES + 12345)
    writer = await s3_storage.open_write("big")
    calls: list[int] = []
    original = s3_storage.client.upload_part

    async def counting_upload_part(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Body"]))
        return await original(**kwargs)

    s3_storage.client.upload_part = counting_upload_part
    try:
        for i in range(0, len(data), 1 << 20):
            await writer.write(data[i : i + (1 << 20)])
            # Memory stays bounded by one part, whatever the object size.
            assert len(writer._buffer) < MIN_PART_BYTES + (1 << 20)
        await writer.commit()
    finally:
        s3_storage.client.upload_part = original
    assert len(calls) == 3 and sum(calls) == len(data)
    body = s3_admin.get_object(Bucket=s3_bucket, Key="objects/big")["Body"].read()
    assert body == data


async def test_s3_aborted_multipart_leaves_nothing(
    s3_storage: S3Storage, s3_admin: Any, s3_bucket: str
) -> None:
    writer = await s3_storage.open_write("half")
    await writer.write(os.urandom(MIN_PART_BYTES + 1))
    assert s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    await writer.abort()
    assert not s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    with pytest.raises(ObjectNotFound):
        await s3_storage.head("half")


async def test_s3_failed_commit_aborts_the_upload(
    s3_storage: S3Storage, s3_admin: Any, s3_bucket: str
) -> None:
    writer = await s3_storage.open_write("fails")
    await writer.write(os.urandom(MIN_PART_BYTES + 1))
    # The real server rejects the completion (a part list it never saw: InvalidPart).
    original = s3_storage.client.complete_multipart_upload

    async def corrupting_complete(**kwargs: Any) -> Any:
        kwargs["MultipartUpload"] = {"Parts": [{"ETag": '"0000"', "PartNumber": 1}]}
        return await original(**kwargs)

    s3_storage.client.complete_multipart_upload = corrupting_complete
    try:
        with pytest.raises(StorageError):
            await writer.commit()
    finally:
        s3_storage.client.complete_multipart_upload = original
    assert not s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    with pytest.raises(ObjectNotFound):
        await s3_storage.head("fails")


async def test_s3_unreachable_endpoint_is_storage_error(aws_env: None) -> None:
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    storage = await S3Storage.open(
        bucket="b", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1", connect_timeout=1
    )
    try:
        with pytest.raises(StorageError) as info:
            await storage.check()
        assert not isinstance(info.value, ObjectNotFound)
        with pytest.raises(StorageError):
            await storage.head("k")
    finally:
        await storage.close()


async def test_s3_missing_bucket_fails_check(s3_endpoint: str, aws_env: None) -> None:
    storage = await S3Storage.open(bucket="kmsgate-absent", endpoint_url=s3_endpoint, region="us-east-1")
    try:
        with pytest.raises(StorageError):
            await storage.check()
    finally:
        await storage.close()
