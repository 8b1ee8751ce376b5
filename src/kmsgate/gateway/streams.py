"""``POST /v1/encrypt`` and ``POST /v1/decrypt``: a thin adapter over ``StreamService``.

Encrypt: plaintext in, an AWS Encryption SDK message out, with the same key and context
headers as PUT. When the request declares its Content-Length the response declares the
exact message length (unsigned suites make it a function of the plaintext length);
otherwise the response is chunked. A body that grows past the maximum after the
response started aborts the connection.

Decrypt: a message in, plaintext out (chunked). Nothing is sent before the header, the
data key and the first frames check out, so most failures are plain 4xx/5xx answers;
a failure later (a tampered or truncated frame) aborts the connection, and the final
chunk is written only after the whole message verified. An optional context header must
match the message's context.

A small request (Content-Length at most ``io_block_bytes``) is read whole, encrypted or
decrypted in one inline call and answered with one ``web.Response`` carrying its exact
Content-Length: with a warm data-key cache it makes no KMS call and no thread hop. A small
decrypt answers only after the whole message verified, so any failure is a plain 4xx.
"""

from __future__ import annotations

from aiohttp import web

from kmsgate.gateway.bodies import (
    declared_length,
    read_whole_body,
    request_blocks,
    requested_key_and_context,
    whole_body_length,
)
from kmsgate.gateway.encryption import check_length
from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.headers import KEY_ID_HEADER, parse_context
from kmsgate.gateway.service import Gateway

MESSAGE_TYPE = "application/octet-stream"


async def encrypt_stream(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key_id, context = requested_key_and_context(request)
    length = declared_length(request)
    encryption = await gateway.streams.open_encryption(exchange.caller, key_id=key_id, encryption_context=context,
                                                       length=length)
    headers = {"Content-Type": MESSAGE_TYPE, KEY_ID_HEADER: encryption.kms_key_arn}
    if whole_body_length(request, gateway) is not None and length is not None:
        body = await read_whole_body(request, exchange, length)
        return web.Response(status=200, body=encryption.encrypt_whole(body), headers=headers)
    response = web.StreamResponse(status=200, headers=headers)
    message_length = encryption.message_length(length)
    if message_length is not None:
        response.content_length = message_length
    else:
        response.enable_chunked_encoding()
    async for data in encryption.stream(request_blocks(request, gateway, exchange)):
        if exchange.response is None:
            await exchange.start(request, response)
        await exchange.write(data)
    if length is not None and encryption.plaintext_length != length:  # pragma: no cover - aiohttp enforces
        raise ConnectionError("request body shorter than its Content-Length")
    await response.write_eof()
    return response


async def decrypt_stream(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    expected = parse_context(request.headers)
    check_length(declared_length(request), gateway.settings.max_object_bytes)
    length = whole_body_length(request, gateway)
    if length is not None:
        message = await read_whole_body(request, exchange, length)
        plaintext = await gateway.streams.decrypt_whole(exchange.caller, message, expected_context=expected)
        return web.Response(status=200, body=plaintext, headers={"Content-Type": MESSAGE_TYPE})
    decryption = await gateway.streams.open_decryption(exchange.caller, request_blocks(request, gateway, exchange),
                                                       expected_context=expected)
    response = web.StreamResponse(status=200, headers={"Content-Type": MESSAGE_TYPE})
    response.enable_chunked_encoding()
    async for data in decryption.chunks():
        if data and exchange.response is None:
            await exchange.start(request, response)
        await exchange.write(data)
    if exchange.response is None:
        await exchange.start(request, response)
    await response.write_eof()
    return response
