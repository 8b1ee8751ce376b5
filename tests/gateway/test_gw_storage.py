"""The storage contract, run against every backend (file on disk, s3 on a loopback server)."""

from __future__ import annotations

import os

import pytest

from kmsgate.gateway.storage.base import ObjectNotFound, Storage, StorageError


async def put(storage: Storage, key: str, data: bytes, chunk: int = 65536) -> None:
    writer = await storage.open_write(key)
    for i in range(0, len(data), chunk):
        await writer.write(data[i : i + chunk])
    info = await writer.commit()
    assert info.size == len(data)
    assert writer.bytes_written == len(data)


async def get(storage: Storage, key: str, start: int | None = None, end: int | None = None) -> bytes:
    reader = await storage.open_read(key, start, end)
    return b"".join([chunk async for chunk in reader])


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 300_001])
async def test_round_trip_at_sizes(storage: Storage, size: int) -> None:
    data = os.urandom(size)
    await put(storage, "dir/obj", data)
    assert await get(storage, "dir/obj") == data
    assert (await storage.head("dir/obj")).size == size


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
    reader = await storage.open_read("r", 100, 200)
    assert (reader.start, reader.end, reader.info.size) == (100, 200, 10_000)
    await reader.aclose()


async def test_missing_object_is_not_found_everywhere(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.head("nope")
    with pytest.raises(ObjectNotFound):
        await storage.open_read("nope")
    with pytest.raises(ObjectNotFound):
        await storage.open_read("nope", 5, 10)


async def test_delete_removes_and_is_idempotent(storage: Storage) -> None:
    await put(storage, "d", b"payload")
    await storage.delete("d")
    with pytest.raises(ObjectNotFound):
        await storage.head("d")
    await storage.delete("d")
    await storage.delete("never-existed")


async def test_overwrite_replaces_whole_object(storage: Storage) -> None:
    await put(storage, "o", b"A" * 5000)
    await put(storage, "o", b"B" * 10)
    assert await get(storage, "o") == b"B" * 10


async def test_uncommitted_write_is_invisible_and_abort_leaves_nothing(storage: Storage) -> None:
    await put(storage, "w", b"old")
    writer = await storage.open_write("w")
    await writer.write(b"new-but-unfinished" * 1000)
    assert await get(storage, "w") == b"old"
    await writer.abort()
    assert await get(storage, "w") == b"old"
    writer = await storage.open_write("fresh")
    await writer.write(b"x" * 100)
    await writer.abort()
    with pytest.raises(ObjectNotFound):
        await storage.head("fresh")


async def test_write_after_commit_is_refused(storage: Storage) -> None:
    writer = await storage.open_write("c")
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
    reader = await storage.open_read("big")
    it = reader.__aiter__()
    first = await it.__anext__()
    assert data.startswith(first)
    await it.aclose()
    await reader.aclose()
    assert await get(storage, "big", 1, 3) == data[1:3]


async def test_check_passes_on_a_healthy_backend(storage: Storage) -> None:
    await storage.check()
