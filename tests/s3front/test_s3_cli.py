"""The S3 API driven by the ``aws`` CLI (``aws s3`` and ``aws s3api``) against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import KmsgateServer
from tests.s3front.conftest import s3_endpoint

AWS = str(Path(sys.executable).parent / "aws")


def aws(server: KmsgateServer, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "aws-config"
    env = server.cli_env()
    env["AWS_CONFIG_FILE"] = str(config)
    if not config.exists():
        subprocess.run([AWS, "configure", "set", "default.s3.multipart_threshold", "64MB"], env=env, check=True)
        # presign signs with SigV2 unless told otherwise; kmsgate accepts SigV4 only, as new S3 regions do
        subprocess.run([AWS, "configure", "set", "default.s3.signature_version", "s3v4"], env=env, check=True)
    result = subprocess.run([AWS, "--endpoint-url", s3_endpoint(server), *args], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_aws_s3_mb_cp_ls_presign_rm_rb(s3_server: KmsgateServer, tmp_path: Path) -> None:
    source = tmp_path / "report.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(data)
    aws(s3_server, tmp_path, "s3", "mb", "s3://cli-bucket")
    aws(s3_server, tmp_path, "s3", "cp", str(source), "s3://cli-bucket/reports/report.bin")
    listed = aws(s3_server, tmp_path, "s3", "ls", "s3://cli-bucket/reports/")
    assert "report.bin" in listed and str(len(data)) in listed
    back = tmp_path / "back.bin"
    aws(s3_server, tmp_path, "s3", "cp", "s3://cli-bucket/reports/report.bin", str(back))
    assert back.read_bytes() == data
    url = aws(s3_server, tmp_path, "s3", "presign", "s3://cli-bucket/reports/report.bin").strip()
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
        assert response.read() == data
    head = aws(s3_server, tmp_path, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "reports/report.bin")
    assert '"ServerSideEncryption": "aws:kms"' in head
    aws(s3_server, tmp_path, "s3", "rm", "s3://cli-bucket/reports/report.bin")
    aws(s3_server, tmp_path, "s3", "rb", "s3://cli-bucket")
    assert "cli-bucket" not in aws(s3_server, tmp_path, "s3", "ls")


def test_aws_s3api_put_and_get_object(s3_server: KmsgateServer, tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("through s3api\n")
    aws(s3_server, tmp_path, "s3api", "create-bucket", "--bucket", "api-bucket")
    put = aws(s3_server, tmp_path, "s3api", "put-object", "--bucket", "api-bucket", "--key", "k.txt",
              "--body", str(body), "--content-type", "text/plain")
    assert "ETag" in put
    out = tmp_path / "out.txt"
    got = aws(s3_server, tmp_path, "s3api", "get-object", "--bucket", "api-bucket", "--key", "k.txt", str(out))
    assert '"ContentType": "text/plain"' in got
    assert out.read_text() == "through s3api\n"


def multipart_config(tmp_path: Path, server: KmsgateServer) -> None:
    """An ``aws`` config whose multipart threshold (8 MB) and part size (5 MB) a small file crosses."""
    config = tmp_path / "aws-config"
    env = {**server.cli_env(), "AWS_CONFIG_FILE": str(config)}
    for setting, value in (("multipart_threshold", "8MB"), ("multipart_chunksize", "5MB"),
                           ("signature_version", "s3v4")):
        subprocess.run([AWS, "configure", "set", f"default.s3.{setting}", value], env=env, check=True)


def test_aws_s3_cp_of_a_file_over_the_multipart_threshold_round_trips(s3_server: KmsgateServer,
                                                                       tmp_path: Path) -> None:
    multipart_config(tmp_path, s3_server)
    source, back = tmp_path / "large.bin", tmp_path / "large-back.bin"
    data = os.urandom(12 * 1024 * 1024 + 5)
    source.write_bytes(data)
    aws(s3_server, tmp_path, "s3", "mb", "s3://cli-multipart")
    aws(s3_server, tmp_path, "s3", "cp", str(source), "s3://cli-multipart/large.bin")
    head = json.loads(aws(s3_server, tmp_path, "s3api", "head-object", "--bucket", "cli-multipart",
                          "--key", "large.bin"))
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(data)
    aws(s3_server, tmp_path, "s3", "cp", "s3://cli-multipart/large.bin", str(back))
    assert back.read_bytes() == data


def test_aws_s3_sync_copies_a_directory_tree_up_and_back(s3_server: KmsgateServer, tmp_path: Path) -> None:
    tree = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(70_000), "sub/deeper/c.txt": b"gamma\n"}
    up, down = tmp_path / "up", tmp_path / "down"
    for name, body in tree.items():
        (up / name).parent.mkdir(parents=True, exist_ok=True)
        (up / name).write_bytes(body)
    aws(s3_server, tmp_path, "s3", "mb", "s3://cli-sync")
    aws(s3_server, tmp_path, "s3", "sync", str(up), "s3://cli-sync/tree")
    aws(s3_server, tmp_path, "s3", "sync", "s3://cli-sync/tree", str(down))
    got = {str(p.relative_to(down)): p.read_bytes() for p in down.rglob("*") if p.is_file()}
    assert got == tree


def test_aws_s3api_multipart_upload_by_hand(s3_server: KmsgateServer, tmp_path: Path) -> None:
    parts = [os.urandom(5 * 1024 * 1024), b"the last part"]
    aws(s3_server, tmp_path, "s3api", "create-bucket", "--bucket", "cli-parts")
    created = json.loads(aws(s3_server, tmp_path, "s3api", "create-multipart-upload", "--bucket", "cli-parts",
                             "--key", "assembled", "--content-type", "text/x-assembled"))
    upload_id = created["UploadId"]
    completed = []
    for number, body in enumerate(parts, start=1):
        path = tmp_path / f"part{number}"
        path.write_bytes(body)
        uploaded = json.loads(aws(s3_server, tmp_path, "s3api", "upload-part", "--bucket", "cli-parts", "--key",
                                  "assembled", "--upload-id", upload_id, "--part-number", str(number),
                                  "--body", str(path)))
        completed.append({"PartNumber": number, "ETag": uploaded["ETag"]})
    aws(s3_server, tmp_path, "s3api", "complete-multipart-upload", "--bucket", "cli-parts", "--key", "assembled",
        "--upload-id", upload_id, "--multipart-upload", json.dumps({"Parts": completed}))
    out = tmp_path / "assembled"
    got = json.loads(aws(s3_server, tmp_path, "s3api", "get-object", "--bucket", "cli-parts", "--key", "assembled",
                         str(out)))
    assert got["ContentType"] == "text/x-assembled" and got["ETag"].endswith('-2"')
    assert out.read_bytes() == b"".join(parts)
