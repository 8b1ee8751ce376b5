"""Per-request plumbing of every gateway front: load shedding, error rendering, metrics, access log.

``endpoint(route, handler, front=...)`` wraps a handler ``(request, gateway, exchange) -> response``.
A ``Front`` says what differs between the fronts over the same services: how a request is
authenticated and how a failure is rendered (``V1_FRONT``: bearer tokens or S3-style SigV4,
``{"error", "message"}`` JSON; the S3 API, ``kmsgate.s3front``: S3's own authentication and
XML error documents). Everything else is the same for every front:

* A compressed body (``Content-Encoding`` other than ``identity``) is refused with 415
  ``UnsupportedMediaType`` before anything is read, by a front that says so
  (``refuses_compressed_bodies``; the S3 API stores an object's Content-Encoding instead):
  bodies are never inflated, so every size limit applies to the bytes received.
* Unless the route is open (``auth=False``: health, readiness, metrics), the request is then
  authenticated (``kmsgate.gateway.auth``) from its headers (and, only for a signature over
  an undeclared body hash, a body of at most ``MAX_HASHED_BODY_BYTES``): a failure is 401
  before the handler runs, so nothing is stored and no KMS call is made. The caller, and the
  check a signed body must pass, are kept on the ``Exchange``; handlers act as
  ``exchange.caller``.
* Only then, when the process already handles ``max_in_flight`` authenticated requests, it
  answers 503 ``SlowDown`` with ``Retry-After``. Requests still authenticating are not counted:
  clients that never authenticate cannot take the slots of those that do (connections, header
  and body reads are bounded per connection instead, ``kmsgate.gateway.connections``).
* A failure before the response has started is rendered in the front's error shape
  (for ``/v1``, the JSON of ``kmsgate.gateway.errors``). A failure after it started (a streamed body that fails to
  decrypt, a client that sends too much) aborts the connection: no final chunk and no
  complete Content-Length body is ever sent, so no client can mistake a truncated body
  for success.
* Every request counts itself in the application's ``InFlight`` (``kmsgate.gateway.inflight``)
  while it runs, so that a stopping worker waits for it.
* Each request is counted once in the metrics (route name, or the operation the handler
  names in ``exchange.operation``; never the path) and logged as
  one JSON line on the ``kmsgate.gateway.access`` logger (``kmsgate.gateway.access``
  module). The line carries the method, route, path, status, sizes, duration, error code
  and the caller's principal ARN; never a header value, a body byte, a key or a credential.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from aiohttp import web

from kmsgate.core.principal import Caller
from kmsgate.gateway.access import AccessLog
from kmsgate.auth.sigv4_chunked import ChunkSignatureVerifier
from kmsgate.gateway.auth import Authenticated, PayloadCheck, authenticate
from kmsgate.gateway.connections import uncompressed
from kmsgate.gateway.errors import GatewayError, compressed_body, saturated, to_gateway_error
from kmsgate.gateway.inflight import IN_FLIGHT
from kmsgate.gateway.object_service import ObjectRead
from kmsgate.gateway.service import Gateway

log = logging.getLogger(__name__)
CLIENT_CLOSED_STATUS = 499  # the client went away before the response was complete
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


def error_response(err: GatewayError) -> web.Response:
    """The one JSON error shape of the gateway's own routes: ``{"error": code, "message": ...}``."""
    headers = dict(err.headers)
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    body = orjson.dumps({"error": err.code, "message": err.message})
    return web.Response(status=err.status, body=body, content_type="application/json", headers=headers)


@dataclass(slots=True)
class Exchange:
    """What one request moved, and the streamed response once it has started."""

    bytes_in: int = 0
    bytes_out: int = 0
    response: web.StreamResponse | None = None
    authenticated: Caller | None = None
    payload_check: PayloadCheck | None = None
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


Handler = Callable[[web.Request, Gateway, Exchange], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure as a front reports it: its status and code, and the front's own error value."""

    status: int
    code: str
    error: Exception
    retry_after: int | None = None
    """Seconds a client should wait before retrying (a 503)."""


class Front(Protocol):
    """What differs between the fronts over the gateway's services."""

    @property
    def refuses_compressed_bodies(self) -> bool: ...

    async def authenticate(self, request: web.Request, gateway: Gateway) -> Authenticated:
        """The caller and what its body must pass, or raise (rendered through ``failure``)."""
        ...

    def failure(self, exc: BaseException) -> Failure:
        """Any exception as this front reports it."""
        ...

    def render(self, failure: Failure, request: web.Request) -> web.Response:
        """The response for a failure before the response started."""
        ...


class V1Front:
    """The ``/v1`` API: bearer tokens or S3-style SigV4; errors as ``{"error", "message"}`` JSON."""

    refuses_compressed_bodies = True

    async def authenticate(self, request: web.Request, gateway: Gateway) -> Authenticated:
        return await authenticate(gateway.authenticator, request, gateway.bearer_callers)

    def failure(self, exc: BaseException) -> Failure:
        err = to_gateway_error(exc)
        return Failure(err.status, err.code, err)

    def render(self, failure: Failure, request: web.Request) -> web.Response:
        err = failure.error
        return error_response(err if isinstance(err, GatewayError) else to_gateway_error(err))


V1_FRONT = V1Front()


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def endpoint(route: str, handler: Handler, *, shed: bool = True, auth: bool = True,
             front: Front = V1_FRONT) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    access = AccessLog()

    async def wrapped(request: web.Request) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        exchange = Exchange()
        started = time.perf_counter()
        status = CLIENT_CLOSED_STATUS
        error_code: str | None = None
        counted = False
        in_flight = request.app[IN_FLIGHT]
        in_flight.enter()
        try:
            if front.refuses_compressed_bodies and not uncompressed(request.headers):
                raise compressed_body()
            if auth:  # before counting: a client that never authenticates holds no slot of max_in_flight
                who = await front.authenticate(request, gateway)
                exchange.authenticated, exchange.payload_check, exchange.body = who.caller, who.payload_check, who.body
                exchange.chunk_verifier = who.chunk_verifier
            if shed and gateway.in_flight >= gateway.settings.max_in_flight:
                gateway.metrics.rejected.labels("in_flight").inc()
                failure = front.failure(saturated())
                status, error_code = failure.status, failure.code
                return front.render(failure, request)
            gateway.in_flight += 1
            gateway.schedule_metrics_sync()
            counted = True
            response = await handler(request, gateway, exchange)
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
            response = front.render(failure, request)
            exchange.bytes_out += len(response.body)  # type: ignore[arg-type]
            return response
        except asyncio.CancelledError:
            error_code = "ClientClosed"
            raise
        finally:
            in_flight.leave()
            if counted:
                gateway.in_flight -= 1
            elapsed = time.perf_counter() - started
            name = exchange.operation or route
            gateway.metrics.observe_request(
                route=name, method=request.method, status=status, seconds=elapsed,
                bytes_in=exchange.bytes_in, bytes_out=exchange.bytes_out,
            )
            gateway.schedule_metrics_sync()
            access.log(method=request.method, route=name, path=request.path, status=status, error=error_code,
                       bytes_in=exchange.bytes_in, bytes_out=exchange.bytes_out, seconds=elapsed,
                       remote=request.remote,
                       principal=exchange.authenticated.arn if exchange.authenticated is not None else None)

    return wrapped


async def send_object(request: web.Request, exchange: Exchange, read: ObjectRead,
                      headers: dict[str, str]) -> web.StreamResponse:
    """Answer with an opened object: 200, or 206 with ``Content-Range`` for a served range; one
    write when it was verified whole, else streamed (a failure mid-body aborts, see ``endpoint``)."""
    status = 200
    if read.served is not None:
        start, end = read.served
        status, headers["Content-Range"] = 206, f"bytes {start}-{end - 1}/{read.info.size}"
    if read.body is not None:
        return web.Response(status=status, body=read.body, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    if read.length is not None:
        response.content_length = read.length
    await exchange.start(request, response)
    async for chunk in read.chunks():
        await exchange.write(chunk)
    await response.write_eof()
    return response
