"""Group commit of catalog writes: records queued during a commit share the next one, each acknowledged
only after the commit that holds it returned, and a failure stays with its own record(s)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from storage_contract import BUCKET, get, put

from kmsgate.gateway.storage.base import NoSuchBucket, StorageError, StoredObject
from kmsgate.gateway.storage.catalog import Catalog, ObjectRecord
from kmsgate.gateway.storage.file import INLINE_MAX_BYTES, FileStorage
from kmsgate.gateway.storage.group_commit import GroupCommit

WAIT_S = 10.0


class GatedCommits:
    """A blocking ``commit_batch`` that records each batch and waits for the test to let it return."""

    def __init__(self, fail: set[str] = frozenset(), broken: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self._fail = fail
        self._broken = broken

    def __call__(self, records: Sequence[str]) -> list[str | BaseException]:
        self.batches.append(list(records))
        self.entered.set()
        if not self.release.wait(WAIT_S):
            raise TimeoutError("the test never released the commit")
        if self._broken:
            raise StorageError("commit failed")
        return [StorageError(f"{r} refused") if r in self._fail else f"{r} committed" for r in records]


async def started(commits: GatedCommits) -> None:
    assert await asyncio.to_thread(commits.entered.wait, WAIT_S)


async def test_records_submitted_during_a_commit_share_the_next_commit() -> None:
    commits = GatedCommits()
    group: GroupCommit[str, str] = GroupCommit(commits)
    first = asyncio.ensure_future(group.submit("r0"))
    await started(commits)
    rest = [asyncio.ensure_future(group.submit(f"r{i}")) for i in range(1, 8)]
    await asyncio.sleep(0)  # let each submitter queue its record (no time passes)
    assert not first.done()  # not acknowledged while its commit is still running
    commits.release.set()
    assert await asyncio.gather(first, *rest) == [f"r{i} committed" for i in range(8)]
    assert commits.batches == [["r0"], [f"r{i}" for i in range(1, 8)]]


async def test_a_record_that_fails_fails_alone() -> None:
    commits = GatedCommits(fail={"bad"})
    commits.release.set()
    group: GroupCommit[str, str] = GroupCommit(commits)
    outcomes = await asyncio.gather(group.submit("good"), group.submit("bad"), group.submit("fine"),
                                    return_exceptions=True)
    assert outcomes[0] == "good committed" and outcomes[2] == "fine committed"
    assert isinstance(outcomes[1], StorageError) and str(outcomes[1]) == "bad refused"
    assert commits.batches == [["good", "bad", "fine"]]


async def test_a_commit_that_fails_fails_every_record_of_its_batch() -> None:
    commits = GatedCommits(broken=True)
    commits.release.set()
    group: GroupCommit[str, str] = GroupCommit(commits)
    outcomes = await asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True)
    assert all(isinstance(o, StorageError) and str(o) == "commit failed" for o in outcomes)


def test_one_catalog_transaction_records_a_group_and_rolls_back_only_the_write_that_failed(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    try:
        catalog.create_bucket(BUCKET, 1.0)

        def record(bucket: str, key: str, file: str) -> ObjectRecord:
            return ObjectRecord(StoredObject(bucket=bucket, key=key, size=1, etag=file, last_modified=2.0,
                                             metadata=b""), (file,))

        catalog.put_object(record(BUCKET, "a", "old-a"))
        outcomes = catalog.commit_group([record(BUCKET, "a", "new-a"), record("no-such-bucket", "x", "x"),
                                         record(BUCKET, "b", "new-b")])
        assert outcomes[0] == ["old-a"] and outcomes[2] == []
        assert isinstance(outcomes[1], NoSuchBucket)
        assert catalog.get_object(BUCKET, "a").files == ("new-a",)
        assert catalog.get_object(BUCKET, "b").files == ("new-b",)
        assert catalog.referenced_files() >= {"new-a", "new-b"} and "x" not in catalog.referenced_files()
    finally:
        catalog.close()


async def test_concurrent_puts_are_each_durable_when_acknowledged(tmp_path: Path) -> None:
    storage = await FileStorage.open(tmp_path / "store")
    await storage.create_bucket(BUCKET)
    # Half kept inline in the catalog, half in data files (past INLINE_MAX_BYTES).
    bodies = {f"k{i}": f"body {i}".encode() * (100 if i % 2 else INLINE_MAX_BYTES // 4) for i in range(16)}
    await asyncio.gather(*(put(storage, key, body) for key, body in bodies.items()))
    await storage.close()
    reopened = await FileStorage.open(tmp_path / "store")
    try:
        assert {key: await get(reopened, key) for key in bodies} == bodies
        assert len({p for p in reopened.data_dir.rglob("*") if p.is_file()}) == len(bodies) // 2
    finally:
        await reopened.close()


async def test_a_put_into_a_bucket_deleted_before_its_commit_stores_nothing(tmp_path: Path) -> None:
    storage = await FileStorage.open(tmp_path / "store")
    try:
        await storage.create_bucket(BUCKET)
        writer = await storage.open_write(BUCKET, "k")
        await writer.write(b"data")
        await storage.delete_bucket(BUCKET)
        with pytest.raises(NoSuchBucket):
            await writer.commit()
        assert not [p for p in storage.data_dir.rglob("*") if p.is_file()]
    finally:
        await storage.close()
