"""The S3 API driven by rclone (Debian's package) over loopback: copy, ls, cat, check, delete.

rclone talks to kmsgate as an S3 remote with provider ``Other``, path-style addressing and
SigV4. Listings give each object's ETag as HEAD does (the plaintext's MD5; S3's multipart
form for a multipart object, whose MD5 rclone keeps in its own metadata), so ``check`` and
copies compare hashes with no extra flag: a mismatch would fail them. ``make tools`` installs
rclone; without it these tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import KmsgateServer
from tests.s3front.conftest import s3_endpoint

RCLONE = shutil.which("rclone")
pytestmark = pytest.mark.skipif(RCLONE is None, reason="rclone is not installed (make tools installs it)")


def rclone_run(server: KmsgateServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    config = tmp_path / "rclone.conf"
    if not config.exists():
        config.write_text(
            "[kmsgate]\ntype = s3\nprovider = Other\nenv_auth = false\n"
            f"access_key_id = {server.access_key_id}\nsecret_access_key = {server.secret_access_key}\n"
            f"endpoint = {s3_endpoint(server)}\nregion = {server.region}\nforce_path_style = true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    return subprocess.run([str(RCLONE), "--config", str(config), "--s3-force-path-style", "--retries", "1",
                           "--low-level-retries", "1", *args], env=env, capture_output=True, timeout=120, check=False)


def rclone(server: KmsgateServer, tmp_path: Path, *args: str) -> str:
    result = rclone_run(server, tmp_path, *args)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def test_rclone_copies_lists_reads_checks_and_deletes(s3_server: KmsgateServer, tmp_path: Path) -> None:
    local = tmp_path / "local"
    files = {"small.txt": b"hello from rclone\n", "dir/medium.bin": os.urandom(300_000),
             "large.bin": os.urandom(11 * 1024 * 1024)}
    for name, body in files.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(body)
    rclone(s3_server, tmp_path, "mkdir", "kmsgate:rclone-bucket")
    # a 5 MiB cutoff and chunk size: large.bin goes up as a three-part multipart upload
    rclone(s3_server, tmp_path, "copy", str(local), "kmsgate:rclone-bucket/tree", "--s3-upload-cutoff", "5M",
           "--s3-chunk-size", "5M")
    listed = rclone(s3_server, tmp_path, "ls", "kmsgate:rclone-bucket/tree")
    assert {tuple(line.split()[::-1]) for line in listed.splitlines()} == {
        (name, str(len(body))) for name, body in files.items()}
    assert rclone(s3_server, tmp_path, "cat", "kmsgate:rclone-bucket/tree/small.txt").encode() == files["small.txt"]
    rclone(s3_server, tmp_path, "check", str(local), "kmsgate:rclone-bucket/tree")
    back = tmp_path / "back"
    rclone(s3_server, tmp_path, "copy", "kmsgate:rclone-bucket/tree", str(back))
    assert {str(p.relative_to(back)): p.read_bytes() for p in back.rglob("*") if p.is_file()} == files
    rclone(s3_server, tmp_path, "delete", "kmsgate:rclone-bucket/tree")
    assert rclone(s3_server, tmp_path, "ls", "kmsgate:rclone-bucket") == ""


def test_rclone_check_finds_no_difference_and_compares_hashes(s3_server: KmsgateServer, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "a.txt").write_bytes(b"checked by hash\n")
    (local / "b.bin").write_bytes(os.urandom(200_000))
    rclone(s3_server, tmp_path, "mkdir", "kmsgate:rclone-check")
    rclone(s3_server, tmp_path, "sync", str(local), "kmsgate:rclone-check")
    report = tmp_path / "differences.txt"
    rclone(s3_server, tmp_path, "check", str(local), "kmsgate:rclone-check", "--one-way", "--differ", str(report))
    assert report.read_text() == ""
    # The listing's ETags are what rclone compares: a file changed at the same size now differs.
    (local / "a.txt").write_bytes(b"CHECKED BY HASH\n")
    result = rclone_run(s3_server, tmp_path, "check", str(local), "kmsgate:rclone-check", "--differ", str(report))
    assert result.returncode != 0
    assert report.read_text().split() == ["a.txt"]
    rclone(s3_server, tmp_path, "purge", "kmsgate:rclone-check")
