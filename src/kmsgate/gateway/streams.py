"""``POST /v1/encrypt`` and ``POST /v1/decrypt``: message streams in, message streams out.

Encrypt: plaintext in, an AWS Encryption SDK message out, with the same key and context
headers as PUT. When the request declares its Content-Length the response declares the
exact message length (unsigned suites make it a function of the plaintext length);
otherwise the response is chunked. A body that grows past the maximum after the
response started aborts the connection.

Decrypt: a message in, plaintext out (chunked). Nothing is sent before the header, the
data key and the first frames check out, so most failures are plain 4xx/5xx answers;
a failure later (a tampered or truncated frame) aborts the connection, and the final
chunk is written only after ``Decryptor.finalize`` confirmed the whole message. An
optional context header must match the message's context.

A small request (Content-Length at most ``io_block_bytes``) is read whole, encrypted or
decrypted in one inline call and answered with one ``web.Response`` carrying its exact
Content-Length: with a warm data-key cache it makes no KMS call and no thread hop. A small
decrypt answers only after the whole message verified, so any failure is a plain 4xx.
"""

from __future__ import annotations

from aiohttp import web

from kmsgate.envelope.decryptor import Decryptor
from kmsgate.envelope.errors import TruncatedMessageError
from kmsgate.envelope.frames import body_size
from kmsgate.envelope.header import parse_header
from kmsgate.gateway.bodies import (
    body_blocks,
    check_context,
    check_declared_length,
    encrypt_body,
    key_arn,
    open_encryptor,
    read_whole_body,
    requested_key_and_context,
    whole_body_length,
)
from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.headers import KEY_ID_HEADER, parse_context
from kmsgate.gateway.service import Gateway

MESSAGE_TYPE = "application/octet-stream"


async def encrypt_stream(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key_id, context = requested_key_and_context(request, gateway)
    length = check_declared_length(request, gateway.settings.max_object_bytes)
    materials = gateway.materials_for(exchange.caller)
    entry, encryptor = await open_encryptor(gateway, materials, key_id, context, length)
    headers = {"Content-Type": MESSAGE_TYPE, KEY_ID_HEADER: key_arn(entry)}
    if whole_body_length(request, gateway) is not None and length is not None:
        body = await read_whole_body(request, exchange, length)
        materials.cache.record_bytes(entry, len(body))
        return web.Response(status=200, body=encryptor.encrypt(body), headers=headers)
    response = web.StreamResponse(status=200, headers=headers)
    if length is not None and not encryptor.header.suite.signed:
        response.content_length = encryptor.header.length + body_size(length, encryptor.header.frame_length)
    else:
        response.enable_chunked_encoding()

    async def sink(data: bytes | bytearray) -> None:
        if exchange.response is None:
            await exchange.start(request, response)
        await exchange.write(data)

    await encrypt_body(request, gateway, exchange, materials, entry, encryptor, sink)
    if length is not None and encryptor.plaintext_length != length:  # pragma: no cover - aiohttp enforces
        raise ConnectionError("request body shorter than its Content-Length")
    await response.write_eof()
    return response


async def decrypt_stream(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    expected = parse_context(request.headers)
    settings = gateway.settings
    check_declared_length(request, settings.max_object_bytes)
    length = whole_body_length(request, gateway)
    if length is not None:
        return await _decrypt_whole(request, gateway, exchange, await read_whole_body(request, exchange, length),
                                    expected)
    decryptor = Decryptor(settings.decrypt_policy)
    blocks = body_blocks(request, exchange, limit=settings.max_object_bytes, block=settings.io_block_bytes)
    buffered = 0
    async for block in blocks:
        decryptor.update(block)  # buffers until the data key is set: no crypto yet
        buffered += len(block)
        if decryptor.needs_data_key:
            break
    if not decryptor.needs_data_key:
        decryptor.finalize()  # raises: the body ended before a complete header
    await gateway.materials_for(exchange.caller).open_decryptor(decryptor)
    assert decryptor.header is not None  # needs_data_key implies a parsed header
    check_context(decryptor.header, expected)
    response = web.StreamResponse(status=200, headers={"Content-Type": MESSAGE_TYPE})
    response.enable_chunked_encoding()

    async def emit(data: bytes | bytearray) -> None:
        if data and exchange.response is None:
            await exchange.start(request, response)
        await exchange.write(data)

    await emit(await gateway.pool.run(decryptor.update, b"", weight=buffered))
    async for block in blocks:
        await emit(await gateway.pool.run(decryptor.update, block))
    final = decryptor.finalize()
    if exchange.response is None:
        await exchange.start(request, response)
    await exchange.write(final)
    await response.write_eof()
    return response


async def _decrypt_whole(request: web.Request, gateway: Gateway, exchange: Exchange, message: bytes,
                         expected: dict[str, str]) -> web.StreamResponse:
    """A whole (small) message in memory: decrypted straight from ``message``, answered at once."""
    policy = gateway.settings.decrypt_policy
    header, consumed = parse_header(message, policy)
    if header is None:
        raise TruncatedMessageError("message ended inside its header")
    decryptor = Decryptor.for_header(header, policy)
    await gateway.materials_for(exchange.caller).open_decryptor(decryptor)
    check_context(header, expected)
    with memoryview(message) as view:
        plaintext = decryptor.update(view[consumed:])
    if not decryptor.done:
        decryptor.finalize()  # raises: the message ended early
    return web.Response(status=200, body=plaintext, headers={"Content-Type": MESSAGE_TYPE})
