"""Backend-specific storage behaviour: the file layout, catalog and crash safety; the S3 upstream layout."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from storage_contract import BUCKET, get, put

from kmsgate.gateway.storage.base import EntityTooSmall, InvalidArgument, NoSuchBucket, ObjectNotFound, StorageError
from kmsgate.gateway.storage import file
from kmsgate.gateway.storage.file import INLINE_MAX_BYTES, ORPHAN_GRACE_SECONDS, FileStorage
from kmsgate.gateway.storage.fileio import create_owned
from kmsgate.gateway.storage.s3 import MIN_PART_BYTES, S3Storage
from kmsgate.gateway.storage.spool import MEMORY_BYTES


def tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def age(path: Path, seconds: float) -> None:
    old = path.stat().st_mtime - seconds
    os.utime(path, (old, old))


def file_sized(data: bytes) -> bytes:
    """``data`` repeated past ``INLINE_MAX_BYTES``: an object the file storage keeps in a data file."""
    return data * (INLINE_MAX_BYTES // len(data) + 1)


def data_files(storage: FileStorage) -> set[Path]:
    return {p for p in storage.data_dir.rglob("*") if p.is_file()}


async def test_file_storage_touches_nothing_outside_its_root(tmp_path: Path) -> None:
    outside = tmp_path / "neighbour.txt"
    outside.write_bytes(b"untouched")
    storage = await FileStorage.open(tmp_path / "store")
    try:
        await storage.create_bucket(BUCKET)
        keys = ["../../x", "/etc/passwd", "a/../../b", "..", ".", "\x00", "x" * 1024, "ключ/../.."]
        for key in keys:
            await put(storage, key, key.encode())
        for key in keys:
            assert await get(storage, key) == key.encode()
            for path in storage.object_files(BUCKET, key):
                assert path.resolve().parent.parent == storage.data_dir.resolve()
    finally:
        await storage.close()
    assert sorted(os.listdir(tmp_path)) == ["neighbour.txt", "store"]
    assert outside.read_bytes() == b"untouched"


async def test_file_commit_leaves_no_temporary_files(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    writer = await file_storage.open_write(BUCKET, "k")
    for _ in range(3):  # full buffers are written behind; each write waits for the one before it
        await writer.write(os.urandom(1024 * 1024))
    assert len(os.listdir(file_storage.tmp_dir)) == 1
    await writer.commit()
    assert os.listdir(file_storage.tmp_dir) == []
    [path] = file_storage.object_files(BUCKET, "k")
    assert path.stat().st_size == 3 * 1024 * 1024


async def test_file_replacing_or_deleting_an_object_removes_its_data_file(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    await put(file_storage, "k", file_sized(b"first"))
    first = set(file_storage.object_files(BUCKET, "k"))
    await put(file_storage, "k", file_sized(b"second"))
    assert data_files(file_storage) == set(file_storage.object_files(BUCKET, "k")) != first
    await file_storage.delete(BUCKET, "k")
    assert data_files(file_storage) == set()


async def test_file_failed_commit_cleans_up_and_raises_storage_error(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    # A plain file where the data directory must go makes the rename step fail.
    shutil.rmtree(file_storage.data_dir)
    file_storage.data_dir.write_bytes(b"not a directory")
    writer = await file_storage.open_write(BUCKET, "k")
    await writer.write(file_sized(b"data"))
    with pytest.raises(StorageError):
        await writer.commit()
    assert os.listdir(file_storage.tmp_dir) == []
    with pytest.raises(ObjectNotFound):
        await file_storage.head(BUCKET, "k")


async def test_file_a_write_failing_behind_the_upload_fails_it_and_leaves_nothing(
        file_storage: FileStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    await file_storage.create_bucket(BUCKET)

    def disk_full(fd: int, chunks: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file, "write_all", disk_full)
    writer = await file_storage.open_write(BUCKET, "k")
    with pytest.raises(StorageError):  # the first full buffer is written behind; a later step reports it
        for _ in range(4):
            await writer.write(b"x" * (1024 * 1024))
        await writer.commit()
    assert os.listdir(file_storage.tmp_dir) == []
    with pytest.raises(ObjectNotFound):
        await file_storage.head(BUCKET, "k")


async def test_file_commit_to_a_bucket_deleted_meanwhile_leaves_nothing(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    writer = await file_storage.open_write(BUCKET, "k")
    await writer.write(b"data" * 1000)
    await file_storage.delete_bucket(BUCKET)
    with pytest.raises(StorageError):
        await writer.commit()
    assert os.listdir(file_storage.tmp_dir) == [] and data_files(file_storage) == set()


async def test_file_unowned_temporaries_and_orphan_data_files_are_removed_at_open(tmp_path: Path) -> None:
    storage = await FileStorage.open(tmp_path / "store")
    await storage.create_bucket(BUCKET)
    await put(storage, "kept", file_sized(b"referenced"))
    [kept] = storage.object_files(BUCKET, "kept")
    age(kept, ORPHAN_GRACE_SECONDS + 60)  # old, but the catalog names it
    await storage.close()
    abandoned = storage.tmp_dir / "0000.part"  # its writer is gone, however recently
    in_use = storage.tmp_dir / "1111.part"
    orphan = storage.data_dir / "ab" / ("ab" + "0" * 30)
    young_orphan = storage.data_dir / "cd" / ("cd" + "1" * 30)
    for path in (abandoned, orphan, young_orphan):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"left over")
    age(orphan, ORPHAN_GRACE_SECONDS + 60)
    writer_fd = create_owned(in_use)  # a live writer's, as another process's would be
    try:
        reopened = await FileStorage.open(tmp_path / "store")
        try:
            assert not abandoned.exists() and not orphan.exists()
            assert in_use.exists() and young_orphan.exists()  # another process may be mid-commit
            assert await get(reopened, "kept") == file_sized(b"referenced")
        finally:
            await reopened.close()
    finally:
        os.close(writer_fd)


async def test_file_an_entry_among_temporaries_that_is_no_file_does_not_stop_the_open(tmp_path: Path) -> None:
    storage = await FileStorage.open(tmp_path / "store")
    await storage.close()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not the storage's")
    (storage.tmp_dir / "link.part").symlink_to(target)
    reopened = await FileStorage.open(tmp_path / "store")
    await reopened.close()
    assert target.read_bytes() == b"not the storage's"


async def test_file_objects_of_the_previous_layout_are_left_alone(tmp_path: Path) -> None:
    legacy = tmp_path / "store" / "objects" / "ab" / "cd" / ("abcd" + "e" * 60)
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"an old message")
    age(legacy, ORPHAN_GRACE_SECONDS + 60)
    storage = await FileStorage.open(tmp_path / "store")
    await storage.close()
    assert legacy.read_bytes() == b"an old message"


async def test_file_catalog_is_shared_by_storages_on_one_root(tmp_path: Path) -> None:
    one = await FileStorage.open(tmp_path / "store")
    two = await FileStorage.open(tmp_path / "store")  # as another worker process would
    try:
        results = await asyncio.gather(one.create_bucket(BUCKET), two.create_bucket(BUCKET), return_exceptions=True)
        assert sum(isinstance(r, BaseException) for r in results) == 1
        await put(one, "k", b"from one")
        assert await get(two, "k") == b"from one"
        await put(two, "k", b"from two")
        assert await get(one, "k") == b"from two"
    finally:
        await one.close()
        await two.close()


_CRASHING_WRITER = """
import asyncio, sys, time
from kmsgate.gateway.storage import catalog, file

point = sys.argv[2]

def crash_here(*args, **kwargs):
    print("ready", flush=True)
    time.sleep(3600)  # killed here

if point == "before-catalog-commit":
    catalog.Catalog.commit_group = crash_here
elif point == "after-catalog-commit":
    file.unlink_quietly = crash_here

async def main():
    storage = await file.FileStorage.open(sys.argv[1])
    writer = await storage.open_write("contract-bucket", "k", b"new metadata")
    await writer.write(b"N" * (3 * 1024 * 1024))  # past the write buffer: in the temporary file
    if point == "mid-write":
        crash_here()
    await writer.commit()

asyncio.run(main())
"""


@pytest.mark.parametrize("point, survivor", [("mid-write", "old"), ("before-catalog-commit", "old"),
                                             ("after-catalog-commit", "new")])
async def test_file_a_writer_killed_at_any_point_leaves_one_whole_version(tmp_path: Path, point: str,
                                                                          survivor: str) -> None:
    root = tmp_path / "store"
    storage = await FileStorage.open(root)
    await storage.create_bucket(BUCKET)
    old = os.urandom(100_000)
    await put(storage, "k", old, metadata=b"old metadata")
    await storage.close()

    proc = subprocess.Popen([sys.executable, "-c", _CRASHING_WRITER, str(root), point], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line == b"ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    storage = await FileStorage.open(root)
    try:
        want = (old, b"old metadata") if survivor == "old" else (b"N" * (3 * 1024 * 1024), b"new metadata")
        assert (await get(storage, "k"), (await storage.head(BUCKET, "k")).metadata) == want
        # A temporary file of the killed writer is gone at this open already; an unreferenced
        # data file (the writer may have been another live process, between its rename and its
        # catalog commit) stays until it is old enough, and then the next open removes it.
        assert list(storage.tmp_dir.iterdir()) == []
        leftovers = [p for p in data_files(storage) if p not in storage.object_files(BUCKET, "k")]
        assert bool(leftovers) == (point != "mid-write")
    finally:
        await storage.close()
    for path in leftovers:
        age(path, ORPHAN_GRACE_SECONDS)
    storage = await FileStorage.open(root)
    try:
        assert data_files(storage) == set(storage.object_files(BUCKET, "k"))
        assert list(storage.tmp_dir.iterdir()) == []
        assert (await get(storage, "k"), (await storage.head(BUCKET, "k")).metadata) == want
    finally:
        await storage.close()


async def write_part(storage: FileStorage | S3Storage, key: str, upload_id: str, number: int, data: bytes) -> None:
    writer = await storage.open_part_write(BUCKET, key, upload_id, number)
    await writer.write(data)
    await writer.commit()


async def test_file_multipart_object_keeps_its_part_files_and_drops_the_rest(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    upload_id = await file_storage.create_upload(BUCKET, "k")
    await write_part(file_storage, "k", upload_id, 1, b"replaced")
    replaced = data_files(file_storage)
    for n, data in ((1, b"one"), (2, b"two"), (3, b"three")):
        await write_part(file_storage, "k", upload_id, n, data)
    assert len(data_files(file_storage)) == 3 and not replaced & data_files(file_storage)
    await file_storage.complete_upload(BUCKET, "k", upload_id, [1, 3])
    files = file_storage.object_files(BUCKET, "k")
    assert [p.read_bytes() for p in files] == [b"one", b"three"]  # the parts themselves, not a copy
    assert data_files(file_storage) == set(files)
    await put(file_storage, "k", b"whole")
    assert data_files(file_storage) == set(file_storage.object_files(BUCKET, "k"))


async def test_file_aborted_and_expired_uploads_leave_no_files(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    for key in ("a", "b"):
        upload_id = await file_storage.create_upload(BUCKET, key)
        await write_part(file_storage, key, upload_id, 1, b"part")
        if key == "a":
            await file_storage.abort_upload(BUCKET, key, upload_id)
    assert len(data_files(file_storage)) == 1
    assert await file_storage.expire_uploads(-1) == 1
    assert data_files(file_storage) == set() and os.listdir(file_storage.tmp_dir) == []


async def test_file_multipart_object_replaced_mid_read_fails_rather_than_mixing(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    upload_id = await file_storage.create_upload(BUCKET, "k")
    await write_part(file_storage, "k", upload_id, 1, b"1" * (2 << 20))
    await write_part(file_storage, "k", upload_id, 2, b"2" * (2 << 20))
    await file_storage.complete_upload(BUCKET, "k", upload_id, [1, 2])
    reader = await file_storage.open_read(BUCKET, "k")
    chunks = aiter(reader)
    assert set(await anext(chunks)) == {ord("1")}
    await put(file_storage, "k", b"replacement")  # unlinks the old parts' files
    got = b""
    with pytest.raises(StorageError):
        async for chunk in chunks:
            got += chunk
    assert set(got) <= {ord("1")}
    await reader.aclose()


async def test_file_check_fails_when_not_writable(file_storage: FileStorage) -> None:
    shutil.rmtree(file_storage.tmp_dir)
    with pytest.raises(StorageError):
        await file_storage.check()


# -- s3 ---------------------------------------------------------------------------------------


def upstream_keys(s3_admin: Any, s3_bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3_admin.list_objects_v2(Bucket=s3_bucket).get("Contents", []))


async def test_s3_upstream_layout(s3_storage: S3Storage, s3_admin: Any, s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    await put(s3_storage, "dir/k", b"small", metadata=b"inline")
    await put(s3_storage, "big-meta", b"x", metadata=os.urandom(5000))
    await s3_storage.put_bucket_config(BUCKET, "encryption", b"{}")
    keys = upstream_keys(s3_admin, s3_bucket)
    sidecars = [k for k in keys if k.startswith("objects/.kmsgate/meta/")]
    assert len(sidecars) == 1  # only the large blob needs one
    assert sorted(set(keys) - set(sidecars)) == [
        "objects/.kmsgate/buckets/contract-bucket", "objects/.kmsgate/configs/contract-bucket/encryption",
        f"objects/{BUCKET}/big-meta", f"objects/{BUCKET}/dir/k"]
    assert s3_admin.get_object(Bucket=s3_bucket, Key=f"objects/{BUCKET}/dir/k")["Body"].read() == b"small"
    assert [o.key for o in (await s3_storage.list_objects(BUCKET)).objects] == ["big-meta", "dir/k"]


async def test_s3_sidecars_go_with_the_version_that_names_them(s3_storage: S3Storage, s3_admin: Any,
                                                               s3_bucket: str) -> None:
    def sidecars() -> list[str]:
        return [k for k in upstream_keys(s3_admin, s3_bucket) if k.startswith("objects/.kmsgate/meta/")]

    await s3_storage.create_bucket(BUCKET)
    await put(s3_storage, "k", b"one", metadata=b"a" * 5000)
    first = sidecars()
    await put(s3_storage, "k", b"two", metadata=b"b" * 5000)
    assert len(sidecars()) == 1 and sidecars() != first
    await put(s3_storage, "k", b"three", metadata=b"inline")
    assert sidecars() == []
    await put(s3_storage, "k", b"four", metadata=b"c" * 5000)
    await s3_storage.delete(BUCKET, "k")
    assert sidecars() == []


async def test_s3_a_rejected_commit_leaves_no_sidecar(s3_storage: S3Storage, s3_admin: Any, s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    original = s3_storage.client.put_object

    async def rejected_for_objects(**kwargs: Any) -> Any:
        if kwargs["Key"].startswith(f"objects/{BUCKET}/"):
            kwargs["IfMatch"] = '"0000"'  # a precondition the server refuses
        return await original(**kwargs)

    s3_storage.client.put_object = rejected_for_objects
    try:
        writer = await s3_storage.open_write(BUCKET, "k", b"m" * 5000)
        await writer.write(b"data")
        with pytest.raises(StorageError):
            await writer.commit()
    finally:
        s3_storage.client.put_object = original
    assert upstream_keys(s3_admin, s3_bucket) == ["objects/.kmsgate/buckets/contract-bucket"]


async def test_s3_a_commit_of_unknown_outcome_keeps_its_sidecar(s3_storage: S3Storage) -> None:
    await s3_storage.create_bucket(BUCKET)
    original = s3_storage.client.put_object

    async def lost_answer(**kwargs: Any) -> Any:
        response = await original(**kwargs)
        if kwargs["Key"].startswith(f"objects/{BUCKET}/"):
            raise aiohttp.ServerDisconnectedError()  # stored, but the client never hears so
        return response

    s3_storage.client.put_object = lost_answer
    try:
        writer = await s3_storage.open_write(BUCKET, "k", b"m" * 5000)
        await writer.write(b"data")
        with pytest.raises(StorageError):
            await writer.commit()
    finally:
        s3_storage.client.put_object = original
    assert (await s3_storage.head(BUCKET, "k")).metadata == b"m" * 5000
    assert await get(s3_storage, "k") == b"data"


async def test_s3_an_object_whose_sidecar_is_gone_is_a_storage_error(s3_storage: S3Storage, s3_admin: Any,
                                                                     s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    await put(s3_storage, "k", b"data", metadata=b"m" * 5000)
    for key in upstream_keys(s3_admin, s3_bucket):
        if key.startswith("objects/.kmsgate/meta/"):
            s3_admin.delete_object(Bucket=s3_bucket, Key=key)
    for attempt in (s3_storage.head(BUCKET, "k"), s3_storage.open_read(BUCKET, "k")):
        with pytest.raises(StorageError) as info:
            await attempt
        assert not isinstance(info.value, ObjectNotFound)


async def test_s3_large_object_goes_up_as_multipart(
    s3_storage: S3Storage, s3_admin: Any, s3_bucket: str
) -> None:
    await s3_storage.create_bucket(BUCKET)
    data = os.urandom(2 * MIN_PART_BYTES + 12345)
    writer = await s3_storage.open_write(BUCKET, "big", b"m" * 3000)
    calls: list[int] = []
    original = s3_storage.client.upload_part

    async def counting_upload_part(**kwargs: Any) -> Any:
        calls.append(kwargs["ContentLength"])
        return await original(**kwargs)

    s3_storage.client.upload_part = counting_upload_part
    try:
        for i in range(0, len(data), 1 << 20):
            await writer.write(data[i : i + (1 << 20)])
        await writer.commit()
        # The rest is spooled on disk: memory stays at the spool's share and a chunk.
        assert writer.peak_held_bytes <= MEMORY_BYTES + (1 << 20)
    finally:
        s3_storage.client.upload_part = original
    assert len(calls) == 3 and sum(calls) == len(data)
    body = s3_admin.get_object(Bucket=s3_bucket, Key=f"objects/{BUCKET}/big")["Body"].read()
    assert body == data
    info = await s3_storage.head(BUCKET, "big")
    assert (info.metadata, info.part_sizes) == (b"m" * 3000, ())  # written whole, as far as our API goes


async def test_s3_aborted_multipart_leaves_nothing(
    s3_storage: S3Storage, s3_admin: Any, s3_bucket: str
) -> None:
    await s3_storage.create_bucket(BUCKET)
    writer = await s3_storage.open_write(BUCKET, "half", b"m" * 3000)
    await writer.write(os.urandom(MIN_PART_BYTES + 1))
    assert s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    await writer.abort()
    assert not s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    with pytest.raises(ObjectNotFound):
        await s3_storage.head(BUCKET, "half")
    assert upstream_keys(s3_admin, s3_bucket) == ["objects/.kmsgate/buckets/contract-bucket"]


async def test_s3_failed_commit_aborts_the_upload(
    s3_storage: S3Storage, s3_admin: Any, s3_bucket: str
) -> None:
    await s3_storage.create_bucket(BUCKET)
    writer = await s3_storage.open_write(BUCKET, "fails")
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
        await s3_storage.head(BUCKET, "fails")


async def test_s3_unreachable_endpoint_is_storage_error(aws_env: None) -> None:
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    storage = await S3Storage.open(
        bucket="b", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1", timeout_seconds=1
    )
    try:
        with pytest.raises(StorageError) as info:
            await storage.check()
        assert not isinstance(info.value, ObjectNotFound)
        with pytest.raises(StorageError):
            await storage.head(BUCKET, "k")
    finally:
        await storage.close()


async def test_s3_missing_bucket_fails_check(s3_endpoint: str, aws_env: None) -> None:
    storage = await S3Storage.open(bucket="kmsgate-absent", endpoint_url=s3_endpoint, region="us-east-1")
    try:
        with pytest.raises(StorageError):
            await storage.check()
    finally:
        await storage.close()


async def test_s3_multipart_maps_onto_one_upstream_upload_and_cleans_up(s3_storage: S3Storage, s3_admin: Any,
                                                                        s3_bucket: str) -> None:
    await s3_storage.create_bucket(BUCKET)
    upload_id = await s3_storage.create_upload(BUCKET, "k", b"m" * 5000)
    [upstream] = s3_admin.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]
    assert (upstream["UploadId"], upstream["Key"]) == (upload_id, f"objects/{BUCKET}/k")
    await write_part(s3_storage, "k", upload_id, 1, os.urandom(MIN_PART_BYTES))
    await write_part(s3_storage, "k", upload_id, 2, b"tail")
    await s3_storage.complete_upload(BUCKET, "k", upload_id, [1, 2])
    keys = upstream_keys(s3_admin, s3_bucket)
    assert not [k for k in keys if k.startswith("objects/.kmsgate/uploads/")]
    assert len([k for k in keys if k.startswith("objects/.kmsgate/meta/")]) == 1  # metadata and part sizes
    assert (await s3_storage.head(BUCKET, "k")).part_sizes == (MIN_PART_BYTES, 4)

    aborted = await s3_storage.create_upload(BUCKET, "gone", b"m" * 5000)
    await write_part(s3_storage, "gone", aborted, 1, b"part")
    await s3_storage.abort_upload(BUCKET, "gone", aborted)
    assert not s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    assert upstream_keys(s3_admin, s3_bucket) == keys


async def test_s3_a_small_part_but_the_last_is_entity_too_small(s3_storage: S3Storage) -> None:
    await s3_storage.create_bucket(BUCKET)
    upload_id = await s3_storage.create_upload(BUCKET, "k")
    await write_part(s3_storage, "k", upload_id, 1, b"small")
    await write_part(s3_storage, "k", upload_id, 2, b"last")
    with pytest.raises(EntityTooSmall):
        await s3_storage.complete_upload(BUCKET, "k", upload_id, [1, 2])
    with pytest.raises(ObjectNotFound):
        await s3_storage.head(BUCKET, "k")
    await s3_storage.abort_upload(BUCKET, "k", upload_id)


async def test_s3_a_part_over_the_memory_cap_is_refused(s3_storage: S3Storage) -> None:
    await s3_storage.create_bucket(BUCKET)
    upload_id = await s3_storage.create_upload(BUCKET, "k")
    writer = await s3_storage.open_part_write(BUCKET, "k", upload_id, 1)
    cap = s3_storage.uploads.max_part_bytes
    await writer.write(b"x" * cap)
    with pytest.raises(InvalidArgument):
        await writer.write(b"x")


async def test_file_catalog_made_before_part_metadata_opens_and_keeps_its_uploads(tmp_path: Path) -> None:
    root = tmp_path / "store"
    storage = await FileStorage.open(root)
    await storage.create_bucket(BUCKET)
    upload_id = await storage.create_upload(BUCKET, "k", b"meta")
    await write_part(storage, "k", upload_id, 1, b"old part")
    await storage.close()
    db = sqlite3.connect(root / "catalog.sqlite3")
    db.execute("ALTER TABLE parts DROP COLUMN metadata")  # the catalog as it was before
    db.commit()
    db.close()
    storage = await FileStorage.open(root)
    try:
        [part] = await storage.list_parts(BUCKET, "k", upload_id)
        assert (part.size, part.metadata) == (8, b"")
        writer = await storage.open_part_write(BUCKET, "k", upload_id, 2)
        await writer.write(b"new part")
        await writer.commit(b"part meta")
        assert [p.metadata for p in await storage.list_parts(BUCKET, "k", upload_id)] == [b"", b"part meta"]
    finally:
        await storage.close()


async def test_file_catalog_made_before_inline_objects_opens_and_keeps_its_objects(tmp_path: Path) -> None:
    root = tmp_path / "store"
    storage = await FileStorage.open(root, inline_max_bytes=0)  # every object in a data file, as before
    await storage.create_bucket(BUCKET)
    await put(storage, "old", b"old object")
    await storage.close()
    db = sqlite3.connect(root / "catalog.sqlite3")
    db.execute("ALTER TABLE objects DROP COLUMN data")  # the catalog as it was before
    db.commit()
    db.close()
    storage = await FileStorage.open(root)
    try:
        assert await get(storage, "old") == b"old object" and len(storage.object_files(BUCKET, "old")) == 1
        await put(storage, "new", b"new object")
        assert await get(storage, "new") == b"new object" and storage.object_files(BUCKET, "new") == []
        assert [e.key for e in (await storage.list_objects(BUCKET)).objects] == ["new", "old"]
    finally:
        await storage.close()


async def test_file_a_small_object_is_kept_in_its_catalog_row_with_no_data_file(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    small, limit = os.urandom(1024), os.urandom(INLINE_MAX_BYTES)
    await put(file_storage, "small", small, metadata=b"meta")
    await put(file_storage, "limit", limit)
    assert data_files(file_storage) == set() and os.listdir(file_storage.tmp_dir) == []
    assert file_storage.object_files(BUCKET, "small") == []
    assert await get(file_storage, "small") == small and await get(file_storage, "limit") == limit
    head = await file_storage.head(BUCKET, "small")
    assert (head.size, head.metadata) == (1024, b"meta")
    await put(file_storage, "over", os.urandom(INLINE_MAX_BYTES + 1))
    assert len(file_storage.object_files(BUCKET, "over")) == 1


async def test_file_ranges_of_an_inline_object_read_its_bytes(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    data = os.urandom(5000)
    await put(file_storage, "k", data)
    assert file_storage.object_files(BUCKET, "k") == []
    for start, end in ((0, 1), (10, 4000), (4999, 5000), (4000, 10_000), (None, None), (5000, 6000)):
        assert await get(file_storage, "k", start, end) == data[start:end]


async def test_file_an_object_overwritten_inline_and_back_keeps_no_stale_file(file_storage: FileStorage) -> None:
    await file_storage.create_bucket(BUCKET)
    large, small = file_sized(b"large"), b"small" * 10
    await put(file_storage, "k", large)
    assert len(data_files(file_storage)) == 1
    await put(file_storage, "k", small)  # file -> inline: the data file goes
    assert data_files(file_storage) == set() and await get(file_storage, "k") == small
    await put(file_storage, "k", large)  # inline -> file
    assert data_files(file_storage) == set(file_storage.object_files(BUCKET, "k")) != set()
    assert await get(file_storage, "k") == large
    await put(file_storage, "k", small)
    await file_storage.delete(BUCKET, "k")
    with pytest.raises(ObjectNotFound):
        await file_storage.head(BUCKET, "k")
    assert data_files(file_storage) == set() and (await file_storage.list_objects(BUCKET)).objects == ()


_CRASHING_INLINE_WRITER = """
import asyncio, os, sys, time
from kmsgate.gateway.storage import catalog, file

point = sys.argv[2]

def crash_here(*args, **kwargs):
    print("ready", flush=True)
    time.sleep(3600)  # killed here

if point == "before-catalog-commit":
    catalog.Catalog.commit_group = crash_here
elif point == "after-catalog-commit":
    file.unlink_quietly = crash_here

async def main():
    storage = await file.FileStorage.open(sys.argv[1])
    writer = await storage.open_write("contract-bucket", "k", b"new metadata")
    await writer.write(b"N" * 1024)
    await writer.commit()
    crash_here()  # acknowledged: killed before anything else happens

asyncio.run(main())
"""


@pytest.mark.parametrize("point, survivor", [("before-catalog-commit", "old"), ("after-catalog-commit", "new"),
                                             ("acknowledged", "new")])
@pytest.mark.parametrize("old_size", [100, 100_000], ids=["old-inline", "old-in-a-file"])
async def test_file_an_inline_write_killed_at_any_point_leaves_one_whole_version(
        tmp_path: Path, point: str, survivor: str, old_size: int) -> None:
    root = tmp_path / "store"
    storage = await FileStorage.open(root)
    await storage.create_bucket(BUCKET)
    old = os.urandom(old_size)
    await put(storage, "k", old, metadata=b"old metadata")
    await storage.close()

    proc = subprocess.Popen([sys.executable, "-c", _CRASHING_INLINE_WRITER, str(root), point],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line == b"ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    storage = await FileStorage.open(root)
    try:
        want = (old, b"old metadata") if survivor == "old" else (b"N" * 1024, b"new metadata")
        assert (await get(storage, "k"), (await storage.head(BUCKET, "k")).metadata) == want
        assert list(storage.tmp_dir.iterdir()) == []
        if survivor == "new":
            assert storage.object_files(BUCKET, "k") == []
    finally:
        await storage.close()


async def test_file_a_write_declared_small_checks_its_bucket_once_at_commit(file_storage: FileStorage) -> None:
    # No catalog read (and thread hop) at open: the commit's check is the one that counts.
    writer = await file_storage.open_write("absent", "k", length=100)
    await writer.write(b"x" * 100)
    with pytest.raises(NoSuchBucket):
        await writer.commit()
    assert data_files(file_storage) == set() and os.listdir(file_storage.tmp_dir) == []
    with pytest.raises(NoSuchBucket):  # declared past the inline size, or not declared: refused at once
        await file_storage.open_write("absent", "k", length=INLINE_MAX_BYTES + 1)
    with pytest.raises(NoSuchBucket):
        await file_storage.open_write("absent", "k")
    await file_storage.create_bucket(BUCKET)
    writer = await file_storage.open_write(BUCKET, "k", length=100)
    await writer.write(b"x" * 100)
    await writer.commit()
    assert await get(file_storage, "k") == b"x" * 100
