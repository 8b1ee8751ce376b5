"""A stopping server lets KMS requests in flight finish: the KMS route counts itself in the
worker's drain, and the application runs without middleware."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from kmsgate.config import Config
from kmsgate.web.inflight import IN_FLIGHT
from kmsgate.web.app import create_app

from .helpers import signed_post

# aiohttp itself waits 1 s for a handler at shutdown; the body below takes longer than that to arrive.
PIECES = 10  # 0.2 s apart: about 1.8 s from the first byte to the last


def test_sigterm_lets_a_kms_request_still_arriving_finish(fresh_server: Any) -> None:
    plaintext = bytes(range(256)) * 16
    body = json.dumps({"KeyId": "alias/kmsgate-default",
                       "Plaintext": base64.b64encode(plaintext).decode("ascii")}).encode()
    outcome: dict[str, Any] = {}

    def post() -> None:
        try:
            outcome["reply"] = signed_post(fresh_server, body, "TrentService.Encrypt", pieces=PIECES)
        except OSError as exc:  # the connection was closed under the request
            outcome["reply"] = (None, repr(exc))

    sender = threading.Thread(target=post)
    sender.start()
    time.sleep(0.3)  # the request has started and its body is still arriving
    process = fresh_server.process
    process.send_signal(signal.SIGTERM)
    sender.join(30)
    assert process.wait(30) == 0
    status, document = outcome["reply"]
    assert status == 200, document
    assert base64.b64decode(document["CiphertextBlob"])


def test_the_application_counts_requests_without_middleware(tmp_path: Path) -> None:
    app = create_app(Config(data_dir=tmp_path, port=0))
    assert IN_FLIGHT in app
    assert not app.middlewares
