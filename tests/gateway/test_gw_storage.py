"""The storage contract for objects, run against every backend (file on disk, s3 on a loopback server)."""

from __future__ import annotations

import os

import pytest

from storage_contract import BUCKET, get, put

from kmsgate.gateway.storage.base import ObjectNotFound, Storage, StorageError

pytestmark = pytest.mark.usefixtures("bucket")


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 300_001, 3 * 1024 * 1024 + 17])  # the last: several write buffers
async def test_round_trip_at_sizes(storage: Storage, size: int) -> None:
    data = os.urandom(size)
    await put(storage, "dir/obj", data)
    assert await get(storage, "dir/obj") == data
    assert (await storage.head(BUCKET, "dir/obj")).size == size


async def test_ranges_are_half_open_and_clamped(storage: Storage) -> None:
    data = os.urandom(10_000)
    await put(storage, "r", data)
    assert await get(storage, "r", 0, 1) == data[:1]
    assert await get(storage, "r", 4096, 8192) == data[4096:8192]
    assert await get(storage, "r", 9_000, None) == data[9_000:]
    assert await get(storage, "r", None, 10) == data[:10]
    assert await get(storage, "r", 9_990, 50_000) == data[9_990:]
    assert await get(storage, "r", 10_000, None) == b""
    assert await get(storage, "r", 20_000, 30_000) == b""
    reader = await storage.open_read(BUCKET, "r", 100, 200)
    assert (reader.start, reader.end, reader.info.size) == (100, 200, 10_000)
    await reader.aclose()


async def test_missing_object_is_not_found_everywhere(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.head(BUCKET, "nope")
    with pytest.raises(ObjectNotFound):
        await storage.open_read(BUCKET, "nope")
    with pytest.raises(ObjectNotFound):
        await storage.open_read(BUCKET, "nope", 5, 10)


async def test_delete_removes_and_is_idempotent(storage: Storage) -> None:
    await put(storage, "d", b"payload")
    await storage.delete(BUCKET, "d")
    with pytest.raises(ObjectNotFound):
        await storage.head(BUCKET, "d")
    await storage.delete(BUCKET, "d")
    await storage.delete(BUCKET, "never-existed")


async def test_overwrite_replaces_whole_object(storage: Storage) -> None:
    await put(storage, "o", b"A" * 5000)
    await put(storage, "o", b"B" * 10)
    assert await get(storage, "o") == b"B" * 10


async def test_uncommitted_write_is_invisible_and_abort_leaves_nothing(storage: Storage) -> None:
    await put(storage, "w", b"old")
    writer = await storage.open_write(BUCKET, "w")
    await writer.write(b"new-but-unfinished" * 1000)
    assert await get(storage, "w") == b"old"
    await writer.abort()
    assert await get(storage, "w") == b"old"
    writer = await storage.open_write(BUCKET, "fresh")
    await writer.write(b"x" * 100)
    await writer.abort()
    with pytest.raises(ObjectNotFound):
        await storage.head(BUCKET, "fresh")


async def test_write_after_commit_is_refused(storage: Storage) -> None:
    writer = await storage.open_write(BUCKET, "c")
    await writer.write(b"1")
    await writer.commit()
    with pytest.raises(StorageError):
        await writer.write(b"2")


async def test_hostile_keys_are_distinct_objects(storage: Storage) -> None:
    keys = ["a", "a/b", "../../etc/passwd", "x" * 900, "ünïcødé/ключ", "/lead/slash", "sp ace"]
    for i, key in enumerate(keys):
        await put(storage, key, str(i).encode())
    for i, key in enumerate(keys):
        assert await get(storage, key) == str(i).encode()


async def test_reader_closed_early_releases_cleanly(storage: Storage) -> None:
    data = os.urandom(700_000)
    await put(storage, "big", data)
    reader = await storage.open_read(BUCKET, "big")
    it = reader.__aiter__()
    first = await it.__anext__()
    assert data.startswith(first)
    await it.aclose()
    await reader.aclose()
    assert await get(storage, "big", 1, 3) == data[1:3]


async def test_check_passes_on_a_healthy_backend(storage: Storage) -> None:
    await storage.check()


@pytest.mark.parametrize("size", [10, 5 * 1024 * 1024 + 1])  # one upstream PUT; an upstream multipart upload
async def test_metadata_given_at_commit_replaces_the_one_given_at_open(storage: Storage, size: int) -> None:
    data = os.urandom(size)
    writer = await storage.open_write(BUCKET, "late", b"at open")
    for i in range(0, size, 1024 * 1024):
        await writer.write(data[i : i + 1024 * 1024])
    committed = await writer.commit(metadata=b"known only at the end" * 100)
    assert committed.metadata == b"known only at the end" * 100
    assert (await storage.head(BUCKET, "late")).metadata == b"known only at the end" * 100
    assert await get(storage, "late") == data


async def test_metadata_over_its_cap_at_commit_stores_nothing(storage: Storage) -> None:
    writer = await storage.open_write(BUCKET, "too-much")
    await writer.write(b"data")
    with pytest.raises(StorageError):
        await writer.commit(metadata=b"m" * (64 * 1024 + 1))
    with pytest.raises(ObjectNotFound):
        await storage.head(BUCKET, "too-much")
