"""The storage contract for multipart uploads, run against every backend.

Parts but the last are ``MIN_PART_BYTES`` long, as S3 (and so the s3 backend's upstream) requires.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from storage_contract import BUCKET, get, put

from kmsgate.gateway.storage.base import (
    MAX_METADATA_BYTES,
    MAX_PART_METADATA_BYTES,
    MIN_PART_BYTES,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
    ObjectNotFound,
    PartInfo,
    Storage,
)

pytestmark = pytest.mark.usefixtures("bucket")
P = MIN_PART_BYTES


async def upload_part(storage: Storage, key: str, upload_id: str, number: int, data: bytes,
                      metadata: bytes = b"") -> PartInfo:
    writer = await storage.open_part_write(BUCKET, key, upload_id, number)
    for i in range(0, len(data), 1 << 20):
        await writer.write(data[i : i + (1 << 20)])
    part = await writer.commit(metadata)
    assert (part.part_number, part.size, writer.bytes_written) == (number, len(data), len(data))
    return part


async def test_parts_written_out_of_order_complete_into_one_object(storage: Storage) -> None:
    parts = {1: os.urandom(P), 2: os.urandom(P), 3: os.urandom(12345)}
    upload_id = await storage.create_upload(BUCKET, "mp/obj", b"the metadata")
    written = {n: await upload_part(storage, "mp/obj", upload_id, n, parts[n]) for n in (3, 1, 2)}
    listed = await storage.list_parts(BUCKET, "mp/obj", upload_id)
    assert [(p.part_number, p.size, p.etag) for p in listed] == [
        (n, len(parts[n]), written[n].etag) for n in (1, 2, 3)]
    assert [(u.key, u.upload_id) for u in await storage.list_uploads(BUCKET)] == [("mp/obj", upload_id)]
    with pytest.raises(ObjectNotFound):
        await storage.head(BUCKET, "mp/obj")  # nothing is visible before completion

    info = await storage.complete_upload(BUCKET, "mp/obj", upload_id, [1, 2, 3])
    whole = parts[1] + parts[2] + parts[3]
    assert (info.size, info.part_sizes, info.metadata) == (len(whole), (P, P, 12345), b"the metadata")
    head = await storage.head(BUCKET, "mp/obj")
    assert (head.size, head.part_sizes, head.metadata, head.etag) == (len(whole), (P, P, 12345),
                                                                      b"the metadata", info.etag)
    assert await get(storage, "mp/obj") == whole
    for lo, hi in [(0, 10), (P - 10, P + 10), (P - 1, 2 * P + 1), (2 * P, len(whole)), (2 * P - 3, None),
                   (5, 2 * P + 7000)]:
        assert await get(storage, "mp/obj", lo, hi) == whole[lo:hi], (lo, hi)
    assert await storage.list_uploads(BUCKET) == []
    with pytest.raises(NoSuchUpload):
        await storage.list_parts(BUCKET, "mp/obj", upload_id)
    with pytest.raises(NoSuchUpload):
        await storage.complete_upload(BUCKET, "mp/obj", upload_id, [1, 2, 3])
    assert [o.key for o in (await storage.list_objects(BUCKET)).objects] == ["mp/obj"]


async def test_a_part_written_again_replaces_the_earlier_one(storage: Storage) -> None:
    upload_id = await storage.create_upload(BUCKET, "k")
    first = await upload_part(storage, "k", upload_id, 1, b"first version of part one")
    second = await upload_part(storage, "k", upload_id, 1, b"second")
    [listed] = await storage.list_parts(BUCKET, "k", upload_id)
    assert (listed.size, listed.etag) == (6, second.etag) and second.etag != first.etag
    await storage.complete_upload(BUCKET, "k", upload_id, [1])
    assert await get(storage, "k") == b"second"


async def test_completing_with_a_subset_keeps_only_the_named_parts(storage: Storage) -> None:
    one, two, three = os.urandom(P), os.urandom(P), b"tail"
    upload_id = await storage.create_upload(BUCKET, "k")
    for n, data in ((1, one), (2, two), (3, three)):
        await upload_part(storage, "k", upload_id, n, data)
    info = await storage.complete_upload(BUCKET, "k", upload_id, [1, 3])
    assert info.part_sizes == (P, 4)
    assert await get(storage, "k") == one + three


async def test_bad_completions_are_refused_and_leave_the_upload_usable(storage: Storage) -> None:
    upload_id = await storage.create_upload(BUCKET, "k")
    await upload_part(storage, "k", upload_id, 1, b"one")
    await upload_part(storage, "k", upload_id, 2, b"two")
    with pytest.raises(InvalidPartOrder):
        await storage.complete_upload(BUCKET, "k", upload_id, [2, 1])
    for numbers in ([1, 1], [1, 4], [7], []):
        with pytest.raises(InvalidPart):
            await storage.complete_upload(BUCKET, "k", upload_id, numbers)
    with pytest.raises(ObjectNotFound):
        await storage.head(BUCKET, "k")
    await storage.complete_upload(BUCKET, "k", upload_id, [2])
    assert await get(storage, "k") == b"two"


async def test_part_numbers_outside_1_to_10000_are_refused(storage: Storage) -> None:
    upload_id = await storage.create_upload(BUCKET, "k")
    for number in (0, -1, 10_001):
        with pytest.raises(InvalidArgument):
            await storage.open_part_write(BUCKET, "k", upload_id, number)
    await upload_part(storage, "k", upload_id, 10_000, b"last possible")


async def test_completion_replaces_the_previous_object_only_when_it_returns(storage: Storage) -> None:
    await put(storage, "k", b"old", metadata=b"old meta")
    upload_id = await storage.create_upload(BUCKET, "k", b"new meta")
    await upload_part(storage, "k", upload_id, 1, b"new")
    assert (await get(storage, "k"), (await storage.head(BUCKET, "k")).metadata) == (b"old", b"old meta")
    await storage.complete_upload(BUCKET, "k", upload_id, [1])
    assert (await get(storage, "k"), (await storage.head(BUCKET, "k")).metadata) == (b"new", b"new meta")
    await put(storage, "k", b"whole again")  # and a plain write replaces a multipart object
    info = await storage.head(BUCKET, "k")
    assert (await get(storage, "k"), info.part_sizes, info.metadata) == (b"whole again", (), b"")


async def test_an_aborted_upload_leaves_nothing(storage: Storage) -> None:
    upload_id = await storage.create_upload(BUCKET, "k", b"meta")
    await upload_part(storage, "k", upload_id, 1, b"one")
    await storage.abort_upload(BUCKET, "k", upload_id)
    assert await storage.list_uploads(BUCKET) == []
    with pytest.raises(NoSuchUpload):
        await storage.complete_upload(BUCKET, "k", upload_id, [1])
    with pytest.raises(NoSuchUpload):
        await storage.open_part_write(BUCKET, "k", upload_id, 2)
    with pytest.raises(NoSuchUpload):
        await storage.abort_upload(BUCKET, "k", upload_id)
    with pytest.raises(ObjectNotFound):
        await storage.head(BUCKET, "k")


async def test_an_unknown_upload_id_is_no_such_upload(storage: Storage) -> None:
    with pytest.raises(NoSuchUpload):
        await storage.open_part_write(BUCKET, "k", "no-such-upload", 1)
    with pytest.raises(NoSuchUpload):
        await storage.list_parts(BUCKET, "k", "no-such-upload")
    with pytest.raises(NoSuchUpload):
        await storage.complete_upload(BUCKET, "k", "no-such-upload", [1])


async def test_uploads_are_listed_by_key_prefix(storage: Storage) -> None:
    ids = {key: await storage.create_upload(BUCKET, key) for key in ("b/1", "a/2", "a/1")}
    again = await storage.create_upload(BUCKET, "a/1")
    listed = await storage.list_uploads(BUCKET, "a/")
    assert [u.key for u in listed] == ["a/1", "a/1", "a/2"]
    assert {u.upload_id for u in listed} == {ids["a/1"], again, ids["a/2"]}
    assert [u.key for u in await storage.list_uploads(BUCKET)] == ["a/1", "a/1", "a/2", "b/1"]


async def test_expiry_aborts_only_uploads_older_than_the_limit(storage: Storage) -> None:
    created = time.time()
    old = await storage.create_upload(BUCKET, "old")
    await upload_part(storage, "old", old, 1, b"abandoned")
    while time.time() < created + 3:  # the old upload ages past the limit below
        await asyncio.sleep(0.1)
    young = await storage.create_upload(BUCKET, "young")
    assert await storage.expire_uploads(3600) == 0
    assert await storage.expire_uploads(2) == 1  # timestamps may be whole seconds: 2 s sits between
    assert [u.upload_id for u in await storage.list_uploads(BUCKET)] == [young]
    with pytest.raises(NoSuchUpload):
        await storage.list_parts(BUCKET, "old", old)


async def test_completion_stores_the_metadata_it_is_given_instead_of_the_uploads(storage: Storage) -> None:
    upload_id = await storage.create_upload(BUCKET, "k", b"at create")
    assert await storage.upload_metadata(BUCKET, "k", upload_id) == b"at create"
    await upload_part(storage, "k", upload_id, 1, b"one")
    info = await storage.complete_upload(BUCKET, "k", upload_id, [1], metadata=b"at completion")
    assert info.metadata == b"at completion"
    assert (await storage.head(BUCKET, "k")).metadata == b"at completion"
    with pytest.raises(NoSuchUpload):
        await storage.upload_metadata(BUCKET, "k", upload_id)


async def test_a_large_completion_metadata_blob_is_kept_whole(storage: Storage) -> None:
    blob = os.urandom(MAX_METADATA_BYTES)
    upload_id = await storage.create_upload(BUCKET, "k")
    await upload_part(storage, "k", upload_id, 1, b"one")
    await storage.complete_upload(BUCKET, "k", upload_id, [1], metadata=blob)
    assert (await storage.head(BUCKET, "k")).metadata == blob
    upload_id = await storage.create_upload(BUCKET, "k")
    with pytest.raises(InvalidArgument):
        await storage.complete_upload(BUCKET, "k", upload_id, [1], metadata=blob + b"x")


async def test_each_part_keeps_its_own_metadata_until_the_upload_ends(storage: Storage) -> None:
    upload_id = await storage.create_upload(BUCKET, "k")
    await upload_part(storage, "k", upload_id, 1, b"one", b"first one")
    await upload_part(storage, "k", upload_id, 2, b"two", b"two's")
    await upload_part(storage, "k", upload_id, 3, b"three")
    await upload_part(storage, "k", upload_id, 1, b"one again", b"second one")
    listed = await storage.list_parts(BUCKET, "k", upload_id)
    assert [(p.part_number, p.metadata) for p in listed] == [(1, b"second one"), (2, b"two's"), (3, b"")]
    await upload_part(storage, "k", upload_id, 2, b"two again")  # a part without metadata has none
    assert [p.metadata for p in await storage.list_parts(BUCKET, "k", upload_id)] == [b"second one", b"", b""]
    writer = await storage.open_part_write(BUCKET, "k", upload_id, 4)
    await writer.write(b"four")
    with pytest.raises(InvalidArgument):
        await writer.commit(b"x" * (MAX_PART_METADATA_BYTES + 1))
    assert [p.part_number for p in await storage.list_parts(BUCKET, "k", upload_id)] == [1, 2, 3]
    await storage.complete_upload(BUCKET, "k", upload_id, [1])  # parts this small may only be last
    assert await get(storage, "k") == b"one again"
