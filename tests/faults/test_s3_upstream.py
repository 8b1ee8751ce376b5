"""The S3 upstream of ``--storage s3`` failing: a real ``kmsgate serve`` writes to moto's S3
server through a small proxy the test runs on loopback, which answers 500 or 503 where told, or
holds requests unanswered (a frozen upstream) where told. The client gets 502 for an upstream
error, 504 once the storage deadline (``--s3-timeout``) passed for a frozen one, in each front's
shape (the S3 API's XML error document, ``/v1``'s ``{"error","message"}``); an upstream multipart
upload cut by a failed or stalled part is aborted, nothing partial is visible, a burst of
failures leaks no descriptor, and service resumes by itself once the upstream answers again."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from tests.conftest import ROOT_TOKEN, KmsgateServer, free_port, start_server
from tests.s3front.conftest import s3_client

from .conftest import wait_until

ONE_ATTEMPT = {"total_max_attempts": 1, "mode": "standard"}  # each failure reaches the test once

UPSTREAM_ACCESS_KEY_ID = "AKIAUPSTREAMFAULTS01"
UPSTREAM_SECRET_ACCESS_KEY = "upstream-fault-secret-0123456789abcdefgh"
FAILURE_XML = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>injected</Message></Error>"
BURST = 3  # failures per burst; each costs the upstream client's retries with their back-off
STORAGE_TIMEOUT_S = "1"  # --s3-timeout of the frozen-upstream test
STREAMED_BODY = b"s" * (512 * 1024)  # above the s3 backend's buffered size: its bytes stream upstream


@dataclass
class FailingProxy:
    """Forwards every request to ``upstream``, except those ``fail`` picks, answered ``status``,
    and those ``hold`` picks, which wait unforwarded while it picks them (a frozen upstream: the
    connection is open, nothing answers); a held request whose client left is never forwarded."""

    upstream: str
    fail: Callable[[web.Request], bool] = lambda request: False
    hold: Callable[[web.Request], bool] = lambda request: False
    status: int = 500
    seen: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path_qs))
        if self.fail(request):
            return web.Response(status=self.status, body=FAILURE_XML, content_type="application/xml")
        while self.hold(request):  # cancelled when the client closes the connection
            await asyncio.sleep(0.02)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length",
                                                                                  "transfer-encoding")}
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.request(request.method, self.upstream + request.path_qs, data=body,
                                       headers=headers) as answer:
                payload = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length",
                                                                                     "transfer-encoding")}
                return web.Response(status=answer.status, body=payload, headers=kept)


@pytest.fixture
def proxy() -> Iterator[FailingProxy]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    running = FailingProxy(upstream=f"http://{host}:{port}")
    loop = asyncio.new_event_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # kept bound and handed to the site: the port is never reused
    running.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    # Parts of up to 16 MiB pass (aiohttp's default refuses bodies over 1 MiB with a 413).
    runner = web.AppRunner(web.Application(client_max_size=16 * 1024 * 1024, handler_args={"max_field_size": 65536}),
                           handler_cancellation=True)

    async def serve() -> None:
        app = runner.app
        app.router.add_route("*", "/{tail:.*}", running.handle)
        await runner.setup()
        await web.SockSite(runner, listener).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(30)
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        moto.stop()


def upstream_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=UPSTREAM_ACCESS_KEY_ID, aws_secret_access_key=UPSTREAM_SECRET_ACCESS_KEY)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def start_gateway(proxy: FailingProxy, data_dir: Path, bucket: str, *args: str) -> KmsgateServer:
    """A ``kmsgate serve --storage s3`` writing to ``bucket`` upstream through ``proxy``."""
    upstream_client(proxy.upstream).create_bucket(Bucket=bucket)
    return start_server(data_dir, "--s3-port", str(free_port()), "--storage", "s3",
                        "--s3-bucket", bucket, "--s3-endpoint-url", proxy.url, "--s3-region", "us-east-1", *args,
                        AWS_ACCESS_KEY_ID=UPSTREAM_ACCESS_KEY_ID,
                        AWS_SECRET_ACCESS_KEY=UPSTREAM_SECRET_ACCESS_KEY, AWS_CONFIG_FILE=os.devnull,
                        AWS_SHARED_CREDENTIALS_FILE=os.devnull)


def only_worker(server: KmsgateServer) -> int:
    assert server.process is not None
    pid = server.process.pid
    [worker] = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return worker


def v1_put(server: KmsgateServer, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """``PUT /v1/objects/<name>``: its status and its JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        connection.request("PUT", f"/v1/objects/{name}", body=body, headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def assert_s3_error(refused: pytest.ExceptionInfo[ClientError], status: int, code: str) -> None:
    """An S3 error document (botocore parsed its XML) with ``status`` and ``code``."""
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert refused.value.response["Error"]["Code"] == code


def assert_v1_error(answer: tuple[int, dict[str, Any]], status: int, code: str) -> None:
    assert answer[0] == status, answer
    assert set(answer[1]) == {"error", "message"} and answer[1]["error"] == code


def test_a_failing_upstream_is_a_502_aborts_its_upload_shows_nothing_and_leaks_nothing(
        proxy: FailingProxy, tmp_path: Path) -> None:
    bucket = f"kmsgate-upstream-{uuid.uuid4().hex[:8]}"
    upstream = upstream_client(proxy.upstream)
    server = start_gateway(proxy, tmp_path / "data", bucket)
    try:
        s3 = s3_client(server, retries=ONE_ATTEMPT)
        s3.create_bucket(Bucket="front")
        s3.put_object(Bucket="front", Key="kept", Body=b"before the failures")
        worker = only_worker(server)

        # A large PUT whose second upstream part fails.
        proxy.fail = lambda request: request.query.get("partNumber") == "2"
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket="front", Key="large", Body=os.urandom(20 * 1024 * 1024))
        # The S3 front's shape for an upstream failure: 502 (S3 has no code of its own for it).
        assert_s3_error(refused, 502, "BadGateway")
        assert any("partNumber=2" in path for _, path in proxy.seen)  # the first part went through
        assert any(method == "DELETE" and "uploadId=" in path for method, path in proxy.seen)
        assert upstream.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        with pytest.raises(ClientError):
            s3.head_object(Bucket="front", Key="large")

        # Bursts of small PUTs the upstream refuses. The first one lets connection pools reach
        # their size; after each, with the test's own connections closed and a settle, the worker
        # holds no more descriptors than after the first: a leak would grow with every failure.
        proxy.fail, proxy.status = (lambda request: request.method == "PUT"), 503
        s3.close()
        settled = 0
        for burst in range(2):
            failing = s3_client(server, retries=ONE_ATTEMPT)
            for i in range(BURST):
                with pytest.raises(ClientError) as failed:
                    failing.put_object(Bucket="front", Key=f"burst-{burst}-{i}", Body=b"refused")
                assert_s3_error(failed, 502, "BadGateway")
            failing.close()
            if burst == 0:
                settled = open_fds(worker)
            else:
                wait_until(lambda: open_fds(worker) <= settled, "the worker's descriptors to settle", timeout_s=20)
        assert_v1_error(v1_put(server, "refused", b"refused"), 502, "StorageError")
        proxy.fail = lambda request: False
        s3 = s3_client(server, retries=ONE_ATTEMPT)

        assert s3.get_object(Bucket="front", Key="kept")["Body"].read() == b"before the failures"
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="front").get("Contents", [])]
        assert not any(key.startswith("burst-") or key == "large" for key in listed)
        assert v1_put(server, "accepted", b"accepted")[0] == 201
    finally:
        server.stop()


def test_a_frozen_upstream_is_a_504_after_the_storage_deadline_aborts_its_upload_leaks_nothing_and_thaws(
        proxy: FailingProxy, tmp_path: Path) -> None:
    bucket = f"kmsgate-frozen-{uuid.uuid4().hex[:8]}"
    upstream = upstream_client(proxy.upstream)
    server = start_gateway(proxy, tmp_path / "data", bucket, "--s3-timeout", STORAGE_TIMEOUT_S)
    try:
        s3 = s3_client(server, retries=ONE_ATTEMPT)
        s3.create_bucket(Bucket="front")
        s3.put_object(Bucket="front", Key="kept", Body=b"before the freeze")
        worker = only_worker(server)

        # Every write stalls: no answer within the deadline on any attempt.
        proxy.hold = lambda request: request.method == "PUT"
        with pytest.raises(ClientError) as stalled:
            s3.put_object(Bucket="front", Key="stalled", Body=b"never answered")
        assert_s3_error(stalled, 504, "GatewayTimeout")
        assert_v1_error(v1_put(server, "stalled", b"never answered"), 504, "StorageTimeout")

        # A large PUT whose second part stalls: the upload is aborted (the abort itself answers).
        proxy.hold = lambda request: request.query.get("partNumber") == "2"
        with pytest.raises(ClientError) as stalled:
            s3.put_object(Bucket="front", Key="large", Body=os.urandom(12 * 1024 * 1024))
        assert_s3_error(stalled, 504, "GatewayTimeout")
        assert any("partNumber=2" in path for _, path in proxy.seen)  # the first part went through
        assert any(method == "DELETE" and "uploadId=" in path for method, path in proxy.seen)
        assert upstream.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

        # Bursts of PUTs whose object bytes stall, large enough to stream upstream (sent once, not
        # retried: the burst stays short): as with refused ones, descriptors settle back (see above).
        proxy.hold = lambda request: request.method == "PUT" and f"/{bucket}/front/" in request.path
        s3.close()
        settled = 0
        for burst in range(2):
            stalling = s3_client(server, retries=ONE_ATTEMPT)
            for i in range(BURST):
                with pytest.raises(ClientError) as stalled:
                    stalling.put_object(Bucket="front", Key=f"burst-{burst}-{i}", Body=STREAMED_BODY)
                assert_s3_error(stalled, 504, "GatewayTimeout")
            stalling.close()
            if burst == 0:
                settled = open_fds(worker)
            else:
                wait_until(lambda: open_fds(worker) <= settled, "the worker's descriptors to settle", timeout_s=20)

        proxy.hold = lambda request: False  # thawed
        s3 = s3_client(server, retries=ONE_ATTEMPT)
        wait_until(lambda: v1_put(server, "thawed", b"thawed")[0] == 201, "writes to resume after the thaw")
        s3.put_object(Bucket="front", Key="thawed", Body=b"after the thaw")
        assert s3.get_object(Bucket="front", Key="thawed")["Body"].read() == b"after the thaw"
        assert s3.get_object(Bucket="front", Key="kept")["Body"].read() == b"before the freeze"
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="front").get("Contents", [])]
        assert sorted(listed) == ["kept", "thawed"]
        with pytest.raises(ClientError):
            s3.head_object(Bucket="front", Key="large")
    finally:
        server.stop()
