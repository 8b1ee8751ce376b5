"""The moto peer over loopback: signed KMS requests, and the S3-shaped answer to unsigned ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.kmsreq import REPLY_MARKER, NotKmsReplyError, kms_request, prepare_workload, send_once, signed_template
from bench.loadgen import LoadPlan, run_load
from bench.peer import PEER_CREDENTIALS, moto_server_argv, start_moto
from bench.procs import ServerProcess, free_port

pytestmark = pytest.mark.skipif(moto_server_argv(0) is None, reason="moto server not installed")


@pytest.fixture(scope="module")
def moto() -> Iterator[ServerProcess]:
    server = start_moto(free_port())
    try:
        yield server
    finally:
        server.stop()


def test_unsigned_kms_request_is_not_taken_for_a_kms_reply(moto: ServerProcess) -> None:
    workload = prepare_workload(moto.url, PEER_CREDENTIALS)
    with pytest.raises(NotKmsReplyError):
        signed_template(moto.url, workload, "GenerateDataKey", None)


@pytest.mark.parametrize("operation", ["GenerateDataKey", "Encrypt", "Decrypt"])
def test_signed_request_replays_as_real_kms_replies(moto: ServerProcess, operation: str) -> None:
    workload = prepare_workload(moto.url, PEER_CREDENTIALS)
    template, reply_bytes = signed_template(moto.url, workload, operation, PEER_CREDENTIALS)
    assert reply_bytes > 0
    plan = LoadPlan(moto.url, (template,), concurrency=2, warmup_s=0.0, duration_s=30.0, max_requests=6,
                    expect_contains=REPLY_MARKER[operation], keepalive=False)
    r = run_load(plan)
    assert (r.requests, r.errors) == (6, 0)


def test_unsigned_load_counts_every_reply_as_an_error(moto: ServerProcess) -> None:
    template = kms_request(moto.url, "GenerateDataKey", {"KeyId": "x", "KeySpec": "AES_256"}, None)
    status, body = send_once(moto.url, template)
    # moto answers an unsigned KMS request as its S3 front would: a 200 XML document in some
    # releases, a 500 in others (5.2.6). Neither is a KMS reply, and both must count as errors.
    assert REPLY_MARKER["GenerateDataKey"] not in body, (status, body[:200])
    plan = LoadPlan(moto.url, (template,), warmup_s=0.0, duration_s=30.0, max_requests=3,
                    expect_contains=REPLY_MARKER["GenerateDataKey"], keepalive=False)
    r = run_load(plan)
    assert (r.requests, r.errors) == (0, 3)
