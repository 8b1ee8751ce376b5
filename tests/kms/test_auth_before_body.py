"""The KMS API answers a request whose credentials fail from its headers, without reading its body.

Each request is sent over a raw socket as headers only, declaring ``Content-Length: 1000`` and
never sending the body: a server that read the body before authenticating would wait for it.
"""

from __future__ import annotations

import datetime
import json
import socket
from typing import Any

import pytest

HEADERS_ONLY_TIMEOUT_S = 30  # generous: the answer is due at once, the body never comes


def headers_only(port: int, authorization: str, amz_date: str) -> tuple[int, dict[str, Any]]:
    """Send a KMS request's headers with Content-Length: 1000 and no body; the status and JSON answer."""
    head = (
        "POST / HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-amz-json-1.1\r\n"
        "X-Amz-Target: TrentService.ListKeys\r\n"
        f"X-Amz-Date: {amz_date}\r\n"
        f"Authorization: {authorization}\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=HEADERS_ONLY_TIMEOUT_S) as sock:
        sock.sendall(head.encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection without an answer"
            received += chunk
        status_line, _, rest = received.partition(b"\r\n")
        header_block, _, body = rest.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in header_block.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
    return int(status_line.split()[1]), json.loads(body)


def now_stamp(days: int = 0) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def authorization(access_key_id: str, scope_day: str, region: str = "us-east-1", service: str = "kms") -> str:
    return (f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope_day}/{region}/{service}/aws4_request, "
            f"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={'0' * 64}")


def test_an_unknown_access_key_is_refused_before_the_body_is_read(kmsgate_server: Any) -> None:
    stamp = now_stamp()
    status, document = headers_only(kmsgate_server.port, authorization("AKIANOBODY0000000000", stamp[:8]), stamp)
    assert (status, document["__type"]) == (400, "UnrecognizedClientException")


@pytest.mark.parametrize("region, service, days", [("eu-west-1", "kms", 0), ("us-east-1", "s3", 0),
                                                    ("us-east-1", "kms", -1)],
                         ids=["region", "service", "stale-date"])
def test_a_bad_scope_or_date_is_refused_before_the_body_is_read(kmsgate_server: Any, region: str, service: str,
                                                                 days: int) -> None:
    stamp = now_stamp(days)
    value = authorization(kmsgate_server.access_key_id, stamp[:8], region, service)
    status, document = headers_only(kmsgate_server.port, value, stamp)
    assert (status, document["__type"]) == (400, "InvalidSignatureException")
