"""Streaming helpers shared by the routes: bounded body reads, encryption into a sink, context checks.

Memory per request stays bounded whatever the body size: a body is read in blocks of at
most ``io_block_bytes``; an ``Encryptor`` or ``Decryptor`` buffers at most one frame; a
storage writer buffers at most its backend constant.

Small bodies (a declared Content-Length of at most ``io_block_bytes``) take a shorter path:
``read_whole_body`` reads them in one call, the routes encrypt or decrypt them in one call,
inline on the event loop (well under the size at which a thread hand-off pays, see
``kmsgate.envelope.pool``), and answer with one ``web.Response``, which aiohttp sends as one
write of headers and body. Memory for such a request is bounded by twice ``io_block_bytes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import web

from kmsgate.envelope.cache import CacheEntry
from kmsgate.envelope.context import RESERVED_PREFIX
from kmsgate.envelope.encryptor import Encryptor
from kmsgate.envelope.header import MessageHeader
from kmsgate.envelope.materials import MaterialsManager
from kmsgate.gateway.errors import GatewayError
from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.headers import parse_context, parse_key_id
from kmsgate.gateway.object_access import OBJECT_ARN_CONTEXT_KEY
from kmsgate.gateway.service import Gateway


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, "EntityTooLarge", f"The body exceeds the maximum of {limit} bytes.")


def check_declared_length(request: web.Request, limit: int) -> int | None:
    """The Content-Length, refused at once with 413 when over ``limit``."""
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    return length


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


def requested_key_and_context(request: web.Request, gateway: Gateway) -> tuple[str, dict[str, str]]:
    """The CMK and encryption context a write asks for; the object-binding key is the gateway's alone."""
    key_id = parse_key_id(request.headers) or gateway.settings.default_key_id
    context = parse_context(request.headers)
    if OBJECT_ARN_CONTEXT_KEY in context:
        raise GatewayError(400, "InvalidArgument",
                           f"The encryption context key {OBJECT_ARN_CONTEXT_KEY} is reserved: the gateway sets it "
                           "to the object's ARN.")
    return key_id, context


async def open_encryptor(gateway: Gateway, materials: MaterialsManager, key_id: str, context: Mapping[str, str],
                         plaintext_length: int | None) -> tuple[CacheEntry, Encryptor]:
    """Materials from the caller's caches (``materials``; a KMS call as the caller on a miss)."""
    entry = await materials.encryption_materials(
        key_id=key_id, encryption_context=context, plaintext_length=plaintext_length
    )
    # Bytes are counted against the cache entry here, on the event loop, not from the pool.
    return entry, Encryptor(entry.materials, frame_length=gateway.settings.frame_length)


async def encrypt_body(request: web.Request, gateway: Gateway, exchange: Exchange, materials: MaterialsManager,
                       entry: CacheEntry, encryptor: Encryptor,
                       sink: Callable[[bytes | bytearray], Awaitable[None]]) -> None:
    """Encrypt the whole request body into ``sink`` (header, frames, final frame)."""
    settings = gateway.settings
    cache = materials.cache
    async for block in body_blocks(request, exchange, limit=settings.max_object_bytes, block=settings.io_block_bytes):
        cache.record_bytes(entry, len(block))
        out = await gateway.pool.run(encryptor.update, block)
        if out:
            await sink(out)
    await sink(encryptor.finalize())


def key_arn(entry: CacheEntry) -> str:
    return entry.materials.encrypted_data_keys[0].provider_info.decode("utf-8", "replace")


def check_context(header: MessageHeader, expected: Mapping[str, str]) -> None:
    """A context the client names must be exactly the message's own (authenticated) context.

    Keys and values compare exactly, and no pair may be left unnamed: a message made under
    ``{"tenant": "bob", "TENANT": "alice"}`` does not pass for ``{"tenant": "bob"}``. The keys the
    format reserves for itself (``aws-crypto-``) and the object binding the gateway sets
    (``aws:s3:arn``, checked on its own) are not the caller's and are left out. Naming no
    context checks nothing.
    """
    if not expected:
        return
    actual = {k: v for k, v in header.encryption_context.items()
              if not k.startswith(RESERVED_PREFIX) and k != OBJECT_ARN_CONTEXT_KEY}
    if actual != dict(expected):
        raise GatewayError(400, "EncryptionContextMismatch",
                           "The encryption context does not match the one the object was encrypted with.")


def etag_of(header: MessageHeader) -> str:
    """A strong ETag: the message id is random per message, so per object version."""
    return '"' + header.message_id.hex()[:32] + '"'
