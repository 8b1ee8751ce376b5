"""Helpers for the fault tests: a real ``kmsgate serve`` killed, starved of disk or cut off, a
raw request body left half sent, and a TCP proxy that slows what a server answers."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

from tests.conftest import ROOT_TOKEN

WAIT_S = 30.0



CLIENT_TIMEOUT_S = 60  # far above every deadline the fault tests set: an error before it proves a deadline fired


def context_header(tenant: str) -> dict[str, str]:
    encoded = base64.b64encode(json.dumps({"tenant": tenant}).encode()).decode()
    return {"x-amz-server-side-encryption-context": encoded}


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One ``/v1`` request as the root token: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT_S)
    try:
        connection.request(method, path, body=body,
                           headers={"Authorization": f"Bearer {ROOT_TOKEN}", **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()

def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``condition`` until it holds (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)



def kill_while_clients_run(server: Any, client: Callable[[int, threading.Event], None], clients: int,
                           time_to_kill: Callable[[list[BaseException]], bool], what: str) -> None:
    """Run ``client(n, stop)`` in ``clients`` threads against ``server``; once ``time_to_kill(failures)``
    holds, set ``stop`` and SIGKILL the server (clients take errors after ``stop`` as the kill), then join
    them. Raises if a client failed or outlived the join."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            client(n, stop)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: time_to_kill(failures), what, 120)
    finally:
        stop.set()
        server.kill()
        deadline = time.monotonic() + 60
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    assert not failures, failures
    assert not any(t.is_alive() for t in threads)


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


class DelayingProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream_port``: each chunk the upstream answers is
    held ``delay_s`` (read when the chunk arrives, settable at any time) before it is passed on;
    what clients send goes straight through. Run with ``running_proxy``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_s = 0.0
        self.delayed_chunks = 0  # chunks held back so far: proof the delay was in the path
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool) -> None:
        try:
            while chunk := await reader.read(65536):
                delay_s = self.delay_s if delayed else 0.0
                if delay_s > 0:
                    self.delayed_chunks += 1
                    await asyncio.sleep(delay_s)
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass  # either side went away: the other is closed below
        finally:
            writer.close()

    async def _connect(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self._pipe(client_reader, upstream_writer, delayed=False),
                             self._pipe(upstream_reader, client_writer, delayed=True))

    def _track(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = self._loop.create_task(self._connect(client_reader, client_writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._track, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextmanager
def running_proxy(upstream_port: int) -> Iterator[DelayingProxy]:
    """A ``DelayingProxy`` serving on its own event loop thread until the block ends."""
    proxy = DelayingProxy(upstream_port)
    thread = threading.Thread(target=proxy._loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(proxy._start(), proxy._loop).result(30)
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy._stop(), proxy._loop).result(30)
        proxy._loop.call_soon_threadsafe(proxy._loop.stop)
        thread.join(30)
        proxy._loop.close()
