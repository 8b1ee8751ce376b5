"""Helpers for the fault tests: a real ``kmsgate serve`` killed, starved of disk or cut off, and
a raw request body left half sent."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

from tests.conftest import ROOT_TOKEN

WAIT_S = 30.0


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``condition`` until it holds (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def start_half_sent_put(port: int, path: str, declared: int, sent: int,
                        headers: dict[str, str] | None = None) -> socket.socket:
    """Open a ``PUT`` of ``declared`` bytes to ``path`` and send only ``sent`` of them: the
    request stays in flight, its object partly written, until the socket closes. ``headers``
    replace the gateway's bearer token (a signed S3 request's own)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    fields = headers if headers is not None else {"Authorization": f"Bearer {ROOT_TOKEN}",
                                                  "Content-Type": "application/octet-stream"}
    fields = {"Host": f"127.0.0.1:{port}", **fields, "Content-Length": str(declared)}
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    sock.sendall(head.encode())
    block = b"\xa5" * (256 * 1024)
    remaining = sent
    while remaining > 0:
        sock.sendall(block[:remaining])
        remaining -= len(block)
    return sock


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def signed_s3_put_headers(server: Any, s3_port: int, path: str, declared: int) -> dict[str, str]:
    """SigV4 headers (unsigned payload) for ``PUT path`` of ``declared`` bytes on the S3 API."""
    request = AWSRequest(method="PUT", url=f"http://127.0.0.1:{s3_port}{path}",
                         headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(declared)})
    S3SigV4Auth(server.boto_session().get_credentials(), "s3", server.region).add_auth(request)
    return {k: v for k, v in request.headers.items() if k != "Content-Length"}
