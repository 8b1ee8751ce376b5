"""A real ``kmsgate serve --kms-endpoint`` gateway whose KMS (another real ``kmsgate serve``) is
frozen with SIGSTOP, then killed and restarted: the KMS deadline (``--kms-timeout``) fires, so
a cold request is answered 503 with ``Retry-After`` instead of hanging; writes and reads whose
data key is cached keep working (``/v1/encrypt`` and ``PUT``/``GET /v1/objects``); and service
resumes by itself once the KMS answers again (SIGCONT, restart)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.conftest import start_server

from .conftest import call, context_header, wait_until

KMS_TIMEOUT_S = "1"


def assert_kms_unavailable(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 503, body
    assert headers.get("Retry-After") == "1"
    assert json.loads(body)["error"] == "KMSUnavailable"


def test_the_gateway_rides_out_a_frozen_then_restarted_kms(tmp_path: Path) -> None:
    kms_server: Any = start_server(tmp_path / "kms")
    gateway: Any = None
    try:
        gateway = start_server(
            tmp_path / "gateway", "--kms-endpoint", kms_server.endpoint_url, "--kms-timeout", KMS_TIMEOUT_S,
            AWS_ACCESS_KEY_ID=kms_server.access_key_id, AWS_SECRET_ACCESS_KEY=kms_server.secret_access_key,
            AWS_DEFAULT_REGION=kms_server.region)
        port = gateway.port
        warm = context_header("warm")
        assert call(port, "PUT", "/v1/objects/warm", b"first", warm)[0] == 201
        assert call(port, "GET", "/v1/objects/warm")[::2] == (200, b"first")
        assert call(port, "POST", "/v1/encrypt", b"stream one", warm)[0] == 200

        os.killpg(kms_server.process.pid, signal.SIGSTOP)  # the supervisor and its worker
        try:
            assert_kms_unavailable(call(port, "PUT", "/v1/objects/cold", b"x", context_header("cold")))
            assert_kms_unavailable(call(port, "POST", "/v1/encrypt", b"y", context_header("cold")))
            assert call(port, "PUT", "/v1/objects/warm", b"second", warm)[0] == 201
            assert call(port, "GET", "/v1/objects/warm")[::2] == (200, b"second")
            status, _, message = call(port, "POST", "/v1/encrypt", b"stream two", warm)
            assert status == 200
            assert call(port, "GET", "/v1/objects/cold")[0] == 404  # the refused write left nothing
        finally:
            os.killpg(kms_server.process.pid, signal.SIGCONT)

        wait_until(lambda: call(port, "PUT", "/v1/objects/cold", b"x", context_header("cold"))[0] == 201,
                   "the gateway to reach the thawed KMS")
        assert call(port, "POST", "/v1/decrypt", message, warm)[::2] == (200, b"stream two")

        kms_server.kill()
        assert_kms_unavailable(call(port, "PUT", "/v1/objects/colder", b"z", context_header("colder")))
        kms_server.start()
        wait_until(lambda: call(port, "PUT", "/v1/objects/colder", b"z", context_header("colder"))[0] == 201,
                   "the gateway to reach the restarted KMS")
        assert call(port, "GET", "/v1/objects/colder")[::2] == (200, b"z")
    finally:
        if gateway is not None:
            gateway.stop()
        kms_server.stop()
