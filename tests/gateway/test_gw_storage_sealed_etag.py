"""The storage contract for sealed ETags and the catalog key, run against every backend."""

from __future__ import annotations

import asyncio
import os

import pytest

from storage_contract import BUCKET

from kmsgate.gateway.storage.base import MAX_SEALED_ETAG_BYTES, InvalidArgument, Storage
from kmsgate.gateway.storage.s3 import MIN_PART_BYTES

pytestmark = pytest.mark.usefixtures("bucket")


async def _write(storage: Storage, key: str, data: bytes, *, metadata: bytes | None = None,
                 sealed_etag: bytes = b"") -> None:
    writer = await storage.open_write(BUCKET, key)
    for i in range(0, len(data), 1024 * 1024):
        await writer.write(data[i : i + 1024 * 1024])
    await writer.commit(metadata=metadata, sealed_etag=sealed_etag)


async def _sealed_etag_read(storage: Storage, key: str) -> bytes:
    reader = await storage.open_read(BUCKET, key, 0, 16)
    try:
        return reader.info.sealed_etag
    finally:
        await reader.aclose()


@pytest.mark.parametrize(("size", "metadata"), [
    (10, None), (10, b"m" * 100), (10, b"m" * 5000), (MIN_PART_BYTES + 1, b"m" * 100)],
    ids=["inline", "inline-with-metadata", "with-a-sidecar", "sent-in-parts"])
async def test_a_sealed_etag_committed_with_an_object_is_read_back_with_that_version(
        storage: Storage, size: int, metadata: bytes | None) -> None:
    sealed = os.urandom(MAX_SEALED_ETAG_BYTES)
    await _write(storage, "obj", os.urandom(size), metadata=metadata, sealed_etag=sealed)
    assert await _sealed_etag_read(storage, "obj") == sealed
    assert (await storage.head(BUCKET, "obj")).sealed_etag == sealed
    await _write(storage, "obj", b"replaced without one")
    assert await _sealed_etag_read(storage, "obj") == b""


async def test_a_sealed_etag_over_its_cap_is_refused_and_nothing_is_stored(storage: Storage) -> None:
    writer = await storage.open_write(BUCKET, "too-long")
    await writer.write(b"data")
    with pytest.raises(InvalidArgument):
        await writer.commit(sealed_etag=b"x" * (MAX_SEALED_ETAG_BYTES + 1))
    assert (await storage.list_objects(BUCKET)).objects == ()


async def test_a_completed_upload_keeps_the_sealed_etag_given_at_completion(storage: Storage) -> None:
    upload_id = await storage.create_upload(BUCKET, "mp", b"upload metadata")
    for number, body in ((1, os.urandom(MIN_PART_BYTES)), (2, b"last")):
        writer = await storage.open_part_write(BUCKET, "mp", upload_id, number)
        await writer.write(body)
        await writer.commit()
    sealed = os.urandom(60)
    info = await storage.complete_upload(BUCKET, "mp", upload_id, [1, 2], metadata=b"done", sealed_etag=sealed)
    assert info.sealed_etag == sealed
    assert await _sealed_etag_read(storage, "mp") == sealed


async def test_the_catalog_key_is_created_once_and_the_first_one_stored_is_kept(storage: Storage) -> None:
    assert await storage.read_catalog_key() is None
    first = await storage.create_catalog_key(b"wrapped by the first gateway")
    assert first == b"wrapped by the first gateway"
    assert await storage.create_catalog_key(b"wrapped by a later gateway") == first
    assert await storage.read_catalog_key() == first
    assert [b.name for b in await storage.list_buckets()] == [BUCKET]
    assert (await storage.list_objects(BUCKET)).objects == ()


async def test_gateways_creating_the_catalog_key_at_once_all_get_the_same_one(storage: Storage) -> None:
    blobs = [f"wrapped by gateway {i}".encode() for i in range(6)]
    kept = await asyncio.gather(*(storage.create_catalog_key(b) for b in blobs))
    assert len(set(kept)) == 1 and kept[0] in blobs
    assert await storage.read_catalog_key() == kept[0]
