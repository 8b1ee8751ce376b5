"""The file catalog's reads use a connection of their own per thread: they neither wait for a
write transaction in progress nor see its uncommitted rows, and closing the catalog closes them.
Concurrent reads of the file storage share their catalog lookups' thread hand-offs."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from kmsgate.gateway.storage.base import ObjectNotFound, StorageError, StoredObject
from kmsgate.gateway.storage.catalog import Catalog, ObjectRecord
from kmsgate.gateway.storage.file import FileStorage
from kmsgate.gateway.storage.group_commit import GroupCommit

BUCKET = "readers"


def record(key: str, data: bytes) -> ObjectRecord:
    info = StoredObject(bucket=BUCKET, key=key, size=len(data), etag='"e"', last_modified=1.0, metadata=b"",
                        part_sizes=(), sealed_etag=b"")
    return ObjectRecord(info, (), data)


def test_a_read_does_not_wait_for_a_write_transaction_in_progress(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    try:
        catalog.create_bucket(BUCKET, 1.0)
        catalog.put_object(record("old", b"committed"))
        in_transaction, release = threading.Event(), threading.Event()

        def slow_writer() -> None:
            with catalog._write() as db:  # holds the writer's lock and SQLite's write lock
                catalog._replace_object(db, record("new", b"uncommitted"))
                in_transaction.set()
                release.wait(30)

        writer = threading.Thread(target=slow_writer)
        writer.start()
        try:
            assert in_transaction.wait(30)
            results: list[object] = []

            def reader() -> None:
                results.append(catalog.get_object(BUCKET, "old").data)
                try:
                    catalog.get_object(BUCKET, "new")
                except ObjectNotFound:
                    results.append("not yet")

            thread = threading.Thread(target=reader)
            thread.start()
            thread.join(30)
            assert not thread.is_alive(), "the read waited for the write transaction"
            assert results == [b"committed", "not yet"]
        finally:
            release.set()
            writer.join(30)
        assert catalog.get_object(BUCKET, "new").data == b"uncommitted"
    finally:
        catalog.close()


def test_closing_the_catalog_closes_every_threads_read_connection(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.create_bucket(BUCKET, 1.0)
    catalog.put_object(record("k", b"v"))
    threads = [threading.Thread(target=catalog.get_object, args=(BUCKET, "k")) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert catalog.get_object(BUCKET, "k").data == b"v"
    catalog.close()
    with pytest.raises(StorageError):
        catalog.get_object(BUCKET, "k")


async def test_concurrent_reads_share_their_catalog_lookups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = await FileStorage.open(tmp_path / "store")
    try:
        await storage.create_bucket(BUCKET)
        objects = {f"k{i}": os.urandom(100 + i) for i in range(20)}
        for key, data in objects.items():
            writer = await storage.open_write(BUCKET, key)
            await writer.write(data)
            await writer.commit()
        batches: list[int] = []
        lookup = storage._lookup_sync

        def counted(names: Sequence[tuple[str, str]]) -> list[ObjectRecord | StorageError]:
            batches.append(len(names))
            return lookup(names)

        monkeypatch.setattr(storage, "_lookups", GroupCommit(counted))

        async def read(key: str) -> bytes:
            reader = await storage.open_read(BUCKET, key)
            return b"".join([chunk async for chunk in reader])

        keys = [*objects, "missing"]
        results = await asyncio.gather(*(read(key) for key in keys), return_exceptions=True)
        assert results[:-1] == list(objects.values())
        assert isinstance(results[-1], ObjectNotFound)
        assert sum(batches) == len(keys) and len(batches) < len(keys)  # several lookups per thread hand-off
    finally:
        await storage.close()
