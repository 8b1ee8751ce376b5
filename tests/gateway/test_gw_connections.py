"""Connection limits of a real ``kmsgate serve`` over raw loopback sockets: header, body-read and
idle deadlines, the connection cap, compressed bodies, load shedding and the Server header.

Deadlines are set to a second or two so the tests are short; each test waits for the condition
(the server closing or answering) with a generous bound, never for a fixed time.
"""

from __future__ import annotations

import datetime
import gzip
import http.client
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import REGION, KmsgateServer, start_server

WAIT_S = 60.0  # bound on waiting for the server to act; far above every deadline set here
SLOW_BYTE_INTERVAL_S = 0.2


@pytest.fixture(scope="module")
def deadlines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """Short header and body-read deadlines; an idle deadline far beyond any test's length."""
    server = start_server(tmp_path_factory.mktemp("deadlines") / "data",
                          "--header-timeout", "1", "--body-read-timeout", "1", "--idle-timeout", "600")
    yield server
    server.stop()


def _connect(server: KmsgateServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (status, lower-cased headers, body by Content-Length) read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes the connection (True) or ``WAIT_S`` passes (False)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], deadline - time.monotonic())
        if not readable:
            break
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
    return False


def _get(server: KmsgateServer, sock: socket.socket, path: str = "/healthz") -> int:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    return _read_response(sock)[0]


def _signed_kms_request(server: KmsgateServer, target: str, body: bytes,
                        extra: dict[str, str] | None = None) -> tuple[bytes, bytes]:
    """The head and body of a KMS request signed by botocore as the account root."""
    url = f"{server.endpoint_url}/"
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{target}",
               **(extra or {})}
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(Credentials(server.access_key_id, server.secret_access_key), "kms", REGION).add_auth(request)
    lines = [f"POST / HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), body


def test_a_client_sending_its_headers_slowly_is_closed_at_the_header_deadline(deadlines: KmsgateServer) -> None:
    sock = _connect(deadlines)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    sent, closed = 0, False
    while sent < WAIT_S / SLOW_BYTE_INTERVAL_S and not closed:  # one header byte at a time, never the end
        readable, _, _ = select.select([sock], [], [], SLOW_BYTE_INTERVAL_S)
        if readable:
            status_line = sock.recv(65536).split(b"\r\n", 1)[0]
            assert status_line in (b"HTTP/1.1 408 Request Timeout", b"")
            closed = _closed_by_server(sock) if status_line else True
            break
        try:
            sock.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        sent += 1
    sock.close()
    assert closed, "the connection outlived its header deadline while the headers never ended"


def _sends_headers_slowly_until_closed(sock: socket.socket, start: bytes) -> bool:
    """Send ``start`` then one header byte at a time, never the end; True once the server closed
    the connection (after a 408 or without one)."""
    sock.sendall(start)
    sent = 0
    while sent < WAIT_S / SLOW_BYTE_INTERVAL_S:
        readable, _, _ = select.select([sock], [], [], SLOW_BYTE_INTERVAL_S)
        if readable:
            status_line = sock.recv(65536).split(b"\r\n", 1)[0]
            assert status_line in (b"HTTP/1.1 408 Request Timeout", b"")
            return _closed_by_server(sock) if status_line else True
        try:
            sock.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            return True
        sent += 1
    return False


def test_a_request_after_a_served_one_on_the_same_connection_has_a_header_deadline(
        deadlines: KmsgateServer) -> None:
    sock = _connect(deadlines)
    assert _get(deadlines, sock) == 200  # its headers arrived whole
    closed = _sends_headers_slowly_until_closed(sock, b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    sock.close()
    assert closed, "the second request's headers outlived their deadline"


def test_a_stalled_kms_body_is_answered_408_in_the_aws_shape(deadlines: KmsgateServer) -> None:
    head, body = _signed_kms_request(deadlines, "ListKeys", b'{"Limit": 10}')
    sock = _connect(deadlines)
    sock.sendall(head + body[:3])  # the rest never comes
    status, headers, reply = _read_response(sock)
    sock.close()
    assert status == 408
    assert json.loads(reply)["__type"] == "RequestTimeoutException"


def test_a_stalled_gateway_body_is_answered_408_in_the_gateway_shape(deadlines: KmsgateServer) -> None:
    sock = _connect(deadlines)
    sock.sendall(f"PUT /v1/objects/stalled HTTP/1.1\r\nHost: 127.0.0.1:{deadlines.port}\r\n"
                 f"Authorization: Bearer {deadlines.root_token}\r\nContent-Length: 1000\r\n\r\n".encode()
                 + b"x" * 10)
    status, _, reply = _read_response(sock)
    sock.close()
    assert status == 408
    assert json.loads(reply)["error"] == "RequestTimeout"
    assert _status(deadlines, "GET", "/v1/objects/stalled") == 404  # nothing was stored


def _status(server: KmsgateServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    try:
        connection.request(method, path, body=body,
                           headers={"Authorization": f"Bearer {server.root_token}", **(headers or {})})
        return connection.getresponse().status
    finally:
        connection.close()


def test_compressed_kms_bodies_are_refused_in_the_aws_shape(deadlines: KmsgateServer) -> None:
    head, body = _signed_kms_request(deadlines, "ListKeys", gzip.compress(b'{"Limit": 10}'),
                                     {"Content-Encoding": "gzip"})
    sock = _connect(deadlines)
    sock.sendall(head + body)
    status, _, reply = _read_response(sock)
    sock.close()
    assert status == 415
    assert json.loads(reply)["__type"] == "UnsupportedMediaTypeException"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity, gzip"])
def test_compressed_gateway_bodies_are_refused_and_nothing_is_stored(deadlines: KmsgateServer, coding: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", deadlines.port, timeout=WAIT_S)
    try:
        connection.request("PUT", "/v1/objects/compressed", body=gzip.compress(b"\0" * 1_000_000),
                           headers={"Authorization": f"Bearer {deadlines.root_token}", "Content-Encoding": coding})
        response = connection.getresponse()
        status, reply = response.status, response.read()
    finally:
        connection.close()
    assert status == 415
    assert json.loads(reply)["error"] == "UnsupportedMediaType"
    assert _status(deadlines, "GET", "/v1/objects/compressed") == 404


def test_no_response_names_the_server_software(deadlines: KmsgateServer) -> None:
    seen: list[dict[str, str]] = []
    kms = deadlines.kms_client()
    seen.append(kms.list_keys()["ResponseMetadata"]["HTTPHeaders"])
    for raw in (
        _signed_kms_request(deadlines, "DescribeKey", b'{"KeyId": "alias/none"}')[0]
        + b'{"KeyId": "alias/none"}',  # a KMS error
        f"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"GET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n".encode(),  # 404 from the router
        f"GET /v1/objects/x HTTP/1.1\r\nHost: x\r\n\r\n".encode(),  # 401 from the gateway
        b"NOT A REQUEST\r\n\r\n",  # 400 from aiohttp's parser
    ):
        sock = _connect(deadlines)
        sock.sendall(raw)
        status, headers, _ = _read_response(sock)
        sock.close()
        assert status in (200, 400, 401, 404)
        seen.append(headers)
    assert {h.get("Server", h.get("server")) for h in seen} == {None}
    assert not any("aiohttp" in value or "Python" in value for h in seen for value in h.values())


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """A one-second idle deadline (header deadline far away), and two gateway requests in flight at most."""
    server = start_server(tmp_path_factory.mktemp("idle") / "data",
                          "--idle-timeout", "1", "--header-timeout", "600", "--max-in-flight", "2")
    yield server
    server.stop()


def test_an_idle_keep_alive_connection_is_closed_at_the_idle_deadline(idle: KmsgateServer) -> None:
    sock = _connect(idle)
    assert _get(idle, sock) == 200
    assert _closed_by_server(sock)
    sock.close()


def test_unauthenticated_requests_do_not_take_the_slots_of_authenticated_ones(idle: KmsgateServer) -> None:
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    stalled = []
    for n in range(6):  # three times --max-in-flight: headers only, the signed-over body never sent
        sock = _connect(idle)
        sock.sendall(
            f"PUT /v1/objects/held-{n} HTTP/1.1\r\nHost: 127.0.0.1:{idle.port}\r\nContent-Length: 100\r\n"
            f"X-Amz-Date: {day}T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 "
            f"Credential={idle.access_key_id}/{day}/{REGION}/s3/aws4_request, SignedHeaders=host;x-amz-date, "
            f"Signature={'0' * 64}\r\n\r\n".encode())
        stalled.append(sock)
    try:
        for _ in stalled:  # round trips that the server reads after the stalled headers sent before them
            probe = _connect(idle)
            assert _get(idle, probe) == 200
            probe.close()
        assert _status(idle, "PUT", "/v1/objects/authenticated", body=b"payload") == 201
    finally:
        for sock in stalled:
            sock.close()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    server = start_server(tmp_path_factory.mktemp("capped") / "data", "--max-connections", "2")
    yield server
    server.stop()


def _served_connection(server: KmsgateServer) -> socket.socket:
    """A connection the server serves, once it has room (closed probes may still count for a moment)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        sock = _connect(server)
        try:
            if _get(server, sock) == 200:
                return sock
        except (ConnectionError, OSError):
            pass
        sock.close()
        if time.monotonic() > deadline:
            raise AssertionError("the server never served a new connection")


def test_connections_over_the_cap_are_refused_while_the_first_are_served(capped: KmsgateServer) -> None:
    first, second = _served_connection(capped), _served_connection(capped)
    third = _connect(capped)
    try:
        third.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        try:
            status = _read_response(third)[0]
        except (ConnectionError, OSError):
            status = None  # closed before the 503 could be read: refused all the same
        assert status in (503, None)
        assert _closed_by_server(third)
        assert _get(capped, first) == 200 and _get(capped, second) == 200
    finally:
        third.close()
    first.close()
    _served_connection(capped).close()  # a slot freed is a slot usable again
    second.close()


OBJECT_BYTES = 8 * 1024 * 1024  # far more than the kernel's buffers of a client reading nothing


@pytest.fixture(scope="module")
def send_deadline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """A one-second send deadline; header and idle deadlines far away."""
    server = start_server(tmp_path_factory.mktemp("send") / "data", "--workers", "1", "--send-timeout", "1",
                          "--header-timeout", "600", "--idle-timeout", "600")
    yield server
    server.stop()


def _in_flight(server: KmsgateServer) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("kmsgate_gateway_in_flight_requests "))


def test_a_client_that_stops_reading_its_response_is_cut_at_the_send_deadline(send_deadline: KmsgateServer) -> None:
    auth = {"Authorization": f"Bearer {send_deadline.root_token}"}
    connection = http.client.HTTPConnection("127.0.0.1", send_deadline.port, timeout=WAIT_S)
    connection.request("PUT", "/v1/objects/unread", body=b"u" * OBJECT_BYTES, headers=auth)
    assert connection.getresponse().status == 201
    connection.close()
    idle_in_flight = _in_flight(send_deadline)  # what a scrape alone counts

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", send_deadline.port))
    sock.sendall(f"GET /v1/objects/unread HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: {auth['Authorization']}\r\n\r\n".encode())
    deadline = time.monotonic() + WAIT_S
    seen_in_flight = False
    while time.monotonic() < deadline:  # the GET is in flight, then ends at the send deadline
        in_flight = _in_flight(send_deadline)
        seen_in_flight = seen_in_flight or in_flight > idle_in_flight
        if seen_in_flight and in_flight == idle_in_flight:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the unread GET was still in flight long after the send deadline")
    received = 0
    try:
        while chunk := sock.recv(65536):
            received += len(chunk)
    except ConnectionResetError:
        pass
    sock.close()
    assert received < OBJECT_BYTES  # the connection was cut, not the body finished
