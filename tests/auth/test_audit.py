"""The audit log writer: line format, caps, group commit, lingering batches, torn lines, failure and close."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from kmsgate.auth import audit as audit_module
from kmsgate.auth.audit import MAX_CONTEXT_PAIRS, MAX_FIELD_CHARS, AuditLog, AuditRecord, outcome_of
from kmsgate.core.errors import AccessDeniedError, InvalidSignatureError, KmsInternalError, NotFoundError


def record(**kwargs) -> AuditRecord:
    fields = {
        "time": 1_767_225_600.5,
        "request_id": "req-1",
        "operation": "Decrypt",
        "outcome": "success",
        "principal_arn": "arn:aws:iam::111122223333:user/alice",
        "access_key_id": "AKIAALICE00000000001",
        "source_ip": "127.0.0.1",
        "key_arn": "arn:aws:kms:us-east-1:111122223333:key/k",
        "encryption_context": {"tenant": "acme"},
        "authorized_by": "policy",
    }
    fields.update(kwargs)
    return AuditRecord(**fields)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_line_format():
    line = record().to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "time": "2026-01-01T00:00:00.500Z",
        "request_id": "req-1",
        "operation": "Decrypt",
        "outcome": "success",
        "error_code": None,
        "principal_arn": "arn:aws:iam::111122223333:user/alice",
        "access_key_id": "AKIAALICE00000000001",
        "source_ip": "127.0.0.1",
        "key_arn": "arn:aws:kms:us-east-1:111122223333:key/k",
        "encryption_context": {"tenant": "acme"},
        "authorized_by": "policy",
        "grant_id": None,
    }


def test_newlines_in_values_stay_on_one_line():
    line = record(encryption_context={"a\nb": "c\r\nd"}, operation="X\nY").to_line()
    assert line.count(b"\n") == 1
    assert json.loads(line)["encryption_context"] == {"a\nb": "c\r\nd"}


def test_attacker_sized_fields_are_capped():
    context = {f"k{i}": "v" * 10_000 for i in range(1000)}
    line = record(operation="O" * 100_000, encryption_context=context).to_line()
    parsed = json.loads(line)
    assert len(parsed["operation"]) == MAX_FIELD_CHARS + 1
    assert len(parsed["encryption_context"]) == MAX_CONTEXT_PAIRS
    assert len(line) < 2 * MAX_FIELD_CHARS * (MAX_CONTEXT_PAIRS + 12)


@pytest.mark.parametrize(
    "error, expected",
    [
        (None, ("success", None)),
        (AccessDeniedError("x"), ("denied", "AccessDeniedException")),
        (InvalidSignatureError("x"), ("denied", "InvalidSignatureException")),
        (NotFoundError("x"), ("error", "NotFoundException")),
        (RuntimeError("boom"), ("error", "KMSInternalException")),
    ],
)
def test_outcome_of(error, expected):
    assert outcome_of(error) == expected


async def test_write_appends_private_file(tmp_path: Path):
    path = tmp_path / "data" / "audit.log"
    log = AuditLog(path)
    await log.start()
    await log.write(record(request_id="a"))
    await log.write(record(request_id="b", outcome="denied", error_code="AccessDeniedException"))
    await log.close()
    assert [line["request_id"] for line in lines(path)] == ["a", "b"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = AuditLog(path)
    await again.start()
    await again.write(record(request_id="c"))
    await again.close()
    assert [line["request_id"] for line in lines(path)] == ["a", "b", "c"]


async def test_concurrent_writes_are_group_committed_intact(tmp_path: Path):
    path = tmp_path / "audit.log"
    flushes: list[int] = []
    log = AuditLog(path, echo=lambda data: flushes.append(data.count(b"\n")))
    await log.start()
    await asyncio.gather(*(log.write(record(request_id=str(i))) for i in range(300)))
    await log.close()
    assert sorted(int(line["request_id"]) for line in lines(path)) == list(range(300))
    assert sum(flushes) == 300
    assert len(flushes) < 300  # queued records shared batches


async def test_queued_records_are_written_on_close(tmp_path: Path):
    path = tmp_path / "audit.log"
    log = AuditLog(path, fsync="none")
    await log.start()
    for i in range(10):
        log.record(record(request_id=str(i)))
    await log.close()
    assert len(lines(path)) == 10
    with pytest.raises(KmsInternalError):
        log.record(record())


async def test_torn_last_line_is_ended_before_appending(tmp_path: Path):
    path = tmp_path / "audit.log"
    path.write_bytes(record(request_id="whole").to_line() + b'{"time": "2026-01-')
    log = AuditLog(path)
    await log.start()
    await log.write(record(request_id="next"))
    await log.close()
    raw = path.read_text().splitlines()
    assert json.loads(raw[0])["request_id"] == "whole"
    assert raw[1] == '{"time": "2026-01-'
    assert json.loads(raw[2])["request_id"] == "next"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to make writes fail")
async def test_write_failure_fails_closed():
    log = AuditLog(Path("/dev/full"), fsync="none")
    await log.start()
    with pytest.raises(KmsInternalError):
        await log.write(record())
    with pytest.raises(KmsInternalError):
        await log.write(record())
    await log.close()


def test_unknown_fsync_policy():
    with pytest.raises(ValueError):
        AuditLog(Path("x"), fsync="sometimes")


async def test_queued_records_share_a_batch_and_reach_the_file_without_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(audit_module, "LINGER_SECONDS", 2.0)  # wide, so a slow machine still batches
    path = tmp_path / "audit.log"
    flushes: list[int] = []
    log = AuditLog(path, fsync="none", echo=lambda data: flushes.append(data.count(b"\n")))
    await log.start()
    for i in range(10):  # records 5 ms apart: a writer that did not linger would write each alone
        log.record(record(request_id=str(i)))
        await asyncio.sleep(0.005)
    for _ in range(500):
        if sum(flushes) == 10:
            break
        await asyncio.sleep(0.01)
    assert len(lines(path)) == 10  # written while the log is still open
    assert flushes == [10]
    await log.close()


async def test_awaited_write_does_not_wait_out_the_linger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(audit_module, "LINGER_SECONDS", 30.0)
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    await log.start()
    log.record(record(request_id="queued"))
    await asyncio.sleep(0)  # the writer is now lingering for more queued records
    await asyncio.wait_for(log.write(record(request_id="awaited")), timeout=10.0)
    assert [line["request_id"] for line in lines(path)] == ["queued", "awaited"]
    await log.close()


# -- a full disk, for real: a small tmpfs holds the audit log of a running server -----------------

FULL_DISK_WAIT_S = 60.0  # bound on waiting for the server to notice a full or freed disk


@pytest.fixture
def small_filesystem(tmp_path: Path):
    """A 64 KiB tmpfs mounted for the test (needs root, or the test is skipped)."""
    import subprocess

    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:  # ENOSPC: the filesystem is full
            pass
    return filler


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _until(condition, what: str):
    import time

    deadline = time.monotonic() + FULL_DISK_WAIT_S
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def _metric(text: str, name: str) -> float:
    import re

    match = re.search(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not exposed"
    return float(match.group(1))


def test_a_full_disk_refuses_kms_requests_until_space_returns_then_recovers(tmp_path: Path, small_filesystem: Path):
    from botocore.exceptions import ClientError

    from tests.conftest import start_server

    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "audit.log").symlink_to(small_filesystem / "audit.log")
    server = start_server(data_dir)
    try:
        kms = server.kms_client()
        before = kms.list_keys()["ResponseMetadata"]["RequestId"]
        filler = _fill(small_filesystem)

        answered: list[str] = []  # requests answered before the failed write was known

        def refused() -> bool:
            try:
                answered.append(kms.list_keys()["ResponseMetadata"]["RequestId"])
                return False
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "KMSInternalException"
                return True

        _until(refused, "a KMS request is refused for want of an audit log")
        status, body = _get(f"{server.endpoint_url}/readyz")
        assert status == 503 and json.loads(body)["checks"]["audit"] == "failed"
        metrics = _get(f"{server.endpoint_url}/metrics")[1]
        assert _metric(metrics, "kmsgate_audit_log_writable") == 0
        assert _metric(metrics, "kmsgate_audit_log_write_failures_total") >= 1

        filler.unlink()
        _until(lambda: _get(f"{server.endpoint_url}/readyz")[0] == 200, "the audit log is writable again")
        after = kms.list_keys()["ResponseMetadata"]["RequestId"]
        assert _metric(_get(f"{server.endpoint_url}/metrics")[1], "kmsgate_audit_log_writable") == 1

        def logged() -> set[str]:
            ids = set()
            for line in (small_filesystem / "audit.log").read_text().splitlines():
                try:
                    ids.add(json.loads(line)["request_id"])
                except ValueError:
                    continue  # the fragment of a line the full disk cut (written again whole after it)
            return ids if {before, after, *answered} <= ids else set()

        _until(logged, "every answered request is in the audit log")
    finally:
        server.stop()
