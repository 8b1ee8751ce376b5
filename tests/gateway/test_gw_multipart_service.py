"""Multipart uploads, multipart reads and copies, driven through the services over real storage.

Each test runs against the file backend and the s3 backend (moto's server); the KMS is the
real one, in process, acting as each caller. Frames are 64 KiB so 5 MiB parts hold many.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy
from storage_contract import BUCKET

from kmsgate.auth.identities import AccessKey, RootCredentials, build_directory, parse_identities
from kmsgate.core.principal import Caller, account_root
from kmsgate.envelope.header import DecryptPolicy, parse_header
from kmsgate.envelope.kms_client import InProcessKmsClient, RemoteKmsClient, RemoteKmsSettings
from kmsgate.gateway.errors import GatewayError
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.multipart_reader import MultipartReader
from kmsgate.gateway.multipart_service import MultipartService
from kmsgate.gateway.object_access import ObjectAccess
from kmsgate.gateway.object_service import Describe, ObjectInfo, ObjectRead
from kmsgate.gateway.service import DEFAULT_KEY_ALIAS, Gateway, GatewaySettings
from kmsgate.gateway.storage.base import MIN_PART_BYTES, NoSuchUpload, Storage
from kmsgate.gateway.storage.file import FileStorage
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service

ACCOUNT_ID = "111122223333"
ROOT = account_root(ACCOUNT_ID)
ALICE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/mp-alice"
ALICE = Caller(arn=ALICE_ARN, account_id=ACCOUNT_ID)
P = MIN_PART_BYTES
FRAME = 64 * 1024
pytestmark = pytest.mark.usefixtures("bucket")


@dataclass
class Env:
    gateway: Gateway
    service: KmsService
    multipart: MultipartService
    key_arn: str


async def new_key(service: KmsService, alias: str | None = None) -> str:
    arn = str((await service.create_key(caller=ROOT))["key_metadata"]["arn"])
    if alias:
        await service.create_alias(caller=ROOT, alias_name=alias, target_key_id=arn)
    return arn


ALICE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{BUCKET}/alice/*"}]})


@pytest.fixture
async def env(storage: Storage, tmp_path: Path) -> AsyncIterator[Env]:
    service = open_service(tmp_path / "kms", RootKey(os.urandom(32)), region="us-east-1", account_id=ACCOUNT_ID)
    key_arn = await new_key(service, DEFAULT_KEY_ALIAS)
    toml = f'[[principal]]\narn = "{ALICE_ARN}"\npolicy = {json.dumps(ALICE_POLICY)}\n'
    directory = build_directory(ACCOUNT_ID, RootCredentials(AccessKey("AKIAMPROOT0000000001", "r" * 40), "env"),
                                parse_identities(toml))
    gateway = Gateway(storage=storage, kms=InProcessKmsClient(service, ROOT),
                      kms_for=lambda caller: InProcessKmsClient(service, caller), object_access=ObjectAccess(directory),
                      metrics=GatewayMetrics(), authenticator=object(),  # type: ignore[arg-type]
                      settings=GatewaySettings(frame_length=FRAME))
    try:
        yield Env(gateway, service, MultipartService(gateway), key_arn)
    finally:
        await gateway.caller_materials.aclose()
        gateway.pool.close()
        service.close()


async def blocks(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def plaintext(read: ObjectRead) -> bytes:
    try:
        return read.body if read.body is not None else b"".join([bytes(c) async for c in read.chunks()])
    finally:
        await read.aclose()


async def upload(env: Env, key: str, parts: dict[int, bytes], *, metadata: bytes = b"",
                 context: dict[str, str] | None = None) -> tuple[str, dict[int, str]]:
    upload_id = await env.multipart.create(ROOT, BUCKET, key, key_id=None, encryption_context=context or {},
                                           metadata=metadata)
    etags = {}
    for n, data in parts.items():
        etags[n] = (await env.multipart.upload_part(ROOT, BUCKET, key, upload_id, n, blocks(data), len(data))).etag
    return upload_id, etags


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


async def test_three_parts_round_trip_whole_and_in_every_range(env: Env) -> None:
    one, two, three = os.urandom(P), os.urandom(P), os.urandom(100_000)
    upload_id, etags = await upload(env, "mp/obj", {3: three, 1: b"replaced later", 2: two},
                                    metadata=b"the object's metadata", context={"tenant": "acme"})
    etags[1] = (await env.multipart.upload_part(ROOT, BUCKET, "mp/obj", upload_id, 1, blocks(one), P)).etag
    listed = await env.multipart.list_parts(ROOT, BUCKET, "mp/obj", upload_id)
    assert [(p.part_number, p.etag, p.size) for p in listed] == [
        (1, f'"{md5(one).hex()}"', P), (2, f'"{md5(two).hex()}"', P), (3, f'"{md5(three).hex()}"', 100_000)]
    assert [u.upload_id for u in await env.multipart.list_uploads(ROOT, BUCKET)] == [upload_id]

    done = await env.multipart.complete(ROOT, BUCKET, "mp/obj", upload_id, [(n, etags[n]) for n in (1, 2, 3)])
    whole = one + two + three
    expected_etag = f'"{hashlib.md5(md5(one) + md5(two) + md5(three)).hexdigest()}-3"'
    assert (done.etag, done.size, done.kms_key_arn) == (expected_etag, len(whole), env.key_arn)
    assert await env.multipart.list_uploads(ROOT, BUCKET) == []

    objects = env.gateway.objects
    info = await objects.head(ROOT, BUCKET, "mp/obj")
    assert (info.size, info.etag) == (len(whole), expected_etag)
    assert await plaintext(await objects.read(ROOT, BUCKET, "mp/obj")) == whole
    assert await plaintext(await objects.read(ROOT, BUCKET, "mp/obj", expected_context={"tenant": "acme"})) == whole
    with pytest.raises(GatewayError) as mismatch:
        await objects.read(ROOT, BUCKET, "mp/obj", expected_context={"tenant": "other"})
    assert mismatch.value.code == "EncryptionContextMismatch"
    ranges = {
        "inside the first part": (10, 70_000),
        "inside the last part": (2 * P + 5, 2 * P + 99_000),
        "across the first boundary": (P - 1000, P + 1000),
        "across both boundaries": (P - 1, 2 * P + 1),
        "one byte at a boundary": (P, P),
        "the last frame of a part": (P - FRAME + 3, P - 1),
    }
    for name, (first, last) in ranges.items():
        read = await objects.read(ROOT, BUCKET, "mp/obj", byte_range=f"bytes={first}-{last}")
        assert read.served == (first, last + 1), name
        assert await plaintext(read) == whole[first : last + 1], name
    for spec, want in ((f"bytes=-{P + 7}", whole[-(P + 7):]), (f"bytes={2 * P - 3}-", whole[2 * P - 3 :])):
        assert await plaintext(await objects.read(ROOT, BUCKET, "mp/obj", byte_range=spec)) == want, spec
    with pytest.raises(GatewayError) as unsatisfiable:
        await objects.read(ROOT, BUCKET, "mp/obj", byte_range=f"bytes={len(whole)}-")
    assert unsatisfiable.value.status == 416
    stored = await env.gateway.storage.head(BUCKET, "mp/obj")
    opened = await MultipartReader(env.gateway).open(ROOT, stored)
    assert (opened.metadata, dict(opened.encryption_context)) == (b"the object's metadata", {"tenant": "acme"})


async def test_completing_with_a_subset_keeps_only_the_named_parts(env: Env) -> None:
    one, two, three = os.urandom(P), os.urandom(P), b"tail"
    upload_id, etags = await upload(env, "k", {1: one, 2: two, 3: three})
    done = await env.multipart.complete(ROOT, BUCKET, "k", upload_id, [(1, etags[1]), (3, etags[3])])
    assert done.etag == f'"{hashlib.md5(md5(one) + md5(three)).hexdigest()}-2"'
    assert await plaintext(await env.gateway.objects.read(ROOT, BUCKET, "k")) == one + three
    assert await plaintext(await env.gateway.objects.read(ROOT, BUCKET, "k", byte_range=f"bytes={P - 2}-")) \
        == one[-2:] + three


async def test_bad_completions_are_refused_with_s3s_codes_and_leave_the_upload_usable(env: Env) -> None:
    one, two = os.urandom(P), b"two"
    upload_id, etags = await upload(env, "k", {1: b"small", 2: two})
    attempts = {
        "InvalidPart": [(1, etags[1]), (2, f'"{md5(b"not two").hex()}"')],
        "InvalidPartOrder": [(2, etags[2]), (1, etags[1])],
        "EntityTooSmall": [(1, etags[1]), (2, etags[2])],
    }
    for code, parts in attempts.items():
        with pytest.raises(GatewayError) as refused:
            await env.multipart.complete(ROOT, BUCKET, "k", upload_id, parts)
        assert (refused.value.status, refused.value.code) == (400, code)
    for parts in ([(1, etags[1]), (4, etags[2])], [(1, "not-an-etag")]):
        with pytest.raises(GatewayError) as missing:
            await env.multipart.complete(ROOT, BUCKET, "k", upload_id, parts)
        assert missing.value.code == "InvalidPart"
    etags[1] = (await env.multipart.upload_part(ROOT, BUCKET, "k", upload_id, 1, blocks(one), P)).etag
    await env.multipart.complete(ROOT, BUCKET, "k", upload_id, [(1, etags[1]), (2, etags[2])])
    assert await plaintext(await env.gateway.objects.read(ROOT, BUCKET, "k")) == one + two


async def test_an_aborted_upload_leaves_nothing(env: Env) -> None:
    upload_id, _ = await upload(env, "k", {1: b"one", 2: b"two"})
    await env.multipart.abort(ROOT, BUCKET, "k", upload_id)
    assert await env.multipart.list_uploads(ROOT, BUCKET) == []
    assert (await env.gateway.storage.list_objects(BUCKET)).objects == ()
    with pytest.raises(NoSuchUpload):
        await env.multipart.upload_part(ROOT, BUCKET, "k", upload_id, 3, blocks(b"x"), 1)
    with pytest.raises(NoSuchUpload):
        await env.multipart.list_parts(ROOT, BUCKET, "k", upload_id)
    storage = env.gateway.storage
    if isinstance(storage, FileStorage):
        assert not [p for p in storage.data_dir.rglob("*") if p.is_file()]


async def test_expire_aborts_uploads_older_than_the_limit(env: Env) -> None:
    await upload(env, "k", {1: b"abandoned"})
    assert await env.multipart.expire(3600) == 0
    assert await env.multipart.expire(-1) == 1
    assert await env.multipart.list_uploads(ROOT, BUCKET) == []


async def test_a_one_part_object_reads_like_any_other(env: Env) -> None:
    upload_id, etags = await upload(env, "k", {7: b"only part"})
    await env.multipart.complete(ROOT, BUCKET, "k", upload_id, [(7, etags[7])])
    assert await plaintext(await env.gateway.objects.read(ROOT, BUCKET, "k")) == b"only part"
    assert await plaintext(await env.gateway.objects.read(ROOT, BUCKET, "k", byte_range="bytes=5-")) == b"part"


async def test_copy_reencrypts_under_another_key_context_and_bucket(env: Env) -> None:
    other_key = await new_key(env.service)
    await env.gateway.storage.create_bucket("copies")
    data = os.urandom(3 * FRAME + 17)
    await env.gateway.objects.put(ROOT, BUCKET, "src", blocks(data), key_id=None, encryption_context={"a": "1"},
                                  length=len(data))
    copied = await env.multipart.copy(ROOT, BUCKET, "src", "copies", "dst", key_id=other_key,
                                      encryption_context={"b": "2"},
                                      describe=lambda source: lambda md5: b"copy meta")
    assert (copied.size, copied.kms_key_arn) == (len(data), other_key)
    assert await plaintext(await env.gateway.objects.read(ROOT, "copies", "dst", expected_context={"b": "2"})) == data
    reader = await env.gateway.storage.open_read("copies", "dst")
    try:
        header, _ = parse_header(b"".join([c async for c in reader]), DecryptPolicy())
    finally:
        await reader.aclose()
    assert header is not None and header.encrypted_data_keys[0].provider_info == other_key.encode()
    assert header.encryption_context["aws:s3:arn"] == "arn:aws:s3:::copies/dst"

    parts = {1: os.urandom(P), 2: b"end"}
    upload_id, etags = await upload(env, "multi", parts)
    await env.multipart.complete(ROOT, BUCKET, "multi", upload_id, sorted(etags.items()))
    await env.multipart.copy(ROOT, BUCKET, "multi", BUCKET, "flat", key_id=None, encryption_context={})
    assert await plaintext(await env.gateway.objects.read(ROOT, BUCKET, "flat")) == parts[1] + parts[2]


async def test_upload_part_copy_takes_a_range_of_a_source_object(env: Env) -> None:
    data = os.urandom(P + 5000)
    await env.gateway.objects.put(ROOT, BUCKET, "src", blocks(data), key_id=None, encryption_context={},
                                  length=len(data))
    upload_id = await env.multipart.create(ROOT, BUCKET, "dst", key_id=None, encryption_context={}, metadata=b"")
    first = await env.multipart.upload_part_copy(ROOT, BUCKET, "dst", upload_id, 1, src_bucket=BUCKET,
                                                 src_key="src", byte_range=f"bytes=0-{P - 1}")
    second = await env.multipart.upload_part_copy(ROOT, BUCKET, "dst", upload_id, 2, src_bucket=BUCKET,
                                                  src_key="src", byte_range=f"bytes={P}-")
    assert (first.etag, second.etag) == (f'"{md5(data[:P]).hex()}"', f'"{md5(data[P:]).hex()}"')
    await env.multipart.complete(ROOT, BUCKET, "dst", upload_id, [(1, first.etag), (2, second.etag)])
    assert await plaintext(await env.gateway.objects.read(ROOT, BUCKET, "dst")) == data


async def test_identity_policy_denials_come_before_storage_or_the_kms(env: Env) -> None:
    upload_id, etags = await upload(env, "bob/obj", {1: b"bob's"})
    await env.multipart.complete(ROOT, BUCKET, "bob/obj", upload_id, [(1, etags[1])])
    other_id, _ = await upload(env, "alice/mine", {1: b"x"})
    attempts = {
        "create elsewhere": env.multipart.create(ALICE, BUCKET, "bob/new", key_id=None, encryption_context={},
                                                 metadata=b""),
        "upload_part elsewhere": env.multipart.upload_part(ALICE, BUCKET, "bob/obj", "any-id", 1, blocks(b"x"), 1),
        "list_parts (not allowed)": env.multipart.list_parts(ALICE, BUCKET, "alice/mine", other_id),
        "list_uploads (not allowed)": env.multipart.list_uploads(ALICE, BUCKET),
        "abort (not allowed)": env.multipart.abort(ALICE, BUCKET, "alice/mine", other_id),
        "complete elsewhere": env.multipart.complete(ALICE, BUCKET, "bob/obj", "any-id", [(1, etags[1])]),
        "copy from an unreadable source": env.multipart.copy(ALICE, BUCKET, "bob/obj", BUCKET, "alice/copy",
                                                             key_id=None, encryption_context={}),
        "copy to an unwritable destination": env.multipart.copy(ALICE, BUCKET, "alice/mine", BUCKET, "bob/copy",
                                                                key_id=None, encryption_context={}),
        "read of a multipart object": env.gateway.objects.read(ALICE, BUCKET, "bob/obj"),
    }
    for name, attempt in attempts.items():
        with pytest.raises(GatewayError) as denied:
            await attempt
        assert (denied.value.status, denied.value.code) == (403, "AccessDenied"), name
    assert [u.upload_id for u in await env.multipart.list_uploads(ROOT, BUCKET)] == [other_id]


async def test_a_caller_may_not_set_the_gateways_context_keys(env: Env) -> None:
    for context in ({"kmsgate:upload-id": "x"}, {"kmsgate:part-number": "1"}, {"aws:s3:arn": "arn:aws:s3:::b/k"}):
        with pytest.raises(GatewayError) as refused:
            await env.multipart.create(ROOT, BUCKET, "k", key_id=None, encryption_context=context, metadata=b"")
        assert refused.value.code == "InvalidArgument"


def file_storage_of(env: Env) -> FileStorage:
    storage = env.gateway.storage
    if not isinstance(storage, FileStorage):
        pytest.skip("rewrites the file backend's data files")
    return storage


async def test_a_part_moved_from_another_upload_of_the_object_fails_to_read(env: Env) -> None:
    storage = file_storage_of(env)
    parts = {1: os.urandom(P), 2: b"tail"}
    other_id, other_etags = await upload(env, "k", parts)
    await env.multipart.complete(ROOT, BUCKET, "k", other_id, sorted(other_etags.items()))
    foreign_part = storage.object_files(BUCKET, "k")[0].read_bytes()
    upload_id, etags = await upload(env, "k", parts)
    await env.multipart.complete(ROOT, BUCKET, "k", upload_id, sorted(etags.items()))
    assert await plaintext(await env.gateway.objects.read(ROOT, BUCKET, "k")) == parts[1] + parts[2]
    target = storage.object_files(BUCKET, "k")[0]
    assert len(foreign_part) == target.stat().st_size
    target.write_bytes(foreign_part)  # same object, same part number, same plaintext: another upload
    for attempt in (env.gateway.objects.read(ROOT, BUCKET, "k"), env.gateway.objects.head(ROOT, BUCKET, "k"),
                    env.gateway.objects.read(ROOT, BUCKET, "k", byte_range="bytes=-3")):
        with pytest.raises(GatewayError) as refused:
            await attempt
        assert (refused.value.status, refused.value.code) == (502, "ObjectCorrupt")


async def test_parts_reordered_in_storage_fail_to_read(env: Env) -> None:
    storage = file_storage_of(env)
    one, two = os.urandom(P), os.urandom(P)
    upload_id, etags = await upload(env, "k", {1: one, 2: two, 3: b"end"})
    await env.multipart.complete(ROOT, BUCKET, "k", upload_id, sorted(etags.items()))
    first, second, _ = storage.object_files(BUCKET, "k")
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    for spec in (None, "bytes=0-9", f"bytes={2 * P}-"):
        with pytest.raises(GatewayError) as refused:
            await env.gateway.objects.read(ROOT, BUCKET, "k", byte_range=spec)
        assert refused.value.code == "ObjectCorrupt", spec


async def test_a_part_stored_as_a_whole_object_is_refused(env: Env) -> None:
    storage = file_storage_of(env)
    upload_id, etags = await upload(env, "k", {1: b"a part on its own"})
    await env.multipart.complete(ROOT, BUCKET, "k", upload_id, sorted(etags.items()))
    part = storage.object_files(BUCKET, "k")[0].read_bytes()
    writer = await storage.open_write(BUCKET, "k")  # the part's message, now an object written whole
    await writer.write(part)
    await writer.commit()
    with pytest.raises(GatewayError) as refused:
        await env.gateway.objects.read(ROOT, BUCKET, "k")
    assert refused.value.code == "ObjectCorrupt"


@pytest.fixture
def kms_env(kmsgate_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real kmsgate's KMS for both the gateway and the official SDK, as a deployed client sees it."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", kmsgate_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", kmsgate_server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", kmsgate_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", kmsgate_server.endpoint_url)
    return kmsgate_server


async def test_the_stored_object_decrypts_message_by_message_with_the_official_sdk(
        file_storage: FileStorage, kms_env: Any) -> None:
    key_arn = str(kms_env.kms_client().create_key(Description="multipart interop")["KeyMetadata"]["Arn"])
    await file_storage.create_bucket("interop")
    async with RemoteKmsClient(RemoteKmsSettings(endpoint_url=kms_env.endpoint_url, region=kms_env.region)) as kms:
        gateway = Gateway(storage=file_storage, kms=kms, metrics=GatewayMetrics(),
                          authenticator=object(),  # type: ignore[arg-type]
                          settings=GatewaySettings(frame_length=FRAME))
        try:
            multipart = MultipartService(gateway)
            parts = {1: os.urandom(P), 2: os.urandom(P), 3: os.urandom(1000)}
            upload_id = await multipart.create(ROOT, "interop", "obj", key_id=key_arn,
                                               encryption_context={"app": "interop"}, metadata=b"")
            etags = [(n, (await multipart.upload_part(ROOT, "interop", "obj", upload_id, n, blocks(data),
                                                      len(data))).etag) for n, data in parts.items()]
            await multipart.complete(ROOT, "interop", "obj", upload_id, etags)
        finally:
            await gateway.caller_materials.aclose()
            gateway.pool.close()
    stored = (await file_storage.head("interop", "obj"))
    reader = await file_storage.open_read("interop", "obj")
    try:
        whole = b"".join([c async for c in reader])
    finally:
        await reader.aclose()
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn],
                                                                botocore_session=botocore.session.Session())
    offset = 0
    for (n, data), size in zip(parts.items(), stored.part_sizes):
        decrypted, header = client.decrypt(source=whole[offset : offset + size], key_provider=provider)
        offset += size
        assert decrypted == data
        assert header.encryption_context["kmsgate:part-number"] == str(n)
        assert header.encryption_context["kmsgate:upload-id"] == upload_id
        assert header.encryption_context["aws:s3:arn"] == "arn:aws:s3:::interop/obj"
        assert header.encryption_context["app"] == "interop"
    assert offset == len(whole)


async def test_a_multipart_object_is_read_with_the_metadata_and_cmk_given_at_create(env: Env) -> None:
    upload_id, etags = await upload(env, "described", {1: b"body"}, metadata=b"kept at create")
    await env.multipart.complete(ROOT, BUCKET, "described", upload_id, [(1, etags[1])])
    info = await env.gateway.objects.head(ROOT, BUCKET, "described")
    assert (info.metadata, info.kms_key_arn) == (b"kept at create", env.key_arn)
    read = await env.gateway.objects.read(ROOT, BUCKET, "described")
    assert read.info.metadata == b"kept at create"
    assert await plaintext(read) == b"body"


async def test_a_copy_keeps_what_its_describe_returns_for_the_copys_md5_and_the_sources_info(env: Env) -> None:
    data = os.urandom(2 * FRAME + 3)
    await env.gateway.objects.put(ROOT, BUCKET, "src", blocks(data), key_id=None, encryption_context={},
                                  length=len(data), describe=lambda md5: b"source metadata")
    seen: list[bytes] = []

    def describe(source: ObjectInfo) -> Describe:
        seen.append(source.metadata)
        return lambda copy_md5: b"copy of " + copy_md5.hex().encode()

    copied = await env.multipart.copy(ROOT, BUCKET, "src", BUCKET, "dst", key_id=None, encryption_context={},
                                      describe=describe)
    assert seen == [b"source metadata"]
    assert copied.md5 == md5(data)
    info = await env.gateway.objects.head(ROOT, BUCKET, "dst")
    assert info.metadata == b"copy of " + md5(data).hex().encode()
