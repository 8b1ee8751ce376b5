"""The S3 API driven by the ``aws`` CLI (``aws s3`` and ``aws s3api``) against a real server."""

from __future__ import annotations

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
