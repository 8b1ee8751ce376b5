"""Request bodies of the ``/v1`` routes, read for the services: in bounded blocks, or whole when small.

Memory per request stays bounded whatever the body size: a body is read in blocks of at
most ``io_block_bytes`` (the services' ``Encryptor`` or ``Decryptor`` buffers at most one
frame; a storage writer at most its backend constant).

Small bodies (a declared Content-Length of at most ``io_block_bytes``) take a shorter path:
``read_whole_body`` reads them in one call, the services encrypt or decrypt them in one call,
inline on the event loop (well under the size at which a thread hand-off pays, see
``kmsgate.envelope.pool``), and answer with one ``web.Response``, which aiohttp sends as one
write of headers and body. Memory for such a request is bounded by twice ``io_block_bytes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from kmsgate.gateway.encryption import too_large
from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.headers import parse_context, parse_key_id
from kmsgate.gateway.service import Gateway


def declared_length(request: web.Request) -> int | None:
    """The Content-Length the request declares (the services refuse one over their limit)."""
    return request.content_length


def request_blocks(request: web.Request, gateway: Gateway, exchange: Exchange) -> AsyncIterator[bytes]:
    """The request body in the gateway's blocks, bounded by its maximum object size."""
    settings = gateway.settings
    return body_blocks(request, exchange, limit=settings.max_object_bytes, block=settings.io_block_bytes)


async def body_blocks(request: web.Request, exchange: Exchange, *, limit: int, block: int) -> AsyncIterator[bytes]:
    """The request body in blocks of up to ``block`` bytes; 413 once more than ``limit`` arrived.

    A body whose SHA-256 was signed (``exchange.payload_check``) is hashed as it streams and
    checked when it ends: a mismatch raises before the caller sees the end of the body, so
    nothing is committed and no final frame or chunk is sent.
    """
    content = request.content
    check = exchange.payload_check
    if exchange.body is not None:  # read whole by authentication (small, bounded)
        body, exchange.body = exchange.body, None
        for start in range(0, len(body), block):
            exchange.bytes_in += min(block, len(body) - start)
            if exchange.bytes_in > limit:
                raise too_large(limit)
            yield body[start:start + block]
    while True:
        parts: list[bytes] = []
        size = 0
        while size < block:
            chunk = await content.read(block - size)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        if not size:
            if check is not None:
                check.verify()
            return
        exchange.bytes_in += size
        if exchange.bytes_in > limit:
            raise too_large(limit)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if check is not None:
            check.update(data)
        yield data


def whole_body_length(request: web.Request, gateway: Gateway) -> int | None:
    """The declared length when the body is small enough to be handled whole, else ``None``."""
    length = request.content_length
    if length is not None and length <= gateway.settings.io_block_bytes:
        return length
    return None


async def read_whole_body(request: web.Request, exchange: Exchange, length: int) -> bytes:
    """The whole body of a request that declared ``length`` (small: see ``whole_body_length``).

    A body whose SHA-256 was signed is checked before it is returned, so nothing is done
    with one that does not match.
    """
    body = exchange.body
    if body is not None:  # read whole by authentication (small, bounded)
        exchange.body = None
    else:
        try:
            body = await request.content.readexactly(length) if length else b""
        except asyncio.IncompleteReadError:
            raise ConnectionError("request body shorter than its Content-Length") from None
    exchange.bytes_in += len(body)
    check = exchange.payload_check
    if check is not None:
        check.update(body)
        check.verify()
    return body


def requested_key_and_context(request: web.Request) -> tuple[str | None, dict[str, str]]:
    """The CMK (``None``: the default) and encryption context a request names in its SSE-KMS headers."""
    return parse_key_id(request.headers), parse_context(request.headers)
