"""The file catalog's reads use a connection of their own per thread: they neither wait for a
write transaction in progress nor see its uncommitted rows, and closing the catalog closes them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kmsgate.gateway.storage.base import ObjectNotFound, StorageError, StoredObject
from kmsgate.gateway.storage.catalog import Catalog, ObjectRecord

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
