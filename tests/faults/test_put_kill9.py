"""``kill -9`` of the server while ``PUT /v1/objects``, S3 PutObject and UploadPart bodies stream
in: after the restart no partial object or part is visible (404, or the version acknowledged
before) and the objects directory holds no temporary file and no data file beyond the
acknowledged objects' and parts'."""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from typing import Any

from tests.conftest import ROOT_TOKEN, free_port, start_server
from tests.s3front.conftest import s3_client

from .conftest import files_under, signed_s3_put_headers, start_half_sent_put, wait_until

IN_FLIGHT = 4
DECLARED_BYTES = 64 * 1024 * 1024
SENT_BYTES = 3 * 1024 * 1024  # past the storage's write buffer: on disk in a temporary file


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_puts_cut_by_kill_9_leave_no_partial_object_and_no_leftover_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server: Any = start_server(data_dir, "--workers", "2")
    try:
        previous = os.urandom(200_000)
        assert request(server.port, "PUT", "/v1/objects/kept", previous)[0] == 201
        tmp_dir = data_dir / "objects" / "tmp"
        sockets = [start_half_sent_put(server.port, f"/v1/objects/{name}", DECLARED_BYTES, SENT_BYTES)
                   for name in ["kept", *(f"new-{i}" for i in range(IN_FLIGHT - 1))]]
        try:
            wait_until(lambda: len(list(tmp_dir.glob("*.part"))) == IN_FLIGHT, "every PUT to reach its temporary file")
            server.kill()
        finally:
            for sock in sockets:
                sock.close()

        server.start()
        assert request(server.port, "GET", "/v1/objects/kept") == (200, previous)
        for i in range(IN_FLIGHT - 1):
            assert request(server.port, "GET", f"/v1/objects/new-{i}")[0] == 404
        assert list(tmp_dir.iterdir()) == []
        # One data file: the acknowledged version of "kept".
        assert len(files_under(data_dir / "objects" / "data")) == 1
    finally:
        server.stop()


def test_s3_puts_and_parts_cut_by_kill_9_leave_no_partial_object_part_or_leftover_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    s3_port = free_port()
    server: Any = start_server(data_dir, "--s3-port", str(s3_port))
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="cut")
        previous = os.urandom(200_000)
        s3.put_object(Bucket="cut", Key="kept", Body=previous)
        upload_id = s3.create_multipart_upload(Bucket="cut", Key="parts")["UploadId"]
        first_part = os.urandom(5 * 1024 * 1024)
        first_etag = s3.upload_part(Bucket="cut", Key="parts", UploadId=upload_id, PartNumber=1,
                                    Body=first_part)["ETag"]
        files_before = files_under(data_dir / "objects" / "data")

        tmp_dir = data_dir / "objects" / "tmp"
        targets = ["/cut/kept", "/cut/new", f"/cut/parts?partNumber=2&uploadId={upload_id}",
                   f"/cut/parts?partNumber=1&uploadId={upload_id}"]
        sockets = [start_half_sent_put(s3_port, target, DECLARED_BYTES, SENT_BYTES,
                                       signed_s3_put_headers(server, s3_port, target, DECLARED_BYTES))
                   for target in targets]
        try:
            wait_until(lambda: len(list(tmp_dir.glob("*.part"))) == len(targets),
                       "every PUT to reach its temporary file")
            server.kill()
        finally:
            for sock in sockets:
                sock.close()

        server.start()
        s3 = s3_client(server)
        assert s3.get_object(Bucket="cut", Key="kept")["Body"].read() == previous
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="cut")["Contents"]] == ["kept"]
        parts = s3.list_parts(Bucket="cut", Key="parts", UploadId=upload_id)["Parts"]
        assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, first_etag)]
        assert list(tmp_dir.iterdir()) == []
        assert files_under(data_dir / "objects" / "data") == files_before
        s3.complete_multipart_upload(Bucket="cut", Key="parts", UploadId=upload_id,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": first_etag}]})
        assert s3.get_object(Bucket="cut", Key="parts")["Body"].read() == first_part
    finally:
        server.stop()
