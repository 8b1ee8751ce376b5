"""A full disk under the gateway's objects: a small tmpfs mounted by the test (root only; skipped
otherwise) holds ``<data-dir>/objects`` of a real server. A PUT that does not fit is refused with
507 and leaves nothing behind; reads and the KMS keep working; once space returns, PUTs work."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import free_port, start_server
from tests.s3front.conftest import s3_client

from .test_put_kill9 import request

TMPFS_SIZE = "8m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "data" / "objects"
    mount_point.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system has no space left."""
    block = b"\0" * (64 * 1024)
    with open(path, "wb") as filler:
        try:
            while True:
                filler.write(block)
                filler.flush()
        except OSError:
            pass


def files_in(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_a_put_on_a_full_disk_is_507_leaves_nothing_and_works_once_space_returns(small_disk: Path) -> None:
    server: Any = start_server(small_disk.parent)
    try:
        stored = os.urandom(100_000)
        assert request(server.port, "PUT", "/v1/objects/stored", stored)[0] == 201
        kms = server.kms_client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]

        filler = small_disk / "filler"
        fill(filler)
        files_before = files_in(small_disk)

        status, body = request(server.port, "PUT", "/v1/objects/too-big", os.urandom(1024 * 1024))
        assert status == 507, body
        assert json.loads(body)["error"] == "InsufficientStorage"
        assert request(server.port, "GET", "/v1/objects/too-big")[0] == 404
        assert files_in(small_disk) == files_before

        assert request(server.port, "GET", "/v1/objects/stored") == (200, stored)
        ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"still served")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"still served"

        filler.unlink()
        again = os.urandom(1024 * 1024)
        assert request(server.port, "PUT", "/v1/objects/too-big", again)[0] == 201
        assert request(server.port, "GET", "/v1/objects/too-big") == (200, again)
    finally:
        server.stop()


def test_an_s3_put_on_a_full_disk_is_503_service_unavailable_leaves_nothing_and_works_once_space_returns(
        small_disk: Path) -> None:
    server: Any = start_server(small_disk.parent, "--s3-port", str(free_port()))
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="full")
        s3.put_object(Bucket="full", Key="stored", Body=b"kept")
        upload_id = s3.create_multipart_upload(Bucket="full", Key="parts")["UploadId"]

        filler = small_disk / "filler"
        fill(filler)
        files_before = files_in(small_disk)
        attempts: list[Callable[[], object]] = [
            lambda: s3.put_object(Bucket="full", Key="too-big", Body=os.urandom(1024 * 1024)),
            lambda: s3.upload_part(Bucket="full", Key="parts", UploadId=upload_id, PartNumber=1,
                                   Body=os.urandom(1024 * 1024)),
        ]
        for attempt in attempts:
            with pytest.raises(ClientError) as refused:
                attempt()
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert files_in(small_disk) == files_before
        assert s3.list_parts(Bucket="full", Key="parts", UploadId=upload_id).get("Parts", []) == []
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="full")["Contents"]] == ["stored"]
        assert s3.get_object(Bucket="full", Key="stored")["Body"].read() == b"kept"

        filler.unlink()
        s3.put_object(Bucket="full", Key="too-big", Body=b"fits now")
        assert s3.get_object(Bucket="full", Key="too-big")["Body"].read() == b"fits now"
    finally:
        server.stop()
