"""The one request wrapper of every front: authentication, load shedding, in-flight count, metrics, access log.

``endpoint(route, handler, service=KEY, front=...)`` wraps a handler ``(request, service, exchange)
-> response``, where ``service`` is what the application keeps under ``KEY`` (the ``Gateway`` for
the gateway's fronts, the ``KmsApi`` for the KMS API). A ``Front`` says what differs between the
fronts: how a request is authenticated, how a failure is rendered, what a refused compressed
body and a shed request are answered (the KMS API, ``kmsgate.web.kms_api``: SigV4 for service
``kms``, ``{"__type", "message"}`` JSON and the audit log; ``/v1``, ``kmsgate.gateway.exchange``:
bearer tokens or S3-style SigV4, ``{"error", "message"}`` JSON; the S3 API, ``kmsgate.s3front``:
S3's own authentication and XML error documents). Everything else is the same for every front:

* A compressed body (``Content-Encoding`` other than ``identity``) is refused before anything is
  read, by a front that says so (``compressed_body_refusal``; the S3 API stores an object's
  Content-Encoding instead): bodies are never inflated, so every size limit applies to the
  bytes received.
* Unless the route is open (``auth=False``: health, readiness, metrics), the request is then
  authenticated by the front, from its headers first; a body is read only once they passed (the
  KMS API's whole body, at most 256 KiB; a gateway body only for a signature over an undeclared
  hash). A failure is answered before the handler runs, so nothing is stored and no key is used.
  The caller, and the check a signed body must pass, are kept on the ``Exchange``; handlers act
  as ``exchange.caller``.
* Only then, when the worker already serves ``max_in_flight`` authenticated requests (of every
  front together, ``Load``), the front's answer to a shed request is sent (503 ``SlowDown`` with
  ``Retry-After`` on the gateway, 400 ``ThrottlingException`` on the KMS API, which AWS SDKs
  retry). Requests still authenticating are not counted: clients that never authenticate cannot
  take the slots of those that do (connections, header and body reads are bounded per
  connection instead, ``kmsgate.web.connections``).
* A failure before the response has started is rendered in the front's error shape. A failure
  after it started (a streamed body that fails to decrypt, a client that sends too much) aborts
  the connection: no final chunk and no complete Content-Length body is ever sent, so no client
  can mistake a truncated body for success.
* Every request counts itself in the application's ``InFlight`` (``kmsgate.web.inflight``)
  while it runs, so that a stopping worker waits for it.
* Each request is counted once in the metrics (route name, or the operation the handler names
  in ``exchange.operation``; never the path) and logged as one JSON line on the access log
  (``kmsgate.web.access``). The line carries the method, route, path, status, sizes, duration,
  error code and the caller's principal ARN; never a header value, a body byte, a key or a
  credential.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from aiohttp import web

from kmsgate.auth.sigv4_chunked import ChunkSignatureVerifier
from kmsgate.core.principal import Caller
from kmsgate.web.access import AccessLog
from kmsgate.web.connections import uncompressed
from kmsgate.web.inflight import IN_FLIGHT

log = logging.getLogger(__name__)
CLIENT_CLOSED_STATUS = 499  # the client went away before the response was complete
S = TypeVar("S")
S_contra = TypeVar("S_contra", contravariant=True)


class PayloadHashCheck(Protocol):
    """Checks a streamed body against the hash its signature covers; ``verify`` raises at its end."""

    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def verify(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Who sent a request, and what its body must satisfy."""

    caller: Caller
    payload_check: PayloadHashCheck | None = None
    """Set when the body's SHA-256 was signed: the streamed body must match it."""
    body: bytes | None = None
    """The whole body, when it had to be read to verify the signature."""
    chunk_verifier: ChunkSignatureVerifier | None = None
    """Set for a chunk-signed upload (a front that accepts them): its body is decoded through it."""


@dataclass(slots=True)
class Exchange:
    """What one request moved, and the streamed response once it has started."""

    bytes_in: int = 0
    bytes_out: int = 0
    response: web.StreamResponse | None = None
    authenticated: Caller | None = None
    payload_check: PayloadHashCheck | None = None
    """Set for a SigV4 request that signed its body's SHA-256: the body must match it."""
    body: bytes | None = None
    """The whole body, when authentication had to read it first."""
    chunk_verifier: ChunkSignatureVerifier | None = None
    """Set for a chunk-signed (``aws-chunked``) upload: the body is decoded through it."""
    operation: str | None = None
    """The operation a handler serving several names for metrics and the access log."""

    @property
    def caller(self) -> Caller:
        """The authenticated caller (only routes that authenticate ask for it)."""
        if self.authenticated is None:
            raise RuntimeError("this route does not authenticate its caller")
        return self.authenticated

    async def start(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        self.response = response
        await response.prepare(request)
        return response

    async def write(self, data: bytes | bytearray) -> None:
        if data and self.response is not None:
            self.bytes_out += len(data)
            await self.response.write(data)


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure as a front reports it: its status and code, and the front's own error value."""

    status: int
    code: str
    error: Exception
    retry_after: int | None = None
    """Seconds a client should wait before retrying (a 503)."""


class Front(Protocol[S_contra]):
    """What differs between the fronts (``S_contra``: the service their handlers are given)."""

    @property
    def compressed_body_refusal(self) -> Callable[[], Exception] | None:
        """The error refusing a compressed body; ``None`` where compressed bodies are taken as they are."""
        ...

    async def authenticate(self, request: web.Request, service: S_contra) -> Authenticated:
        """The caller and what its body must pass, or raise (rendered through ``failure``)."""
        ...

    def failure(self, exc: BaseException) -> Failure:
        """Any exception as this front reports it."""
        ...

    def saturated(self) -> Failure:
        """What a request shed because the worker serves ``max_in_flight`` requests is answered."""
        ...

    def render(self, failure: Failure, request: web.Request, exchange: Exchange) -> web.Response:
        """The response for a failure before the response started."""
        ...


class RequestMetrics(Protocol):
    """The request metrics the wrapper records (``kmsgate.gateway.metrics.GatewayMetrics``)."""

    def observe_request(self, *, route: str, method: str, status: int, seconds: float,
                        bytes_in: int, bytes_out: int) -> None: ...

    def count_rejected(self, reason: str) -> None: ...


class Load:
    """The authenticated requests a worker serves now, over every front, against ``max_in_flight``.

    ``on_change`` is called as each counted request starts and ends (the gateway schedules its
    metrics sync there, which publishes ``in_flight`` as the in-flight gauge).
    """

    __slots__ = ("in_flight", "max_in_flight", "metrics", "on_change")

    def __init__(self, max_in_flight: int, metrics: RequestMetrics,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.in_flight = 0
        self.max_in_flight = max_in_flight
        self.metrics = metrics
        self.on_change = on_change


LOAD: web.AppKey[Load] = web.AppKey("load", Load)
Handler = Callable[[web.Request, S, Exchange], Awaitable[web.StreamResponse]]


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def endpoint(route: str, handler: Handler[S], *, service: web.AppKey[S], front: Front[S], shed: bool = True,
             auth: bool = True) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler serving ``handler`` through ``front`` (see the module docstring)."""
    access = AccessLog()
    compressed_body_refusal = front.compressed_body_refusal

    async def wrapped(request: web.Request) -> web.StreamResponse:
        app = request.app
        served = app[service]
        load = app[LOAD]
        exchange = Exchange()
        started = time.perf_counter()
        status = CLIENT_CLOSED_STATUS
        error_code: str | None = None
        counted = False
        in_flight = app[IN_FLIGHT]
        in_flight.enter()
        try:
            if compressed_body_refusal is not None and not uncompressed(request.headers):
                raise compressed_body_refusal()
            if auth:  # before counting: a client that never authenticates holds no slot of max_in_flight
                who = await front.authenticate(request, served)
                exchange.authenticated, exchange.payload_check, exchange.body = who.caller, who.payload_check, who.body
                exchange.chunk_verifier = who.chunk_verifier
            if shed and load.in_flight >= load.max_in_flight:
                load.metrics.count_rejected("in_flight")
                failure = front.saturated()
                status, error_code = failure.status, failure.code
                return front.render(failure, request, exchange)
            load.in_flight += 1
            load.on_change()
            counted = True
            response = await handler(request, served, exchange)
            status = response.status
            if isinstance(response, web.Response) and response.body is not None:
                exchange.bytes_out += len(response.body)  # type: ignore[arg-type]
            return response
        except Exception as exc:
            failure = front.failure(exc)
            error_code = failure.code
            if failure.status == 500:
                log.error("unexpected error in %s %s route", request.method, exchange.operation or route,
                          exc_info=exc)
            if exchange.response is not None and exchange.response.prepared:
                _abort(request)
                status = exchange.response.status
                return exchange.response
            status = failure.status
            response = front.render(failure, request, exchange)
            exchange.bytes_out += len(response.body)  # type: ignore[arg-type]
            return response
        except asyncio.CancelledError:
            error_code = "ClientClosed"
            raise
        finally:
            in_flight.leave()
            if counted:
                load.in_flight -= 1
            elapsed = time.perf_counter() - started
            name = exchange.operation or route
            load.metrics.observe_request(
                route=name, method=request.method, status=status, seconds=elapsed,
                bytes_in=exchange.bytes_in, bytes_out=exchange.bytes_out,
            )
            load.on_change()
            access.log(method=request.method, route=name, path=request.path, status=status, error=error_code,
                       bytes_in=exchange.bytes_in, bytes_out=exchange.bytes_out, seconds=elapsed,
                       remote=request.remote,
                       principal=exchange.authenticated.arn if exchange.authenticated is not None else None)

    return wrapped
