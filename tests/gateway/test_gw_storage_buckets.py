"""The storage contract for buckets, configs and object metadata, run against every backend."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from storage_contract import BUCKET, get, put

from kmsgate.gateway.storage.base import (
    MAX_METADATA_BYTES,
    BucketAlreadyExists,
    BucketNotEmpty,
    InvalidArgument,
    NoSuchBucket,
    NoSuchUpload,
    ObjectNotFound,
    Storage,
)


async def test_created_buckets_are_listed_by_name_with_their_creation_time(storage: Storage) -> None:
    before = time.time()
    for name in ["zeta", "alpha.bucket", "mid-1"]:
        info = await storage.create_bucket(name)
        assert info.name == name
    listed = await storage.list_buckets()
    assert [b.name for b in listed] == ["alpha.bucket", "mid-1", "zeta"]
    for b in listed:
        assert before - 5 <= b.created <= time.time() + 5
        assert (await storage.head_bucket(b.name)).name == b.name


async def test_creating_an_existing_bucket_is_refused(storage: Storage) -> None:
    await storage.create_bucket("twice")
    with pytest.raises(BucketAlreadyExists):
        await storage.create_bucket("twice")
    assert [b.name for b in await storage.list_buckets()] == ["twice"]


async def test_concurrent_creates_of_one_bucket_succeed_once(storage: Storage) -> None:
    results = await asyncio.gather(*(storage.create_bucket("race") for _ in range(4)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, BucketAlreadyExists) for r in results if isinstance(r, BaseException))


@pytest.mark.parametrize("name", ["ab", "x" * 64, "Upper", "-lead", "trail-", "a..b", "192.168.1.1",
                                  ".kmsgate", "under_score", "sp ace", "ünï"])
async def test_invalid_bucket_names_are_refused(storage: Storage, name: str) -> None:
    with pytest.raises(InvalidArgument):
        await storage.create_bucket(name)
    assert await storage.list_buckets() == []


async def test_missing_bucket_is_no_such_bucket_for_every_operation(storage: Storage) -> None:
    with pytest.raises(NoSuchBucket):
        await storage.head_bucket("absent")
    with pytest.raises(NoSuchBucket):
        await storage.delete_bucket("absent")
    with pytest.raises(NoSuchBucket):
        await storage.open_write("absent", "k")
    with pytest.raises(NoSuchBucket):
        await storage.open_read("absent", "k")
    with pytest.raises(NoSuchBucket):
        await storage.head("absent", "k")
    with pytest.raises(NoSuchBucket):
        await storage.delete("absent", "k")
    with pytest.raises(NoSuchBucket):
        await storage.list_objects("absent")
    with pytest.raises(NoSuchBucket):
        await storage.create_upload("absent", "k")
    with pytest.raises(NoSuchBucket):
        await storage.list_uploads("absent")
    with pytest.raises(NoSuchBucket):
        await storage.put_bucket_config("absent", "encryption", b"{}")
    with pytest.raises(NoSuchBucket):
        await storage.get_bucket_config("absent", "encryption")


async def test_a_bucket_holding_objects_cannot_be_deleted(storage: Storage, bucket: str) -> None:
    await put(storage, "k", b"data")
    with pytest.raises(BucketNotEmpty):
        await storage.delete_bucket(bucket)
    assert await get(storage, "k") == b"data"
    await storage.delete(bucket, "k")
    await storage.delete_bucket(bucket)
    with pytest.raises(NoSuchBucket):
        await storage.head_bucket(bucket)
    assert await storage.list_buckets() == []


async def test_deleting_a_bucket_aborts_its_uploads(storage: Storage, bucket: str) -> None:
    upload_id = await storage.create_upload(bucket, "big", b"meta")
    writer = await storage.open_part_write(bucket, "big", upload_id, 1)
    await writer.write(b"part one")
    await writer.commit()
    await storage.delete_bucket(bucket)  # uploads are not content, as in S3
    await storage.create_bucket(bucket)
    assert await storage.list_uploads(bucket) == []
    with pytest.raises(NoSuchUpload):
        await storage.complete_upload(bucket, "big", upload_id, [1])
    with pytest.raises(ObjectNotFound):
        await storage.head(bucket, "big")


async def test_buckets_are_separate_namespaces(storage: Storage, bucket: str) -> None:
    await storage.create_bucket("other-bucket")
    await put(storage, "same/key", b"in the first")
    await put(storage, "same/key", b"in the other", bucket="other-bucket")
    assert await get(storage, "same/key") == b"in the first"
    assert await get(storage, "same/key", bucket="other-bucket") == b"in the other"
    await storage.delete(bucket, "same/key")
    assert await get(storage, "same/key", bucket="other-bucket") == b"in the other"
    assert [o.key for o in (await storage.list_objects("other-bucket")).objects] == ["same/key"]
    assert (await storage.list_objects(bucket)).objects == ()


async def test_bucket_configs_round_trip_replace_and_delete(storage: Storage, bucket: str) -> None:
    assert await storage.get_bucket_config(bucket, "encryption") is None
    await storage.put_bucket_config(bucket, "encryption", b'{"kms_key_id": "alias/a"}')
    await storage.put_bucket_config(bucket, "cors", b"\x00binary\xff")
    assert await storage.get_bucket_config(bucket, "encryption") == b'{"kms_key_id": "alias/a"}'
    await storage.put_bucket_config(bucket, "encryption", b'{"kms_key_id": "alias/b"}')
    assert await storage.get_bucket_config(bucket, "encryption") == b'{"kms_key_id": "alias/b"}'
    assert await storage.get_bucket_config(bucket, "cors") == b"\x00binary\xff"
    await storage.delete_bucket_config(bucket, "encryption")
    await storage.delete_bucket_config(bucket, "encryption")  # idempotent
    assert await storage.get_bucket_config(bucket, "encryption") is None
    # Configs go with their bucket: a bucket created again under the name starts without them.
    await storage.delete_bucket(bucket)
    await storage.create_bucket(bucket)
    assert await storage.get_bucket_config(bucket, "cors") is None


async def test_bucket_config_names_and_sizes_are_checked(storage: Storage, bucket: str) -> None:
    for name in ["", "../x", "Enc", "a/b"]:
        with pytest.raises(InvalidArgument):
            await storage.put_bucket_config(bucket, name, b"{}")
    with pytest.raises(InvalidArgument):
        await storage.put_bucket_config(bucket, "big", b"x" * (64 * 1024 + 1))


@pytest.mark.parametrize("size", [0, 1, 1000, 1025, 5000, MAX_METADATA_BYTES])
async def test_metadata_is_stored_with_the_object(storage: Storage, bucket: str, size: int) -> None:
    metadata = os.urandom(size)
    written = await put(storage, "m", b"body", metadata=metadata)
    assert written.metadata == metadata and written.bucket == bucket and written.part_sizes == ()
    assert (await storage.head(bucket, "m")).metadata == metadata
    reader = await storage.open_read(bucket, "m", 1, 3)
    assert reader.info.metadata == metadata
    await reader.aclose()


async def test_metadata_is_replaced_with_the_object(storage: Storage, bucket: str) -> None:
    await put(storage, "m", b"first", metadata=os.urandom(5000))
    await put(storage, "m", b"second", metadata=b"small")
    info = await storage.head(bucket, "m")
    assert (info.metadata, await get(storage, "m")) == (b"small", b"second")
    await put(storage, "m", b"third")
    assert (await storage.head(bucket, "m")).metadata == b""


async def test_metadata_over_the_cap_is_refused(storage: Storage, bucket: str) -> None:
    with pytest.raises(InvalidArgument):
        await storage.open_write(bucket, "m", b"x" * (MAX_METADATA_BYTES + 1))
    with pytest.raises(InvalidArgument):
        await storage.create_upload(bucket, "m", b"x" * (MAX_METADATA_BYTES + 1))


async def test_of_two_writers_of_one_key_the_later_commit_wins_whole(storage: Storage, bucket: str) -> None:
    a_data, b_data = os.urandom(200_000), os.urandom(150_000)
    a = await storage.open_write(bucket, "contested", b"meta-a" * 400)
    b = await storage.open_write(bucket, "contested", b"meta-b")
    for i in range(0, 200_000, 50_000):  # interleaved writes
        await a.write(a_data[i : i + 50_000])
        await b.write(b_data[i : i + 50_000])
    await b.commit()
    await a.commit()
    assert await get(storage, "contested") == a_data
    assert (await storage.head(bucket, "contested")).metadata == b"meta-a" * 400
    # Committed at once: whichever wins, it wins whole, bytes and metadata together.
    c = await storage.open_write(bucket, "contested", b"meta-c")
    d = await storage.open_write(bucket, "contested", b"meta-d" * 400)
    await c.write(b"c" * 70_000)
    await d.write(b"d" * 90_000)
    await asyncio.gather(c.commit(), d.commit())
    body = await get(storage, "contested")
    meta = (await storage.head(bucket, "contested")).metadata
    assert (body, meta) in [(b"c" * 70_000, b"meta-c"), (b"d" * 90_000, b"meta-d" * 400)]
