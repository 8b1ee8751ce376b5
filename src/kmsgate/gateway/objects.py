"""``/v1/objects/{key}``: the object routes of the ``/v1`` API, a thin adapter over ``ObjectService``.

The objects of this API are in the default bucket (``GatewaySettings.default_bucket``).
PUT answers 201 with a JSON summary once the object is durable; GET answers 200 (or 206 for
one ``Range``) with an exact Content-Length when the size could be vouched for; HEAD the
same headers without a body; DELETE 204. Everything else — access, binding, verification,
what may be said before the body — is the service's (``kmsgate.gateway.object_service``).
A read whose body fails after the status line went out raises here, and the request
wrapper (``kmsgate.gateway.exchange``) aborts the connection.
"""

from __future__ import annotations

import email.utils

import orjson
from aiohttp import web

from kmsgate.gateway.bodies import declared_length, request_blocks, requested_key_and_context
from kmsgate.gateway.exchange import Exchange, send_object
from kmsgate.gateway.headers import parse_context
from kmsgate.gateway.keys import validate_object_key
from kmsgate.gateway.object_service import ObjectInfo
from kmsgate.gateway.service import Gateway

OCTET_STREAM = "application/octet-stream"


def _headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "ETag": info.etag,
        "Last-Modified": email.utils.formatdate(info.last_modified, usegmt=True),
        "Accept-Ranges": "bytes" if info.accepts_ranges else "none",
        "Content-Type": OCTET_STREAM,
    }


async def put_object(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key = validate_object_key(request.match_info["key"])
    key_id, context = requested_key_and_context(request)
    result = await gateway.objects.put(
        exchange.caller, gateway.settings.default_bucket, key, request_blocks(request, gateway, exchange),
        key_id=key_id, encryption_context=context, length=declared_length(request))
    body = {
        "key": key, "size": result.size, "stored_size": result.stored_size,
        "kms_key_id": result.kms_key_arn, "etag": result.etag.strip('"'),
    }
    return web.Response(status=201, body=orjson.dumps(body), content_type="application/json",
                        headers={"ETag": result.etag})


async def delete_object(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key = validate_object_key(request.match_info["key"])
    await gateway.objects.delete(exchange.caller, gateway.settings.default_bucket, key)
    return web.Response(status=204)


async def head_object(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key = validate_object_key(request.match_info["key"])
    info = await gateway.objects.head(exchange.caller, gateway.settings.default_bucket, key)
    response = web.StreamResponse(status=200, headers=_headers(info))
    if info.size is not None:
        response.content_length = info.size
    await exchange.start(request, response)
    await response.write_eof()
    return response


async def get_object(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key = validate_object_key(request.match_info["key"])
    read = await gateway.objects.read(exchange.caller, gateway.settings.default_bucket, key,
                                      byte_range=request.headers.get("Range"),
                                      expected_context=parse_context(request.headers))
    try:
        return await send_object(request, exchange, read, _headers(read.info))
    finally:
        await read.aclose()
