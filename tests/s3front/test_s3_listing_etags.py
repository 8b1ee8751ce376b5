"""Listings report the ETag HEAD reports (the MD5, S3's multipart formula), on both storage backends.

Driven with boto3 against a real ``kmsgate serve`` over loopback: on the file backend, and on the
s3 backend in front of moto's S3 server. Storage keeps each ETag only sealed under the gateway's
catalog key (``kmsgate.gateway.listing_etag``), so the data directory and the upstream bucket
are searched for the plaintexts and their MD5s; a sealed ETag moved to another object's record,
and a KMS that is down when the catalog key is needed, leave the listing answering with the
message ids instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from kmsgate.envelope.header import DecryptPolicy, parse_header
from kmsgate.gateway.storage.catalog import CATALOG_FILENAME
from kmsgate.gateway.storage.s3meta import SEALED_ETAG_FIELD
from kmsgate.web.app import OBJECTS_DIRNAME
from tests.conftest import KmsgateServer, free_port, start_server
from tests.s3front.conftest import s3_client
from tests.s3front.test_s3_on_s3_storage import UPSTREAM_ACCESS_KEY_ID, UPSTREAM_SECRET_ACCESS_KEY, upstream_client

PART = 5 * 1024 * 1024


@dataclass
class Backend:
    """A running kmsgate over one storage backend, and a look at what that backend holds."""

    name: str
    server: KmsgateServer
    stored: Callable[[], Iterator[bytes]]
    """Every byte string the backend keeps (files; upstream objects and their user metadata)."""
    stored_message: Callable[[str, str], bytes]
    """The stored bytes of ``bucket/key`` (the start of the message, at least)."""
    move_sealed_etag: Callable[[str, str, str], None]
    """Copy the sealed ETag of ``bucket/a`` into the record of ``bucket/b`` (``bucket, a, b``)."""


def file_stored_message(root: Path, bucket: str, key: str) -> bytes:
    """The stored bytes of ``bucket/key`` in the file storage at ``root``: its catalog row's
    when it is kept inline, else its (first) data file's."""
    with sqlite3.connect(root / CATALOG_FILENAME, timeout=30) as db:
        files, data = db.execute("SELECT files, data FROM objects WHERE bucket = ? AND key = ?",
                                 (bucket, key)).fetchone()
    if data is not None:
        return bytes(data)
    name = str(files).split()[0]
    return (root / "data" / name[:2] / name).read_bytes()


def _file_backend(tmp: Path) -> Iterator[Backend]:
    server = start_server(tmp / "data", "--s3-port", str(free_port()))
    root = server.data_dir / OBJECTS_DIRNAME

    def stored() -> Iterator[bytes]:
        for path in server.data_dir.rglob("*"):
            if path.is_file():
                yield path.read_bytes()

    def catalog() -> sqlite3.Connection:
        return sqlite3.connect(root / CATALOG_FILENAME, timeout=30)

    def stored_message(bucket: str, key: str) -> bytes:
        return file_stored_message(root, bucket, key)

    def move_sealed_etag(bucket: str, source: str, target: str) -> None:
        db = catalog()
        try:
            with db:
                db.execute("UPDATE objects SET sealed_etag = (SELECT sealed_etag FROM objects WHERE bucket = ? AND "
                           "key = ?) WHERE bucket = ? AND key = ?", (bucket, source, bucket, target))
        finally:
            db.close()

    try:
        yield Backend("file", server, stored, stored_message, move_sealed_etag)
    finally:
        server.stop()


def _s3_backend(tmp: Path) -> Iterator[Backend]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint, upstream_bucket = f"http://{host}:{port}", f"kmsgate-upstream-{uuid.uuid4().hex[:8]}"
    upstream = upstream_client(endpoint)
    upstream.create_bucket(Bucket=upstream_bucket)
    server = start_server(tmp / "data", "--s3-port", str(free_port()), "--storage", "s3", "--s3-bucket",
                          upstream_bucket, "--s3-endpoint-url", endpoint, "--s3-region", "us-east-1",
                          AWS_ACCESS_KEY_ID=UPSTREAM_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=UPSTREAM_SECRET_ACCESS_KEY,
                          AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)

    def stored() -> Iterator[bytes]:
        for item in upstream.list_objects_v2(Bucket=upstream_bucket).get("Contents", []):
            got = upstream.get_object(Bucket=upstream_bucket, Key=item["Key"])
            yield got["Body"].read()
            yield repr(got.get("Metadata", {})).encode()

    def stored_message(bucket: str, key: str) -> bytes:
        return bytes(upstream.get_object(Bucket=upstream_bucket, Key=f"{bucket}/{key}")["Body"].read())

    def move_sealed_etag(bucket: str, source: str, target: str) -> None:
        source_fields = upstream.head_object(Bucket=upstream_bucket, Key=f"{bucket}/{source}")["Metadata"]
        target_fields = upstream.head_object(Bucket=upstream_bucket, Key=f"{bucket}/{target}")["Metadata"]
        upstream.copy_object(Bucket=upstream_bucket, Key=f"{bucket}/{target}", MetadataDirective="REPLACE",
                             CopySource={"Bucket": upstream_bucket, "Key": f"{bucket}/{target}"},
                             Metadata={**target_fields, SEALED_ETAG_FIELD: source_fields[SEALED_ETAG_FIELD]})

    try:
        yield Backend("s3", server, stored, stored_message, move_sealed_etag)
    finally:
        server.stop()
        moto.stop()


@pytest.fixture(scope="module", params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    tmp = tmp_path_factory.mktemp(f"kmsgate-etags-{request.param}")
    yield from (_file_backend(tmp) if request.param == "file" else _s3_backend(tmp))


@pytest.fixture
def s3(backend: Backend) -> Any:
    return s3_client(backend.server)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name


def md5_etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def multipart_etag(parts: list[bytes]) -> str:
    combined = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{combined}-{len(parts)}"'


def upload_multipart(s3: Any, bucket: str, key: str, parts: list[bytes]) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n,
                                                     Body=body)["ETag"]}
            for n, body in enumerate(parts, start=1)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done})


def listed_etags(s3: Any, bucket: str) -> dict[str, str]:
    return {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def message_id_etag(message: bytes) -> str:
    """The ETag a listing falls back to: the stored message's id (what it reported before sealed ETags)."""
    header, _ = parse_header(message[:4096], DecryptPolicy())
    assert header is not None
    return f'"{header.message_id.hex()[:32]}"'


def test_listings_report_the_etag_head_reports_for_single_multipart_and_copied_objects(
        backend: Backend, s3: Any, bucket: str) -> None:
    single, empty = os.urandom(70_000), b""
    parts = [os.urandom(PART), os.urandom(1000)]
    s3.put_object(Bucket=bucket, Key="single", Body=single)
    s3.put_object(Bucket=bucket, Key="dir/empty", Body=empty)
    upload_multipart(s3, bucket, "multipart", parts)
    s3.copy_object(Bucket=bucket, Key="copy-of-multipart", CopySource={"Bucket": bucket, "Key": "multipart"})
    expected = {"single": md5_etag(single), "dir/empty": md5_etag(empty), "multipart": multipart_etag(parts),
                "copy-of-multipart": md5_etag(b"".join(parts))}

    assert listed_etags(s3, bucket) == expected
    assert {o["Key"]: o["ETag"] for o in s3.list_objects(Bucket=bucket)["Contents"]} == expected
    assert {key: s3.head_object(Bucket=bucket, Key=key)["ETag"] for key in expected} == expected


def test_storage_holds_neither_the_plaintexts_nor_their_md5s(backend: Backend, s3: Any, bucket: str) -> None:
    single = os.urandom(3000)
    parts = [os.urandom(PART), os.urandom(2000)]
    s3.put_object(Bucket=bucket, Key="single", Body=single)
    upload_multipart(s3, bucket, "multipart", parts)
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "single"})
    assert listed_etags(s3, bucket) == {"single": md5_etag(single), "multipart": multipart_etag(parts),
                                        "copy": md5_etag(single)}
    secrets: list[bytes] = [single, *parts]
    for body in (single, *parts, b"".join(parts)):
        secrets += [hashlib.md5(body).digest(), hashlib.md5(body).hexdigest().encode()]
    secrets.append(multipart_etag(parts).strip('"').split("-")[0].encode())
    secrets.append(bytes.fromhex(multipart_etag(parts).strip('"').split("-")[0]))
    stored = list(backend.stored())
    stored.append(backend.server.log_text().encode())
    for i, secret in enumerate(secrets):
        probe = secret[:64]  # a plaintext is found by any long piece of it
        assert not any(probe in blob for blob in stored), f"secret #{i} found in {backend.name} storage or the log"


def test_a_sealed_etag_moved_to_another_objects_record_does_not_report_that_objects_md5(
        backend: Backend, s3: Any, bucket: str) -> None:
    a, b = b"the object whose ETag is moved", b"the object it is moved onto"
    s3.put_object(Bucket=bucket, Key="a", Body=a)
    s3.put_object(Bucket=bucket, Key="b", Body=b)
    backend.move_sealed_etag(bucket, "a", "b")
    assert listed_etags(s3, bucket) == {"a": md5_etag(a), "b": message_id_etag(backend.stored_message(bucket, "b"))}
    assert s3.head_object(Bucket=bucket, Key="b")["ETag"] == md5_etag(b)


def kms_calls(server: KmsgateServer) -> float:
    """Every KMS call the gateway made so far, whatever its operation and outcome."""
    with urllib.request.urlopen(f"{server.endpoint_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(r"^kmsgate_kms_calls_total\{[^}]*\} (\S+)$", text, re.M))


def test_a_listing_of_1000_keys_makes_no_kms_call_once_the_catalog_key_is_loaded(
        backend: Backend, s3: Any, bucket: str) -> None:
    if backend.name != "file":
        pytest.skip("counted once, on the file backend: the KMS calls do not depend on the backend")
    bodies = {f"k/{i:04d}": f"object number {i}".encode() for i in range(1000)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=bucket, Key=item[0], Body=item[1]), bodies.items()))
    before = kms_calls(backend.server)
    listed = s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)
    after = kms_calls(backend.server)
    assert len(listed["Contents"]) == 1000 and not listed["IsTruncated"]
    assert {o["Key"]: o["ETag"] for o in listed["Contents"]} == {k: md5_etag(v) for k, v in bodies.items()}
    assert after - before == 0


def metric(server: KmsgateServer, name: str) -> float:
    with urllib.request.urlopen(f"{server.endpoint_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_listing_answers_with_message_ids_while_the_kms_is_down_and_md5s_once_it_is_back(
        tmp_path: Path) -> None:
    kms = start_server(tmp_path / "kms")
    gateway = start_server(tmp_path / "gateway", "--s3-port", str(free_port()), "--kms-endpoint", kms.endpoint_url,
                           AWS_ACCESS_KEY_ID=kms.access_key_id, AWS_SECRET_ACCESS_KEY=kms.secret_access_key,
                           AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    try:
        s3 = s3_client(gateway)
        s3.create_bucket(Bucket="kept")
        body = b"listed while the KMS is away"
        s3.put_object(Bucket="kept", Key="obj", Body=body)
        assert listed_etags(s3, "kept") == {"obj": md5_etag(body)}
        gateway.stop()
        kms.stop()
        gateway.start()  # the catalog key is no longer in memory, and the KMS cannot unwrap it
        message = file_stored_message(tmp_path / "gateway" / OBJECTS_DIRNAME, "kept", "obj")
        s3 = s3_client(gateway)
        assert listed_etags(s3, "kept") == {"obj": message_id_etag(message)}
        deadline = time.monotonic() + 30
        while metric(gateway, "kmsgate_catalog_key_failures_total") < 1:  # the load fails in the background
            assert time.monotonic() < deadline, "the failure to load the catalog key was never counted"
            time.sleep(0.1)
        assert listed_etags(s3, "kept") == {"obj": message_id_etag(message)}
        assert gateway.log_text().count("catalog key unavailable") == 1

        kms.start()
        deadline = time.monotonic() + 60
        while listed_etags(s3, "kept") != {"obj": md5_etag(body)}:
            assert time.monotonic() < deadline, "the listing never reported the MD5 again"
            time.sleep(0.2)
    finally:
        gateway.stop()
        kms.stop()
