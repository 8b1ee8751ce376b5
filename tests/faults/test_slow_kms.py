"""A real ``kmsgate serve --kms-endpoint`` gateway whose KMS (another real ``kmsgate serve``)
answers slowly: a ``DelayingProxy`` between them holds each chunk of the KMS's answers. Slower
than the deadline (``--kms-timeout``), a request that needs the KMS is 503 with ``Retry-After``,
on ``/v1`` (``{"error","message"}``) and on the S3 API (S3's ``ServiceUnavailable`` document),
while writes whose data key is cached go on; once the delay is gone, service resumes by itself.
Slower than usual but within the deadline, requests succeed."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

from tests.conftest import KmsgateServer, free_port, start_server
from tests.s3front.conftest import s3_client

from .conftest import DelayingProxy, call, context_header, running_proxy, wait_until

KMS_TIMEOUT_S = 1.0
ABOVE_DEADLINE_S = 3 * KMS_TIMEOUT_S  # each KMS read waits this long: every attempt times out
WITHIN_DEADLINE_S = KMS_TIMEOUT_S / 4
CLIENT_TIMEOUT_S = 60  # far above the KMS deadline (and its retries): a 503 before it proves the deadline fired


@dataclass
class SlowKmsSetup:
    gateway: KmsgateServer
    proxy: DelayingProxy
    s3_port: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowKmsSetup]:
    root: Path = tmp_path_factory.mktemp("slow-kms")
    kms_server = start_server(root / "kms")
    gateway: Any = None
    try:
        with running_proxy(kms_server.port) as proxy:
            s3_port = free_port()
            gateway = start_server(
                root / "gateway", "--kms-endpoint", proxy.url, "--kms-timeout", str(KMS_TIMEOUT_S),
                "--s3-port", str(s3_port),
                AWS_ACCESS_KEY_ID=kms_server.access_key_id, AWS_SECRET_ACCESS_KEY=kms_server.secret_access_key,
                AWS_DEFAULT_REGION=kms_server.region)
            yield SlowKmsSetup(gateway, proxy, s3_port)
    finally:
        if gateway is not None:
            gateway.stop()
        kms_server.stop()


def s3_put(setup: SlowKmsSetup, bucket: str, key: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """A signed PutObject sent once (an SDK would retry the 503 by itself, hiding it)."""
    url = f"http://127.0.0.1:{setup.s3_port}/{bucket}/{key}"
    request = AWSRequest(method="PUT", url=url, data=body)
    S3SigV4Auth(setup.gateway.boto_session().get_credentials(), "s3", setup.gateway.region).add_auth(request)
    connection = http.client.HTTPConnection("127.0.0.1", setup.s3_port, timeout=CLIENT_TIMEOUT_S)
    try:
        connection.request("PUT", f"/{bucket}/{key}", body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def assert_v1_kms_unavailable(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 503, body
    assert headers.get("Retry-After") == "1"
    assert set(json.loads(body)) == {"error", "message"}
    assert json.loads(body)["error"] == "KMSUnavailable"


def assert_s3_service_unavailable(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 503, body
    assert headers.get("Retry-After") == "1"
    document = ElementTree.fromstring(body)
    assert document.tag == "Error"
    assert document.findtext("Code") == "ServiceUnavailable"


def test_a_kms_slower_than_its_deadline_is_503_with_retry_after_while_cached_keys_write_until_it_speeds_up(
        setup: SlowKmsSetup) -> None:
    port, run = setup.gateway.port, uuid.uuid4().hex[:8]
    warm = context_header(f"warm-{run}")
    bucket = f"slow-{run}"
    s3 = s3_client(setup.gateway)
    s3.create_bucket(Bucket=bucket)
    assert call(port, "PUT", f"/v1/objects/warm-{run}", b"first", warm)[0] == 201
    assert call(port, "GET", f"/v1/objects/warm-{run}")[::2] == (200, b"first")  # its key cached for reads too
    assert call(port, "POST", "/v1/encrypt", b"stream one", warm)[0] == 200

    setup.proxy.delay_s = ABOVE_DEADLINE_S
    try:
        cold = context_header(f"cold-{run}")
        assert_v1_kms_unavailable(call(port, "PUT", f"/v1/objects/cold-{run}", b"x", cold))
        assert_v1_kms_unavailable(call(port, "POST", "/v1/encrypt", b"y", cold))
        # Every S3 object's context names the object: a new object always needs the KMS.
        assert_s3_service_unavailable(s3_put(setup, bucket, "cold", b"z"))
        assert setup.proxy.delayed_chunks > 0

        assert call(port, "PUT", f"/v1/objects/warm-{run}", b"second", warm)[0] == 201
        assert call(port, "GET", f"/v1/objects/warm-{run}")[::2] == (200, b"second")
        status, _, message = call(port, "POST", "/v1/encrypt", b"stream two", warm)
        assert status == 200
        assert call(port, "GET", f"/v1/objects/cold-{run}")[0] == 404  # the refused write left nothing
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    finally:
        setup.proxy.delay_s = 0.0

    wait_until(lambda: call(port, "PUT", f"/v1/objects/cold-{run}", b"x", context_header(f"cold-{run}"))[0] == 201,
               "the gateway to reach the KMS at its usual speed")
    assert call(port, "POST", "/v1/decrypt", message, warm)[::2] == (200, b"stream two")
    assert s3_put(setup, bucket, "cold", b"z")[0] == 200
    assert s3.get_object(Bucket=bucket, Key="cold")["Body"].read() == b"z"


def test_a_kms_slower_than_usual_but_within_its_deadline_still_serves(setup: SlowKmsSetup) -> None:
    port, run = setup.gateway.port, uuid.uuid4().hex[:8]
    bucket = f"slowish-{run}"
    s3 = s3_client(setup.gateway)
    s3.create_bucket(Bucket=bucket)
    before = setup.proxy.delayed_chunks
    setup.proxy.delay_s = WITHIN_DEADLINE_S
    try:
        context = context_header(f"slowish-{run}")
        assert call(port, "PUT", f"/v1/objects/slowish-{run}", b"late but whole", context)[0] == 201
        status, _, message = call(port, "POST", "/v1/encrypt", b"stream", context_header(f"other-{run}"))
        assert status == 200
        assert s3_put(setup, bucket, "slowish", b"s3 body")[0] == 200
        assert setup.proxy.delayed_chunks > before  # the KMS's answers did come through the delay
    finally:
        setup.proxy.delay_s = 0.0
    assert call(port, "GET", f"/v1/objects/slowish-{run}")[::2] == (200, b"late but whole")
    assert call(port, "POST", "/v1/decrypt", message, context_header(f"other-{run}"))[::2] == (200, b"stream")
    assert s3.get_object(Bucket=bucket, Key="slowish")["Body"].read() == b"s3 body"
