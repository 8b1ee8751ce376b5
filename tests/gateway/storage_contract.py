"""Helpers shared by the storage contract tests (every backend)."""

from __future__ import annotations

from kmsgate.gateway.storage.base import Storage, StoredObject

BUCKET = "contract-bucket"


async def put(storage: Storage, key: str, data: bytes, chunk: int = 65536, *, bucket: str = BUCKET,
              metadata: bytes = b"") -> StoredObject:
    writer = await storage.open_write(bucket, key, metadata)
    for i in range(0, len(data), chunk):
        await writer.write(data[i : i + chunk])
    info = await writer.commit()
    assert info.size == len(data)
    assert writer.bytes_written == len(data)
    return info


async def get(storage: Storage, key: str, start: int | None = None, end: int | None = None, *,
              bucket: str = BUCKET) -> bytes:
    reader = await storage.open_read(bucket, key, start, end)
    return b"".join([chunk async for chunk in reader])
