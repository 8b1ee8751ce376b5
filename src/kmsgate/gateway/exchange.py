"""The gateway's fronts of the request wrapper (``kmsgate.web.exchange``): ``/v1`` and what both share.

``V1_FRONT`` is the ``/v1`` API: bearer tokens or S3-style SigV4 (``kmsgate.gateway.auth``),
failures as ``{"error": code, "message": ...}`` JSON (``kmsgate.gateway.errors``), a compressed body
refused with 415 ``UnsupportedMediaType`` and a shed request answered 503 ``SlowDown`` with
``Retry-After``. ``endpoint`` wraps a gateway handler ``(request, gateway, exchange)`` with the
shared wrapper over the application's ``Gateway``; the S3 API (``kmsgate.s3front``) passes its
own front. ``send_object`` answers with an opened object, for both fronts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from kmsgate.gateway.auth import authenticate
from kmsgate.gateway.errors import GatewayError, compressed_body, saturated, to_gateway_error
from kmsgate.gateway.object_service import ObjectRead
from kmsgate.gateway.service import Gateway
from kmsgate.web import exchange as wrapper
from kmsgate.web.exchange import Authenticated, Exchange, Failure, Front

__all__ = ["GATEWAY", "V1_FRONT", "Exchange", "endpoint", "error_response", "send_object"]

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
Handler = Callable[[web.Request, Gateway, Exchange], Awaitable[web.StreamResponse]]


def error_response(err: GatewayError) -> web.Response:
    """The one JSON error shape of the gateway's own routes: ``{"error": code, "message": ...}``."""
    headers = dict(err.headers)
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    body = orjson.dumps({"error": err.code, "message": err.message})
    return web.Response(status=err.status, body=body, content_type="application/json", headers=headers)


class V1Front:
    """The ``/v1`` API: bearer tokens or S3-style SigV4; errors as ``{"error", "message"}`` JSON."""

    compressed_body_refusal = staticmethod(compressed_body)

    async def authenticate(self, request: web.Request, gateway: Gateway) -> Authenticated:
        return await authenticate(gateway.authenticator, request, gateway.bearer_callers)

    def failure(self, exc: BaseException) -> Failure:
        err = to_gateway_error(exc)
        return Failure(err.status, err.code, err)

    def saturated(self) -> Failure:
        return self.failure(saturated())

    def render(self, failure: Failure, request: web.Request, exchange: Exchange) -> web.Response:
        err = failure.error
        return error_response(err if isinstance(err, GatewayError) else to_gateway_error(err))


V1_FRONT = V1Front()


def endpoint(route: str, handler: Handler, *, shed: bool = True, auth: bool = True,
             front: Front[Gateway] = V1_FRONT) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``handler`` served through the shared wrapper with ``front`` (the ``/v1`` API's by default)."""
    return wrapper.endpoint(route, handler, service=GATEWAY, front=front, shed=shed, auth=auth)


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
