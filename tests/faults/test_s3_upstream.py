"""The S3 upstream of ``--storage s3`` failing: a real ``kmsgate serve`` writes to moto's S3
server through a small proxy the test runs on loopback, which answers 500 or 503 where told.
The client gets an error in the S3 front's shape (500 InternalError), an upstream multipart upload cut by a failed
part is aborted, nothing partial is visible, and a burst of failures leaks no descriptor."""

from __future__ import annotations

import asyncio
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

from tests.conftest import free_port, start_server
from tests.s3front.conftest import s3_client

from .conftest import wait_until

UPSTREAM_ACCESS_KEY_ID = "AKIAUPSTREAMFAULTS01"
UPSTREAM_SECRET_ACCESS_KEY = "upstream-fault-secret-0123456789abcdefgh"
FAILURE_XML = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>injected</Message></Error>"
BURST = 3  # failures per burst; each costs the upstream client's retries with their back-off


@dataclass
class FailingProxy:
    """Forwards every request to ``upstream``, except those ``fail`` picks, answered ``status``."""

    upstream: str
    fail: Callable[[web.Request], bool] = lambda request: False
    status: int = 500
    seen: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path_qs))
        if self.fail(request):
            return web.Response(status=self.status, body=FAILURE_XML, content_type="application/xml")
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
    runner = web.AppRunner(web.Application(handler_args={"max_field_size": 65536}))

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


def test_a_failing_upstream_is_an_s3_error_aborts_its_upload_shows_nothing_and_leaks_nothing(
        proxy: FailingProxy, tmp_path: Path) -> None:
    bucket = f"kmsgate-upstream-{uuid.uuid4().hex[:8]}"
    upstream = upstream_client(proxy.upstream)
    upstream.create_bucket(Bucket=bucket)
    server: Any = start_server(tmp_path / "data", "--s3-port", str(free_port()), "--storage", "s3",
                               "--s3-bucket", bucket, "--s3-endpoint-url", proxy.url, "--s3-region", "us-east-1",
                               AWS_ACCESS_KEY_ID=UPSTREAM_ACCESS_KEY_ID,
                               AWS_SECRET_ACCESS_KEY=UPSTREAM_SECRET_ACCESS_KEY, AWS_CONFIG_FILE=os.devnull,
                               AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="front")
        s3.put_object(Bucket="front", Key="kept", Body=b"before the failures")
        [worker] = [int(pid) for pid in
                    Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()]

        # A large PUT whose second upstream part fails.
        proxy.fail = lambda request: request.query.get("partNumber") == "2"
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket="front", Key="large", Body=os.urandom(20 * 1024 * 1024))
        # The S3 front's shape for a storage failure: 500 InternalError, as S3 itself answers.
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert refused.value.response["Error"]["Code"] == "InternalError"
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
            failing = s3_client(server)
            for i in range(BURST):
                with pytest.raises(ClientError) as failed:
                    failing.put_object(Bucket="front", Key=f"burst-{burst}-{i}", Body=b"refused")
                assert failed.value.response["Error"]["Code"] == "InternalError"
            failing.close()
            if burst == 0:
                settled = open_fds(worker)
            else:
                wait_until(lambda: open_fds(worker) <= settled, "the worker's descriptors to settle", timeout_s=20)
        proxy.fail = lambda request: False
        s3 = s3_client(server)

        assert s3.get_object(Bucket="front", Key="kept")["Body"].read() == b"before the failures"
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="front").get("Contents", [])]
        assert not any(key.startswith("burst-") or key == "large" for key in listed)
    finally:
        server.stop()
