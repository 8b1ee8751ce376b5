"""The s3 backend's writes hold a few chunks whatever their size: streamed upstream when their length
is known, spooled to a temporary file when not; and nothing partial is left upstream."""

from __future__ import annotations

import os
from typing import Any

import pytest

from kmsgate.gateway.storage.base import MIN_PART_BYTES, ObjectNotFound, StorageError
from kmsgate.gateway.storage.s3 import S3Storage
from kmsgate.gateway.storage.s3stream import PIPE_CHUNKS
from kmsgate.gateway.storage.spool import MEMORY_BYTES

BUCKET = "contract-bucket"
CHUNK = 64 * 1024
HELD_BOUND = (PIPE_CHUNKS + 1) * CHUNK
"""What a streaming writer may hold: the chunks waiting for the connection and the kept-back last one."""


def upstream_keys(s3_admin: Any, s3_bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3_admin.list_objects_v2(Bucket=s3_bucket).get("Contents", []))


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


@pytest.mark.parametrize("size", [MIN_PART_BYTES - 1000, 4 * MIN_PART_BYTES + 12_345])
async def test_s3_a_write_of_known_length_holds_a_few_chunks_whatever_its_size(
        s3_storage: S3Storage, s3_admin: Any, s3_bucket: str, size: int) -> None:
    await s3_storage.create_bucket(BUCKET)
    data = os.urandom(size)
    writer = await s3_storage.open_write(BUCKET, "big", length=size)
    for chunk in chunks(data):
        await writer.write(chunk)
    stored = await writer.commit(metadata=b"m" * 3000)
    assert stored.size == size
    assert 0 < writer.peak_held_bytes <= HELD_BOUND
    assert s3_admin.get_object(Bucket=s3_bucket, Key=f"objects/{BUCKET}/big")["Body"].read() == data
    info = await s3_storage.head(BUCKET, "big")
    assert (info.size, info.metadata) == (size, b"m" * 3000)
    assert not s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


async def test_s3_a_part_of_known_length_streams_past_the_memory_cap(s3_storage: S3Storage, s3_admin: Any,
                                                                     s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    upload_id = await s3_storage.create_upload(BUCKET, "k")
    size = s3_storage.uploads.max_part_bytes + 3 * CHUNK + 7
    data = os.urandom(size)
    writer = await s3_storage.open_part_write(BUCKET, "k", upload_id, 1, length=size)
    for chunk in chunks(data):
        await writer.write(chunk)
    part = await writer.commit(b"part meta")
    assert part.size == size
    assert 0 < writer.peak_held_bytes <= HELD_BOUND
    await s3_storage.complete_upload(BUCKET, "k", upload_id, [1])
    assert s3_admin.get_object(Bucket=s3_bucket, Key=f"objects/{BUCKET}/k")["Body"].read() == data


@pytest.mark.parametrize("size", [MIN_PART_BYTES - 1000, 3 * MIN_PART_BYTES])
async def test_s3_a_streamed_write_abandoned_midway_leaves_nothing_upstream(
        s3_storage: S3Storage, s3_admin: Any, s3_bucket: str, size: int) -> None:
    await s3_storage.create_bucket(BUCKET)
    data = os.urandom(size)
    writer = await s3_storage.open_write(BUCKET, "half", length=size)
    for chunk in chunks(data)[:-1]:  # all but the last chunk went upstream
        await writer.write(chunk)
    await writer.abort()
    with pytest.raises(ObjectNotFound):
        await s3_storage.head(BUCKET, "half")
    assert upstream_keys(s3_admin, s3_bucket) == ["objects/.kmsgate/buckets/contract-bucket"]
    assert not s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


async def test_s3_a_streamed_part_abandoned_midway_is_not_a_part(s3_storage: S3Storage) -> None:
    await s3_storage.create_bucket(BUCKET)
    upload_id = await s3_storage.create_upload(BUCKET, "k")
    data = os.urandom(MIN_PART_BYTES)
    writer = await s3_storage.open_part_write(BUCKET, "k", upload_id, 1, length=len(data))
    for chunk in chunks(data)[:-1]:
        await writer.write(chunk)
    await writer.abort()
    assert await s3_storage.list_parts(BUCKET, "k", upload_id) == []
    await s3_storage.abort_upload(BUCKET, "k", upload_id)


async def test_s3_a_streamed_write_short_of_its_length_is_refused_and_leaves_nothing(
        s3_storage: S3Storage, s3_admin: Any, s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    writer = await s3_storage.open_write(BUCKET, "short", length=2 * MIN_PART_BYTES)
    for chunk in chunks(os.urandom(MIN_PART_BYTES + CHUNK)):
        await writer.write(chunk)
    with pytest.raises(StorageError):
        await writer.commit()
    with pytest.raises(ObjectNotFound):
        await s3_storage.head(BUCKET, "short")
    assert not s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


async def test_s3_a_write_of_unknown_length_is_spooled_not_held(s3_storage: S3Storage, s3_admin: Any,
                                                                s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    data = os.urandom(3 * MIN_PART_BYTES + 54_321)
    writer = await s3_storage.open_write(BUCKET, "unknown")
    for chunk in chunks(data):
        await writer.write(chunk)
    await writer.commit(metadata=b"meta")
    assert 0 < writer.peak_held_bytes <= MEMORY_BYTES + CHUNK
    assert s3_admin.get_object(Bucket=s3_bucket, Key=f"objects/{BUCKET}/unknown")["Body"].read() == data
    assert (await s3_storage.head(BUCKET, "unknown")).metadata == b"meta"


async def test_s3_a_part_of_unknown_length_is_spooled_not_held(s3_storage: S3Storage, s3_admin: Any,
                                                               s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    upload_id = await s3_storage.create_upload(BUCKET, "k")
    data = os.urandom(s3_storage.uploads.max_part_bytes)
    writer = await s3_storage.open_part_write(BUCKET, "k", upload_id, 1)
    for chunk in chunks(data):
        await writer.write(chunk)
    assert (await writer.commit()).size == len(data)
    assert 0 < writer.peak_held_bytes <= MEMORY_BYTES + CHUNK
    await s3_storage.complete_upload(BUCKET, "k", upload_id, [1])
    assert s3_admin.get_object(Bucket=s3_bucket, Key=f"objects/{BUCKET}/k")["Body"].read() == data


async def test_s3_an_empty_write_after_the_last_chunk_loses_nothing(s3_storage: S3Storage, s3_admin: Any,
                                                                    s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    data = os.urandom(MIN_PART_BYTES + 3)
    writer = await s3_storage.open_write(BUCKET, "k", length=len(data))
    for chunk in [*chunks(data), b""]:
        await writer.write(chunk)
    await writer.commit()
    assert s3_admin.get_object(Bucket=s3_bucket, Key=f"objects/{BUCKET}/k")["Body"].read() == data
    upload_id = await s3_storage.create_upload(BUCKET, "p")
    part_writer = await s3_storage.open_part_write(BUCKET, "p", upload_id, 1, length=len(data))
    for chunk in [*chunks(data), b""]:
        await part_writer.write(chunk)
    assert (await part_writer.commit()).size == len(data)
    await s3_storage.complete_upload(BUCKET, "p", upload_id, [1])
    assert s3_admin.get_object(Bucket=s3_bucket, Key=f"objects/{BUCKET}/p")["Body"].read() == data
