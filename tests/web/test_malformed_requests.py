"""Requests that are not well-formed HTTP/1.1 are answered in their front's error shape, and neither
the answer nor the server log quotes them (a malformed ``Authorization`` line holds a secret).

Driven with raw bytes over loopback against a real ``kmsgate serve``: a client library would refuse
to send these requests."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KmsgateServer, free_port, start_server

SECRET = "Sup3rSecretTokenThatMustNeverBeLogged"
TOO_LONG = "p" * 100_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    s3_port = free_port()
    started = start_server(tmp_path_factory.mktemp("malformed") / "data", "--s3-port", str(s3_port))
    started.s3_port = s3_port  # type: ignore[attr-defined]
    yield started
    started.stop()


def send(port: int, request: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as raw bytes and parse the one answer the server sends before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode("latin-1"))
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = bytes(answer).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split(" ")[1]), headers, body


def with_bad_token_line(request_line: str) -> str:
    """A request whose Authorization line carries a secret and a control character aiohttp refuses."""
    return f"{request_line}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SECRET}\x01\r\nContent-Length: 0\r\n\r\n"


def with_long_header(request_line: str) -> str:
    return f"{request_line}\r\nHost: 127.0.0.1\r\nX-Padding: {TOO_LONG}\r\nContent-Length: 0\r\n\r\n"


def test_a_malformed_kms_request_is_a_kms_validation_error_that_quotes_nothing(server: KmsgateServer) -> None:
    status, headers, body = send(server.port, with_bad_token_line("POST / HTTP/1.1"))
    assert status == 400
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-requestid"]
    assert json.loads(body) == {"__type": "ValidationException",
                                "message": "The request is not well-formed HTTP/1.1."}


def test_an_over_long_header_on_the_kms_port_is_a_kms_validation_error(server: KmsgateServer) -> None:
    status, _, body = send(server.port, with_long_header("POST / HTTP/1.1"))
    assert status == 400
    assert json.loads(body) == {"__type": "ValidationException",
                                "message": "A request line or header field is longer than 8190 bytes."}


@pytest.mark.parametrize("request_of", [with_bad_token_line, with_long_header])
def test_a_malformed_v1_request_is_a_gateway_json_error(server: KmsgateServer, request_of: object) -> None:
    assert callable(request_of)
    status, headers, body = send(server.port, request_of("PUT /v1/objects/malformed HTTP/1.1"))
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    document = json.loads(body)
    assert set(document) == {"error", "message"} and document["error"] == "MalformedRequest"
    assert SECRET not in document["message"] and "ppp" not in document["message"]


@pytest.mark.parametrize(("request_of", "code"), [(with_bad_token_line, "InvalidRequest"),
                                                  (with_long_header, "RequestHeaderSectionTooLarge")])
def test_a_malformed_s3_request_is_an_s3_error_document(server: KmsgateServer, request_of: object, code: str) -> None:
    assert callable(request_of)
    status, headers, body = send(server.s3_port, request_of("PUT /bucket/key HTTP/1.1"))  # type: ignore[attr-defined]
    assert status == 400
    assert headers["content-type"] == "application/xml"
    assert headers["x-amz-request-id"]
    error = ET.fromstring(body)
    assert error.tag == "Error" and error.findtext("Code") == code
    assert SECRET.encode() not in body


def test_no_answer_and_no_log_line_quotes_a_malformed_request(server: KmsgateServer, tmp_path: Path) -> None:
    answers = [send(server.port, with_bad_token_line("POST / HTTP/1.1")),
               send(server.port, with_bad_token_line("GET /v1/objects/x HTTP/1.1")),
               send(server.s3_port, with_bad_token_line("GET /bucket/key HTTP/1.1"))]  # type: ignore[attr-defined]
    assert all(status == 400 for status, _, _ in answers)
    assert not any(SECRET.encode() in body for _, _, body in answers)
    log = server.log_text()
    assert "refused a malformed request" in log  # the refusals were logged, as one line each
    assert SECRET not in log
    assert "Traceback" not in log
