"""The KMS API and the gateway's fronts go through one request wrapper: one ``--max-in-flight``
count, one drain, one metrics family and one access-log line shape, driven over loopback."""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.web.exchange import LOAD, Load
from kmsgate.web.inflight import IN_FLIGHT
from kmsgate.web.kms_api import KMS_API, KmsApi, TrustingAuthenticator, add_kms_route

from tests.conftest import REGION, KmsgateServer, start_server

WAIT_S = 20.0
ACCOUNT_ID = "111122223333"


def _until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


def _scrape(server: KmsgateServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    try:
        connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    finally:
        connection.close()
    text = reply.split(b"\r\n\r\n", 1)[1].decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _held_gateway_put(server: KmsgateServer) -> socket.socket:
    """An authenticated ``/v1`` PUT whose body never finishes: it holds a slot until closed."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    sock.sendall(f"PUT /v1/objects/held HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                 f"Authorization: Bearer {server.root_token}\r\nContent-Length: 1000\r\n\r\n".encode() + b"x" * 10)
    return sock


def _audit_entries(server: KmsgateServer) -> list[dict[str, Any]]:
    path = server.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _access_lines(server: KmsgateServer) -> list[dict[str, Any]]:
    lines = []
    for line in server.log_text().splitlines():
        if line.startswith("{") and '"kmsgate.gateway.access"' in line:
            lines.append(json.loads(line))
    return lines


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """One authenticated request at a time, of any front."""
    server = start_server(tmp_path_factory.mktemp("one-slot") / "data", "--max-in-flight", "1")
    yield server
    server.stop()


def test_a_kms_request_beyond_max_in_flight_is_shed_as_throttling_and_audited(one_slot: KmsgateServer) -> None:
    kms = one_slot.kms_client()
    held = _held_gateway_put(one_slot)
    try:
        # The held PUT and this scrape itself: the gateway's request counts in the one Load.
        _until(lambda: _scrape(one_slot)[("kmsgate_gateway_in_flight_requests", ())] >= 2, "the PUT in flight")
        with pytest.raises(ClientError) as refused:
            kms.list_keys()
    finally:
        held.close()
    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ThrottlingException"
    assert _scrape(one_slot)[("kmsgate_gateway_rejected_requests_total", (("reason", "in_flight"),))] >= 1
    request_id = error["ResponseMetadata"]["RequestId"]
    entry = _until(lambda: [e for e in _audit_entries(one_slot) if e["request_id"] == request_id],
                   "the audit entry of the shed request")[0]
    assert entry["operation"] == "ListKeys" and entry["error_code"] == "ThrottlingException"
    assert entry["principal_arn"] == f"arn:aws:iam::{one_slot.account_id}:root"

    def served() -> bool:  # the slot is free once the server has seen the PUT's connection close
        try:
            return isinstance(kms.list_keys()["Keys"], list)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ThrottlingException"
            return False

    _until(served, "a KMS request served once the slot is free")


def test_kms_requests_still_authenticating_take_no_slot(one_slot: KmsgateServer) -> None:
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    stalled = []
    try:
        for _ in range(3):  # signed headers, a body promised and never sent: still authenticating
            sock = socket.create_connection(("127.0.0.1", one_slot.port), timeout=WAIT_S)
            sock.sendall(
                f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{one_slot.port}\r\nContent-Length: 100\r\n"
                f"X-Amz-Target: TrentService.ListKeys\r\nX-Amz-Date: {day}T000000Z\r\n"
                f"Authorization: AWS4-HMAC-SHA256 Credential={one_slot.access_key_id}/{day}/{REGION}/kms/"
                f"aws4_request, SignedHeaders=host;x-amz-date, Signature={'0' * 64}\r\n\r\n".encode())
            stalled.append(sock)
        # Each stalled request is being read by now: the in-flight gauge has its drain count, not these.
        _until(lambda: _scrape(one_slot)[("kmsgate_gateway_in_flight_requests", ())] == 1, "only the scrape counted")
        assert isinstance(one_slot.kms_client().list_keys()["Keys"], list)
    finally:
        for sock in stalled:
            sock.close()


def test_the_access_line_of_a_kms_request_has_the_gateways_fields(one_slot: KmsgateServer) -> None:
    before = len(_access_lines(one_slot))
    one_slot.kms_client().list_keys()
    connection = socket.create_connection(("127.0.0.1", one_slot.port), timeout=WAIT_S)
    connection.sendall(f"GET /v1/objects/absent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       f"Authorization: Bearer {one_slot.root_token}\r\n\r\n".encode())
    while connection.recv(65536):
        pass
    connection.close()
    lines = _until(lambda: (found := _access_lines(one_slot)[before:]) and len(found) >= 2 and found,
                   "the access lines of both requests")
    kms_line = next(line for line in lines if line["route"] == "kms")
    gateway_line = next(line for line in lines if line["path"] == "/v1/objects/absent")
    assert set(kms_line) == set(gateway_line)
    assert kms_line["method"] == "POST" and kms_line["path"] == "/" and kms_line["status"] == 200
    assert kms_line["principal"] == f"arn:aws:iam::{one_slot.account_id}:root"
    assert kms_line["error"] is None and kms_line["bytes_in"] > 0 and kms_line["bytes_out"] > 0
    assert one_slot.secret_access_key not in one_slot.log_text()


def test_kms_requests_are_counted_in_the_request_metrics_under_route_kms(one_slot: KmsgateServer) -> None:
    key = ("kmsgate_gateway_requests_total", (("method", "POST"), ("route", "kms"), ("status", "200")))
    before = _scrape(one_slot).get(key, 0.0)
    one_slot.kms_client().list_keys()
    _until(lambda: _scrape(one_slot).get(key, 0.0) == before + 1, "the KMS request counted")


def _post_signed(connection: http.client.HTTPConnection, server: KmsgateServer, target: str, document: dict[str, Any],
                 secret: str) -> tuple[int, str]:
    body = json.dumps(document).encode()
    request = AWSRequest(method="POST", url=f"{server.endpoint_url}/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
    SigV4Auth(Credentials(server.access_key_id, secret), "kms", server.region).add_auth(request)
    connection.request("POST", "/", body=body, headers=dict(request.headers.items()))
    response = connection.getresponse()
    response.read()
    return response.status, response.headers["x-amzn-RequestId"]


def test_a_refused_request_is_audited_without_the_key_of_the_one_before_it_on_its_connection(
        one_slot: KmsgateServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", one_slot.port, timeout=WAIT_S)
    try:  # one keep-alive connection: an Encrypt under a key, then a request that fails authentication
        status, served_id = _post_signed(connection, one_slot, "TrentService.Encrypt",
                                         {"KeyId": "alias/kmsgate-default", "Plaintext": "AAAA"},
                                         one_slot.secret_access_key)
        assert status == 200
        status, refused_id = _post_signed(connection, one_slot, "TrentService.Encrypt",
                                          {"KeyId": "alias/kmsgate-default", "Plaintext": "AAAA"}, "wrong" * 8)
        assert status == 400
    finally:
        connection.close()
    entries = _until(lambda: (found := {e["request_id"]: e for e in _audit_entries(one_slot)})
                     and served_id in found and refused_id in found and found, "both audit entries")
    assert entries[served_id]["key_arn"].startswith("arn:aws:kms:")
    assert entries[refused_id]["error_code"] == "InvalidSignatureException"
    assert entries[refused_id]["key_arn"] is None and entries[refused_id]["principal_arn"] is None


class HeldService:
    """A KMS service whose ListKeys waits until released (a fake the test owns)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def list_keys(self, *, caller: Any, limit: int | None = None, marker: str | None = None) -> dict[str, Any]:
        self.entered.set()
        await self.release.wait()
        return {"keys": [], "truncated": False}


@pytest.fixture
async def held_kms() -> AsyncIterator[tuple[str, HeldService, web.Application]]:
    service = HeldService()
    app = web.Application()
    app[KMS_API] = KmsApi(service, TrustingAuthenticator(ACCOUNT_ID))
    app[LOAD] = Load(max_in_flight=1, metrics=GatewayMetrics())
    add_kms_route(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/", service, app
    service.release.set()
    await runner.cleanup()


async def _list_keys(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    headers = {"X-Amz-Target": "TrentService.ListKeys", "Content-Type": "application/x-amz-json-1.1"}
    async with session.post(url, data=b"{}", headers=headers) as response:
        return response.status, json.loads(await response.read())


async def test_a_kms_request_in_its_service_call_holds_a_slot_and_the_drain(
        held_kms: tuple[str, HeldService, web.Application]) -> None:
    url, service, app = held_kms
    async with aiohttp.ClientSession() as session:
        first = asyncio.ensure_future(_list_keys(session, url))
        await asyncio.wait_for(service.entered.wait(), WAIT_S)
        status, document = await _list_keys(session, url)
        assert (status, document["__type"]) == (400, "ThrottlingException")
        drained = asyncio.ensure_future(app[IN_FLIGHT].wait(WAIT_S))
        await asyncio.sleep(0)  # the drain has started waiting
        assert not drained.done()
        service.release.set()
        assert await asyncio.wait_for(first, WAIT_S) == (200, {"Keys": [], "Truncated": False})
        await asyncio.wait_for(drained, WAIT_S)
