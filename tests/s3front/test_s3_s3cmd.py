"""The S3 API driven by s3cmd (Debian's package) over loopback: mb, put, get, ls, del, rb.

s3cmd is configured for path-style addressing (``host_bucket`` without ``%(bucket)s``),
plain HTTP and SigV4 (``signature_v2 = False``). ``make tools`` installs s3cmd; without it
these tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import KmsgateServer
from tests.s3front.conftest import s3_endpoint

S3CMD = shutil.which("s3cmd")
pytestmark = pytest.mark.skipif(S3CMD is None, reason="s3cmd is not installed (make tools installs it)")


def s3cmd(server: KmsgateServer, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "s3cmd.cfg"
    host = s3_endpoint(server).removeprefix("http://")
    if not config.exists():
        config.write_text(
            f"[default]\naccess_key = {server.access_key_id}\nsecret_key = {server.secret_access_key}\n"
            f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\nsignature_v2 = False\n"
            f"bucket_location = {server.region}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    result = subprocess.run([str(S3CMD), "-c", str(config), *args], env=env, capture_output=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def test_s3cmd_makes_puts_gets_lists_deletes_and_removes(s3_server: KmsgateServer, tmp_path: Path) -> None:
    small, large = tmp_path / "small.txt", tmp_path / "large.bin"
    small.write_bytes(b"hello from s3cmd\n")
    large.write_bytes(os.urandom(12 * 1024 * 1024 + 1))
    s3cmd(s3_server, tmp_path, "mb", "s3://s3cmd-bucket")
    s3cmd(s3_server, tmp_path, "put", str(small), "s3://s3cmd-bucket/small.txt")
    # 5 MB chunks: large.bin goes up as a three-part multipart upload
    s3cmd(s3_server, tmp_path, "put", "--multipart-chunk-size-mb=5", str(large), "s3://s3cmd-bucket/large.bin")
    listed = s3cmd(s3_server, tmp_path, "ls", "s3://s3cmd-bucket")
    assert "s3://s3cmd-bucket/small.txt" in listed and "s3://s3cmd-bucket/large.bin" in listed
    for name, source in (("small.txt", small), ("large.bin", large)):
        back = tmp_path / f"back-{name}"
        s3cmd(s3_server, tmp_path, "get", f"s3://s3cmd-bucket/{name}", str(back))
        assert back.read_bytes() == source.read_bytes()
    s3cmd(s3_server, tmp_path, "del", "s3://s3cmd-bucket/small.txt", "s3://s3cmd-bucket/large.bin")
    assert s3cmd(s3_server, tmp_path, "ls", "s3://s3cmd-bucket") == ""
    s3cmd(s3_server, tmp_path, "rb", "s3://s3cmd-bucket")
    assert "s3cmd-bucket" not in s3cmd(s3_server, tmp_path, "ls")
