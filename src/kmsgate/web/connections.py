"""What one worker allows a connection: deadlines, a cap on open connections, no Server header.

aiohttp has an idle deadline (``keepalive_timeout``) but none for headers or body reads, no cap
on connections and names Python's and its own versions in a ``Server`` header. ``LimitedSite``
serves an ``AppRunner`` through ``LimitedRequestHandler``, which adds, per ``ConnectionLimits``:

* **Header deadline.** Once the first byte of a request arrives on a connection that is waiting
  for one, its headers must be complete within ``header_timeout_seconds``; otherwise the
  connection is answered ``408`` and closed (a client sending one byte a second holds nothing).
* **Body-read deadline.** Each wait of a handler for more body bytes ends after
  ``body_read_timeout_seconds`` with ``BodyReadTimeout`` (a ``TimeoutError``) raised from the
  read; the protocol adapters answer 408 in their own error shape. A handler busy with anything
  else (a KMS call, storage) is never timed out by this: only a client that stops sending is.
* **Send deadline.** A response whose client takes none of it for ``send_timeout_seconds`` (the
  transport's send buffer stays above its high-water mark all that time) has its connection
  aborted: a client that stops reading holds neither a request slot nor its buffers.
* **Idle deadline.** A connection with no request in progress is closed after
  ``idle_timeout_seconds`` (aiohttp's keep-alive timeout, also counted from the connection's start).
* **Connection cap.** A worker holds at most ``max_connections`` connections; one more is
  answered ``503`` with ``Connection: close`` and closed at once, before anything of it is read.
* **No Server header** on any response, the handler's or aiohttp's own (404).
* **Malformed requests** are answered by the application's ``MALFORMED`` function, in its front's
  error shape, and logged without their bytes (``kmsgate.web.malformed``).

Request bodies are never inflated (``auto_decompress=False``): a ``Content-Encoding`` other than
``identity`` is refused by the request wrapper (``kmsgate.web.exchange``) in each front's error
shape, so the body limits apply to the bytes received.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from aiohttp.helpers import BaseTimerContext
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import EmptyStreamReader, StreamReader
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy

from kmsgate.web.malformed import HEAD_BYTES, MALFORMED, MalformedAnswer, classify, request_target

log = logging.getLogger("kmsgate.web")

HEADER_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
OVER_CAPACITY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-worker connection limits (the CLI maps its options onto these)."""

    header_timeout_seconds: float = 20.0
    """From a request's first byte to the end of its headers."""
    body_read_timeout_seconds: float = 30.0
    """Longest wait for the next bytes of a body a handler is reading."""
    send_timeout_seconds: float = 30.0
    """Longest a response may wait on a client that takes none of it."""
    idle_timeout_seconds: float = 75.0
    """A connection without a request in progress; above the 60 s idle timeout of common load balancers,
    so that the balancer, not kmsgate, closes a pooled connection first."""
    max_connections: int = 4096
    """Open connections per worker; the process needs a file-descriptor limit above this."""


class BodyReadTimeout(TimeoutError):
    """The client sent no body bytes for ``body_read_timeout_seconds`` while a handler waited for them."""

    MESSAGE = "The request body was not received in time."


def uncompressed(headers: CIMultiDictProxy[str]) -> bool:
    """Whether a request's body is sent as is: every ``Content-Encoding`` it names is ``identity``."""
    return all(
        coding.strip().lower() in ("", "identity")
        for value in headers.getall(hdrs.CONTENT_ENCODING, ())
        for coding in value.split(",")
    )


class _BodyReadDeadline(BaseTimerContext):
    """Entered by aiohttp's ``StreamReader`` around each wait for body bytes: fails the read at the deadline."""

    __slots__ = ("_reader", "_seconds", "_handle")

    def __init__(self, reader: StreamReader, seconds: float) -> None:
        self._reader = reader
        self._seconds = seconds
        self._handle: asyncio.TimerHandle | None = None

    def __enter__(self) -> BaseTimerContext:
        self._handle = asyncio.get_running_loop().call_later(self._seconds, self._expire)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expire(self) -> None:
        self._handle = None
        self._reader.set_exception(BodyReadTimeout(BodyReadTimeout.MESSAGE))


async def _without_server_header(headers: CIMultiDict[str]) -> None:
    """Called by the writer just before it serializes a response's headers: aiohttp's ``Server``
    header names the Python and aiohttp versions."""
    headers.popall(hdrs.SERVER, None)


class _ConnectionCount:
    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = 0


class LimitedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with the deadlines, the connection cap and malformed-request answers above."""

    def __init__(self, manager: web.Server, *, limits: ConnectionLimits, count: _ConnectionCount,
                 malformed: MalformedAnswer | None = None, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=limits.idle_timeout_seconds, auto_decompress=False, **kwargs)
        self._limits = limits
        self._count = count
        self._malformed = malformed
        self._head = b""
        self._counted = False
        self._header_deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None
        self._requests_at_arming = 0
        self._make_request = manager.request_factory
        self._request_factory = self._limited_request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._count.open >= self._limits.max_connections:
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(OVER_CAPACITY_RESPONSE)
            self.force_close()  # flushes the 503, then closes
            return
        self._count.open += 1
        self._counted = True

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._count.open -= 1
        self._disarm_header_deadline()
        self._disarm_send_deadline()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._send_deadline = self._loop.call_later(self._limits.send_timeout_seconds, self._send_stalled)

    def resume_writing(self) -> None:
        self._disarm_send_deadline()
        super().resume_writing()

    def _disarm_send_deadline(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_stalled(self) -> None:
        self._send_deadline = None
        if self.transport is not None:
            self.transport.abort()  # the handler's pending write fails, and its request ends

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is not None:
            super().data_received(data)
            if self._request_count != self._requests_at_arming:
                self._disarm_header_deadline()
            return
        awaiting, requests = self._awaiting_request(), self._request_count
        if awaiting:
            self._head = data[:HEAD_BYTES]  # the request line's start, should the request not parse
        super().data_received(data)
        # Armed after parsing, and only when the first bytes left the headers incomplete: the
        # deadline still runs from this first byte, and headers that arrive whole (nearly every
        # request) cost no timer (uvloop's call_later + cancel: about 2 µs a request).
        if awaiting and self._request_count == requests:
            self._requests_at_arming = requests
            self._header_deadline = self._loop.call_later(self._limits.header_timeout_seconds, self._headers_late)

    def _awaiting_request(self) -> bool:
        """No request is being handled: new bytes begin a request's headers."""
        waiter = self._waiter
        return (waiter is not None and not waiter.done()) or self._request_count == 0

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self._request_count != self._requests_at_arming or self.transport is None:
            return
        self.transport.write(HEADER_TIMEOUT_RESPONSE)
        self.force_close()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status != 400 or self._malformed is None:  # not a parse error: aiohttp's answer and log
            return super().handle_error(request, status, exc, message)
        malformed = classify(exc)
        log.info("refused a malformed request", extra={"remote": request.remote, "fault": type(exc).__name__})
        response = self._malformed(malformed, request_target(self._head))
        response.force_close()
        return response

    def _limited_request(self, message: Any, payload: StreamReader, protocol: RequestHandler,
                         writer: Any, task: asyncio.Task[None]) -> web.BaseRequest:
        if not isinstance(payload, EmptyStreamReader):  # the shared reader of every bodiless request
            # aiohttp's reader enters its timer around every wait for body bytes.
            payload._timer = _BodyReadDeadline(payload, self._limits.body_read_timeout_seconds)
        writer = StreamWriter(protocol, self._loop, on_headers_sent=_without_server_header)
        return self._make_request(message, payload, protocol, writer, task)


class LimitedSite(web.BaseSite):
    """Serves ``runner`` on an already bound and listening socket through ``LimitedRequestHandler``."""

    __slots__ = ("_sock", "_limits", "_count", "_malformed")

    def __init__(self, runner: web.AppRunner, sock: socket.socket, limits: ConnectionLimits, *,
                 backlog: int = 128, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, backlog=backlog, ssl_context=ssl_context)
        self._sock = sock
        self._limits = limits
        self._count = _ConnectionCount()
        self._malformed = runner.app.get(MALFORMED) if isinstance(runner, web.AppRunner) else None

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{'https' if self._ssl_context else 'http'}://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting a site")
        loop = asyncio.get_running_loop()

        def protocol() -> LimitedRequestHandler:
            return LimitedRequestHandler(server, limits=self._limits, count=self._count, malformed=self._malformed,
                                         loop=loop, access_log=None)

        # A TLS handshake gets the time a request gets for its headers; it counts as no connection
        # until it is done (the protocol above sees the connection only then).
        handshake_timeout = self._limits.header_timeout_seconds if self._ssl_context else None
        self._server = await loop.create_server(protocol, sock=self._sock, backlog=self._backlog,
                                                ssl=self._ssl_context, ssl_handshake_timeout=handshake_timeout)
