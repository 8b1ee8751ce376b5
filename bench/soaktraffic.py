"""The soak's traffic: a steady mix at a moderate rate, idle keep-alive connections, slow clients.

Everything runs on one event loop in the benchmark's own process, against one kmsgate on
loopback, bounded in count and time: nothing starts after ``SoakPlan.duration_s`` and the run
returns once what was started has ended.

* **Steady mix**, each kind started on a fixed schedule (open loop, at most ``max_outstanding``
  flows of a kind at once; a flow that cannot start is an error): KMS GenerateDataKey then Decrypt
  of its blob, and Encrypt of 1 KiB then Decrypt (each request SigV4-signed as it is sent);
  ``PUT`` then ``GET /v1/objects`` of a few KiB; ``/v1/encrypt`` of a few MiB then ``/v1/decrypt``
  of the result; S3 PutObject then GetObject (SigV4, the body's hash signed). Every read is
  compared byte for byte with what was written; any other status or byte is an error.
* **Idle connections**: ``idle_connections`` keep-alive connections opened over the first part of
  the run, each sending a ``GET`` of a small object every ``idle_interval_s`` (below the server's
  idle deadline) and checking the bytes; a connection the server closes is an error.
* **Slow clients**, one of each at a time, counted apart from the steady traffic: a body
  trickled at a few bytes a second (each gap within the body-read deadline: it must be stored);
  a body that stops (it must be cut by the body-read deadline, 408); headers that never end
  (cut by the header deadline, 408); a connection that never sends (closed at the idle deadline);
  a reader that takes a large ``GET`` a little at a time (it must get every byte). Being cut by a
  deadline is the expected outcome of those three, not an error; any other ending is one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.kmsreq import Credentials, kms_request
from bench.s3req import s3_request
from bench.soakstats import Completion

KIB, MIB = 1024, 1024 * 1024
MAX_ERROR_EXAMPLES = 20
DEADLINE_SLACK_S = 10.0
"""How much later than its deadline a slow client may be cut and still count as cut by it."""


@dataclass(frozen=True, slots=True)
class SoakPlan:
    duration_s: float = 600.0
    idle_connections: int = 1000
    idle_interval_s: tuple[float, float] = (30.0, 60.0)
    kms_flows_per_s: float = 6.0
    object_flows_per_s: float = 3.0
    s3_flows_per_s: float = 1.5
    stream_flows_per_s: float = 0.2
    stream_bytes: int = 4 * MIB
    object_bytes: tuple[int, int] = (1 * KIB, 16 * KIB)
    idle_object_bytes: int = 1 * KIB
    trickle_bytes: int = 96
    trickle_bytes_per_s: float = 4.0
    slow_read_bytes: int = 4 * MIB
    slow_read_bytes_per_s: int = 256 * KIB
    max_outstanding: int = 32
    request_timeout_s: float = 60.0
    # The server's deadlines, as it was started (the slow clients are judged against them).
    header_timeout_s: float = 20.0
    body_read_timeout_s: float = 30.0
    idle_timeout_s: float = 75.0

    @property
    def ramp_s(self) -> float:
        """Time over which the idle connections are opened."""
        return min(60.0, self.duration_s * 0.1)


@dataclass(frozen=True, slots=True)
class Endpoints:
    url: str
    s3_url: str
    credentials: Credentials
    token: str
    bucket: str = "kmsgate-soak"


@dataclass
class Tally:
    """What the traffic saw: completions, errors (steady and slow), slow clients' outcomes."""

    started: float = field(default_factory=time.monotonic)
    completions: list[Completion] = field(default_factory=list)
    error_times: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    slow_outcomes: Counter[str] = field(default_factory=Counter)
    slow_errors: Counter[str] = field(default_factory=Counter)
    deadline_cuts_s: dict[str, list[float]] = field(default_factory=dict)
    idle_requests: int = 0
    idle_opened: int = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    def ok(self, kind: str, sent_at: float) -> None:
        done = time.monotonic()
        self.completions.append(Completion(done - self.started, done - sent_at, kind))

    def error(self, kind: str, what: str) -> None:
        self.error_times.append(self.now())
        self.errors[kind] += 1
        if len(self.error_examples) < MAX_ERROR_EXAMPLES:
            self.error_examples.append(f"{self.now():.1f} s {kind}: {what}"[:300])

    def slow(self, client: str, outcome: str, expected: bool, cut_after_s: float | None = None) -> None:
        if expected:
            self.slow_outcomes[f"{client}: {outcome}"] += 1
            if cut_after_s is not None:
                self.deadline_cuts_s.setdefault(client, []).append(cut_after_s)
        else:
            self.slow_errors[f"{client}: {outcome}"] += 1
            if len(self.error_examples) < MAX_ERROR_EXAMPLES:
                self.error_examples.append(f"{self.now():.1f} s slow {client}: {outcome}"[:300])

    @property
    def steady_errors(self) -> int:
        return sum(self.errors.values())


class Mismatch(Exception):
    """A reply that is not the expected one (status, fields or bytes)."""


# --------------------------------------------------------------------------- raw HTTP/1.1


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response: status, headers (lower-case names), body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = b""
    return status, headers, body


def _request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: soak"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --------------------------------------------------------------------------- the soak


class Soak:
    """One soak's traffic against ``endpoints`` per ``plan``; ``run`` returns the tally."""

    def __init__(self, plan: SoakPlan, endpoints: Endpoints) -> None:
        self.plan = plan
        self.ep = endpoints
        self.tally = Tally()
        self.end = 0.0  # monotonic time after which nothing new starts
        self.bearer = {"Authorization": f"Bearer {endpoints.token}"}
        self.idle_object = os.urandom(plan.idle_object_bytes)
        self.large_object = os.urandom(plan.slow_read_bytes)
        self.rng = random.Random(0x50A4)
        self.session: aiohttp.ClientSession | None = None
        self.key_id = ""

    # -- set-up ----------------------------------------------------------------------------

    async def setup(self) -> None:
        """A KMS key, the idle connections' object, the slow reader's object and the S3 bucket."""
        session = self._session()
        created = await self._kms("CreateKey", {"Description": "kmsgate-soak"}, "setup")
        self.key_id = str(created["KeyMetadata"]["KeyId"])
        for key, body in (("soak/idle", self.idle_object), ("soak/large", self.large_object)):
            async with session.put(f"{self.ep.url}/v1/objects/{key}", data=body, headers=self.bearer) as resp:
                if resp.status not in (200, 201):
                    raise Mismatch(f"set-up PUT {key}: HTTP {resp.status}")
        template = s3_request(self.ep.s3_url, "PUT", f"/{self.ep.bucket}", self.ep.credentials)
        async with session.put(self.ep.s3_url + template.path, headers=dict(template.headers)) as resp:
            if resp.status != 200:
                raise Mismatch(f"set-up CreateBucket: HTTP {resp.status}: {(await resp.read())[:200]!r}")

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                # Pooled connections are let go well before the server's idle deadline would close
                # them under a request about to be sent on one.
                connector=aiohttp.TCPConnector(limit=4 * self.plan.max_outstanding,
                                               keepalive_timeout=min(15.0, self.plan.idle_timeout_s / 2)),
                timeout=aiohttp.ClientTimeout(total=self.plan.request_timeout_s),
                auto_decompress=False,
            )
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    # -- the run ---------------------------------------------------------------------------

    async def run(self, on_start: Callable[[float], None] | None = None) -> Tally:
        """Run the soak from now for ``plan.duration_s``; ``on_start`` gets the start (monotonic)."""
        self._session()
        self.tally = Tally()
        self.end = self.tally.started + self.plan.duration_s
        if on_start is not None:
            on_start(self.tally.started)
        plan = self.plan
        jobs = [
            self._scheduled("kms", plan.kms_flows_per_s, self._kms_flow),
            self._scheduled("object", plan.object_flows_per_s, self._object_flow),
            self._scheduled("s3", plan.s3_flows_per_s, self._s3_flow),
            self._scheduled("stream", plan.stream_flows_per_s, self._stream_flow),
            self._idle_connections(),
            self._repeat(self._trickled_body, plan.trickle_bytes / plan.trickle_bytes_per_s),
            self._repeat(self._stalled_body, plan.body_read_timeout_s),
            self._repeat(self._endless_headers, plan.header_timeout_s),
            self._repeat(self._silent_connection, plan.idle_timeout_s),
            self._repeat(self._slow_reader, plan.slow_read_bytes / plan.slow_read_bytes_per_s),
        ]
        await asyncio.gather(*jobs)
        return self.tally

    async def _scheduled(self, kind: str, per_s: float, flow: Callable[[int], Awaitable[None]]) -> None:
        """Start ``flow(i)`` at ``start + i / per_s`` until the end; wait for those started."""
        if per_s <= 0:
            return
        running: set[asyncio.Task[None]] = set()
        i = 0
        while True:
            due = self.tally.started + i / per_s
            if due >= self.end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(running) >= self.plan.max_outstanding:
                self.tally.error(kind, f"flow {i} not started: {len(running)} still outstanding")
            else:
                task = asyncio.create_task(self._guarded(kind, flow, i))
                running.add(task)
                task.add_done_callback(running.discard)
            i += 1
        if running:
            await asyncio.gather(*running)

    async def _guarded(self, kind: str, flow: Callable[[int], Awaitable[None]], i: int) -> None:
        try:
            await flow(i)
        except asyncio.CancelledError:
            raise
        except Mismatch as exc:
            self.tally.error(kind, str(exc))
        except Exception as exc:  # any failure of one flow is an error of the run, which goes on
            self.tally.error(kind, f"{type(exc).__name__}: {exc}")

    # -- steady flows ----------------------------------------------------------------------

    async def _kms(self, operation: str, payload: dict[str, object], kind: str) -> dict[str, Any]:
        template = kms_request(self.ep.url, operation, payload, self.ep.credentials)
        sent = time.monotonic()
        async with self._session().post(self.ep.url + "/", data=template.body,
                                        headers=dict(template.headers)) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise Mismatch(f"{operation}: HTTP {resp.status}: {body[:200]!r}")
        reply = json.loads(body)
        if not isinstance(reply, dict):
            raise Mismatch(f"{operation}: reply is not an object")
        if kind != "setup":
            self.tally.ok(kind, sent)
        return reply

    async def _kms_flow(self, i: int) -> None:
        if i % 2 == 0:
            made = await self._kms("GenerateDataKey", {"KeyId": self.key_id, "KeySpec": "AES_256"},
                                   "kms GenerateDataKey")
            plaintext = base64.b64decode(str(made["Plaintext"]))
            if len(plaintext) != 32:
                raise Mismatch(f"GenerateDataKey: {len(plaintext)}-byte data key")
            blob = str(made["CiphertextBlob"])
        else:
            plaintext = os.urandom(KIB)
            made = await self._kms("Encrypt", {"KeyId": self.key_id, "Plaintext": base64.b64encode(plaintext).decode()},
                                   "kms Encrypt")
            blob = str(made["CiphertextBlob"])
        opened = await self._kms("Decrypt", {"CiphertextBlob": blob}, "kms Decrypt")
        if base64.b64decode(str(opened["Plaintext"])) != plaintext:
            raise Mismatch("Decrypt returned other bytes than were sealed")

    async def _put_then_get(self, kind: str, put_url: str, put_headers: dict[str, str], body: bytes,
                            get_url: str, get_headers: dict[str, str]) -> None:
        session = self._session()
        sent = time.monotonic()
        async with session.put(put_url, data=body, headers=put_headers) as resp:
            await resp.read()
            if resp.status not in (200, 201):
                raise Mismatch(f"PUT: HTTP {resp.status}")
        self.tally.ok(f"{kind} PUT", sent)
        sent = time.monotonic()
        async with session.get(get_url, headers=get_headers) as resp:
            got = await resp.read()
            if resp.status != 200:
                raise Mismatch(f"GET: HTTP {resp.status}")
        if got != body:
            raise Mismatch(f"GET returned {len(got)} bytes, not the {len(body)} written")
        self.tally.ok(f"{kind} GET", sent)

    async def _object_flow(self, i: int) -> None:
        body = os.urandom(self.rng.randint(*self.plan.object_bytes))
        url = f"{self.ep.url}/v1/objects/soak/obj/{i % 256}"
        await self._put_then_get("object", url, self.bearer, body, url, self.bearer)

    async def _s3_flow(self, i: int) -> None:
        body = os.urandom(self.rng.randint(*self.plan.object_bytes))
        path = f"/{self.ep.bucket}/obj-{i % 256}"
        put = s3_request(self.ep.s3_url, "PUT", path, self.ep.credentials, body=body)
        get = s3_request(self.ep.s3_url, "GET", path, self.ep.credentials)
        await self._put_then_get("s3", self.ep.s3_url + path, dict(put.headers), body,
                                 self.ep.s3_url + path, dict(get.headers))

    async def _stream_flow(self, i: int) -> None:
        session = self._session()
        plaintext = os.urandom(self.plan.stream_bytes)
        headers = {**self.bearer, "Content-Type": "application/octet-stream"}
        sent = time.monotonic()
        async with session.post(f"{self.ep.url}/v1/encrypt", data=plaintext, headers=headers) as resp:
            ciphertext = await resp.read()
            if resp.status != 200:
                raise Mismatch(f"/v1/encrypt: HTTP {resp.status}")
        self.tally.ok("stream encrypt", sent)
        sent = time.monotonic()
        async with session.post(f"{self.ep.url}/v1/decrypt", data=ciphertext, headers=headers) as resp:
            opened = await resp.read()
            if resp.status != 200:
                raise Mismatch(f"/v1/decrypt: HTTP {resp.status}")
        if opened != plaintext:
            raise Mismatch(f"/v1/decrypt returned {len(opened)} bytes, not the {len(plaintext)} encrypted")
        self.tally.ok("stream decrypt", sent)

    # -- idle keep-alive connections --------------------------------------------------------

    async def _idle_connections(self) -> None:
        n = self.plan.idle_connections
        tasks = []
        for i in range(n):
            opens_at = self.tally.started + self.plan.ramp_s * i / max(n, 1)
            tasks.append(asyncio.create_task(self._idle_connection(opens_at)))
        await asyncio.gather(*tasks)

    async def _idle_connection(self, opens_at: float) -> None:
        await asyncio.sleep(max(0.0, opens_at - time.monotonic()))
        host, port = _host_port(self.ep.url)
        request = _request_head("GET", "/v1/objects/soak/idle", self.bearer)
        writer: asyncio.StreamWriter | None = None
        try:
            while True:
                due = time.monotonic() + self.rng.uniform(*self.plan.idle_interval_s)
                if writer is None:
                    try:
                        reader, writer = await asyncio.open_connection(host, port)
                    except OSError as exc:
                        self.tally.error("idle", f"connect: {exc}")
                        return
                    self.tally.idle_opened += 1
                    due = time.monotonic() + self.rng.uniform(0, self.plan.idle_interval_s[1])
                if due >= self.end:
                    # Held open to the end, so that the connection count stays steady to the last sample.
                    await asyncio.sleep(self.end - time.monotonic())
                    return
                await asyncio.sleep(due - time.monotonic())
                sent = time.monotonic()
                try:
                    writer.write(request)
                    status, _, body = await asyncio.wait_for(read_response(reader), self.plan.request_timeout_s)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    self.tally.error("idle GET", f"keep-alive connection failed: {type(exc).__name__}: {exc}")
                    writer.close()
                    writer = None
                    continue
                self.tally.idle_requests += 1
                if status != 200 or body != self.idle_object:
                    self.tally.error("idle GET", f"HTTP {status}, {len(body)} bytes")
                else:
                    self.tally.ok("idle GET", sent)
        finally:
            if writer is not None:
                writer.close()

    # -- slow clients ----------------------------------------------------------------------

    async def _repeat(self, client: Callable[[], Awaitable[None]], expected_s: float) -> None:
        """Run ``client`` again and again while a whole run of it fits before the end."""
        while time.monotonic() + expected_s + DEADLINE_SLACK_S < self.end:
            await client()

    async def _connect(self, rcvbuf: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = _host_port(self.ep.url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except OSError:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=16 * KIB)

    async def _trickled_body(self) -> None:
        """A small PUT whose body arrives a few bytes a second: stored, and read back equal."""
        client = "trickled body"
        body = os.urandom(self.plan.trickle_bytes)
        step = max(1, round(self.plan.trickle_bytes_per_s / 4))
        gap = step / self.plan.trickle_bytes_per_s
        try:
            reader, writer = await self._connect()
        except OSError as exc:
            self.tally.slow(client, f"connect: {exc}", expected=False)
            return
        try:
            writer.write(_request_head("PUT", "/v1/objects/soak/trickled",
                                       {**self.bearer, "Content-Length": str(len(body))}))
            for at in range(0, len(body), step):
                writer.write(body[at:at + step])
                await writer.drain()
                await asyncio.sleep(gap)
            status, _, reply = await asyncio.wait_for(read_response(reader), self.plan.request_timeout_s)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            self.tally.slow(client, f"{type(exc).__name__}", expected=False)
            return
        finally:
            writer.close()
        if status not in (200, 201):
            self.tally.slow(client, f"HTTP {status}: {reply[:100]!r}", expected=False)
            return
        async with self._session().get(f"{self.ep.url}/v1/objects/soak/trickled", headers=self.bearer) as resp:
            stored = await resp.read()
        if stored != body:
            self.tally.slow(client, "stored bytes differ", expected=False)
        else:
            self.tally.slow(client, f"stored ({len(body)} bytes at {self.plan.trickle_bytes_per_s:g} B/s), "
                            "read back equal", expected=True)

    async def _cut(self, client: str, deadline_s: float, expect_status: int | None, head: bytes,
                   drip: bytes = b"") -> None:
        """Send ``head``, then ``drip`` a byte a second (if any), until the server ends the exchange;
        expected: an answer of ``expect_status`` (or a close, for ``None``) at the deadline."""
        try:
            reader, writer = await self._connect()
        except OSError as exc:
            self.tally.slow(client, f"connect: {exc}", expected=False)
            return
        started = time.monotonic()
        try:
            writer.write(head)

            async def dripping() -> None:
                for byte in drip:
                    await asyncio.sleep(1.0)
                    writer.write(bytes([byte]))

            dripper = asyncio.create_task(dripping()) if drip else None
            try:
                if expect_status is None:
                    data = await asyncio.wait_for(reader.read(), deadline_s + DEADLINE_SLACK_S)
                    status = None if not data else -1
                else:
                    status, _, _ = await asyncio.wait_for(read_response(reader), deadline_s + DEADLINE_SLACK_S)
            finally:
                if dripper is not None:
                    dripper.cancel()
        except asyncio.TimeoutError:
            self.tally.slow(client, f"not cut within {deadline_s + DEADLINE_SLACK_S:g} s", expected=False)
            return
        except (OSError, asyncio.IncompleteReadError) as exc:
            status = None if expect_status is None else -2
            if expect_status is not None:
                self.tally.slow(client, f"{type(exc).__name__} instead of HTTP {expect_status}", expected=False)
                return
        finally:
            writer.close()
        after = time.monotonic() - started
        if status != expect_status:
            self.tally.slow(client, f"ended with {status}, not {expect_status}", expected=False)
        elif after < deadline_s - 1.0:
            self.tally.slow(client, f"cut after {after:.1f} s, before the {deadline_s:g} s deadline", expected=False)
        else:
            what = f"HTTP {expect_status}" if expect_status else "closed"
            self.tally.slow(client, f"{what} at the {deadline_s:g} s deadline", expected=True, cut_after_s=after)

    async def _stalled_body(self) -> None:
        head = _request_head("PUT", "/v1/objects/soak/stalled", {**self.bearer, "Content-Length": str(KIB)})
        await self._cut("stalled body", self.plan.body_read_timeout_s, 408, head + os.urandom(16))

    async def _endless_headers(self) -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: soak\r\nX-Slow: "
        drip = b"a" * int(self.plan.header_timeout_s + DEADLINE_SLACK_S + 2)
        await self._cut("endless headers", self.plan.header_timeout_s, 408, head, drip)

    async def _silent_connection(self) -> None:
        await self._cut("silent connection", self.plan.idle_timeout_s, None, b"")

    async def _slow_reader(self) -> None:
        """A GET of the large object read a little at a time through a small receive buffer."""
        client = "slow reader"
        chunk = 16 * KIB
        gap = chunk / self.plan.slow_read_bytes_per_s
        try:
            reader, writer = await self._connect(rcvbuf=chunk)
        except OSError as exc:
            self.tally.slow(client, f"connect: {exc}", expected=False)
            return
        try:
            writer.write(_request_head("GET", "/v1/objects/soak/large", self.bearer))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.plan.request_timeout_s)
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                self.tally.slow(client, f"HTTP {status}", expected=False)
                return
            fields = {line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
                      for line in head.split(b"\r\n")[1:] if b":" in line}
            if b"content-length" not in fields:
                self.tally.slow(client, "no Content-Length", expected=False)
                return
            left = int(fields[b"content-length"])
            got = bytearray()
            while left > 0:
                data = await asyncio.wait_for(reader.read(min(chunk, left)), self.plan.request_timeout_s)
                if not data:
                    break
                got += data
                left -= len(data)
                await asyncio.sleep(gap)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as exc:
            self.tally.slow(client, f"{type(exc).__name__}", expected=False)
            return
        finally:
            writer.close()
        if bytes(got) != self.large_object:
            self.tally.slow(client, f"read {len(got)} bytes, not the object's {len(self.large_object)}",
                            expected=False)
        else:
            self.tally.slow(client, f"read all {len(got)} bytes at about {self.plan.slow_read_bytes_per_s // KIB} "
                            "KiB/s, equal", expected=True)
