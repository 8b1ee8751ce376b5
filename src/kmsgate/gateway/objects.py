"""``/v1/objects/{key}``: PUT encrypts a body into storage; GET/HEAD decrypt it back; DELETE removes it.

Every request is first an S3 action on the object's ARN in the default bucket, decided by the
caller's identity policy (``kmsgate.gateway.object_access``). PUT stores the message under
the caller's context plus ``aws:s3:arn`` = the object's ARN; GET and HEAD refuse a stored
message whose context names another object (502 ``ObjectCorrupt``: it was moved or copied
there), checked on the header before any KMS call and authenticated with the data key.

GET reads the stored message once: the first blocks give the header; the data key comes
from the decryption cache or KMS ``Decrypt`` (as the caller, for HEAD too); the plaintext
length follows from the stored length (``kmsgate.envelope.ranges``), so the response
carries an exact Content-Length and a strong ETag (from the random message id). That
length is stated (HEAD, a streamed GET, ``Content-Range``) only after the final frame
authenticated where the stored length puts it (``kmsgate.gateway.final_frame``): a
truncated object is 502 ``ObjectCorrupt`` before the status line. A ``Range`` request is
served 206 by reading and decrypting only the regular frames that hold the range, plus
the final frame. A frame that fails authentication after the body started aborts the
connection. An object that arrived whole with its header (the file backend reads its
first megabyte with the open) is decrypted in one call and answered in one write, after
the whole message verified.

Signed messages (suite 0x0578, which kmsgate reads but does not write) end with a
signature over the whole message, of a length the format does not fix: their size is
known only once that signature verified. So GET ignores ``Range`` for them and answers
200 with the whole body, streamed without Content-Length as frames verify, and never
finishes it (no final chunk) unless the signature verifies; HEAD verifies the header
under the data key and states no size; both send ``Accept-Ranges: none``.
"""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from kmsgate.core.principal import Caller
from kmsgate.envelope.decryptor import Decryptor
from kmsgate.envelope.errors import DataKeyUnavailableError, DecryptionError, TruncatedMessageError
from kmsgate.envelope.header import MessageHeader, parse_header
from kmsgate.envelope.ranges import RangeDecryptor, RangeUnsupportedError, plaintext_length, plan_range
from kmsgate.gateway.bodies import (
    check_context,
    check_declared_length,
    encrypt_body,
    etag_of,
    key_arn,
    open_encryptor,
    requested_key_and_context,
)
from kmsgate.gateway.errors import GatewayError
from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.final_frame import FinalFrame, open_same_object, verified_final_frame
from kmsgate.gateway.headers import RangeNotSatisfiable, parse_context, parse_range
from kmsgate.gateway.keys import validate_object_key
from kmsgate.gateway.object_access import (
    DELETE_OBJECT,
    GET_OBJECT,
    LIST_BUCKET,
    PUT_OBJECT,
    bind_context,
    bucket_arn,
    is_bound_to,
    object_arn,
)
from kmsgate.gateway.service import Gateway
from kmsgate.gateway.storage.base import ObjectNotFound, ObjectReader, StoredObject

OCTET_STREAM = "application/octet-stream"


def _plaintext_length(header: MessageHeader, stored_size: int) -> int | None:
    """The plaintext size, or ``None`` for signed messages (their footer length varies)."""
    try:
        return plaintext_length(header, stored_size)
    except RangeUnsupportedError:
        return None


def corrupt() -> GatewayError:
    return GatewayError(502, "ObjectCorrupt", "The stored object failed authentication.")


def _object_arn(request: web.Request, gateway: Gateway) -> tuple[str, str]:
    """The validated object key of the request and its ARN in the default bucket."""
    key = validate_object_key(request.match_info["key"])
    return key, object_arn(gateway.settings.default_bucket, key)


async def _open_for_read(gateway: Gateway, caller: Caller, key: str) -> ObjectReader:
    """Open ``key`` for a caller allowed ``s3:GetObject`` on it; as S3 does, a missing object is
    404 only for a caller who may also list the bucket, 403 for anyone else."""
    try:
        return await gateway.storage.open_read(gateway.settings.default_bucket, key)
    except ObjectNotFound:
        gateway.object_access.check(caller, LIST_BUCKET, bucket_arn(gateway.settings.default_bucket))
        raise


def _check_bound(header: MessageHeader, arn: str) -> None:
    """A stored message must name its own object: one moved or copied to another key is corrupt there."""
    if not is_bound_to(header.encryption_context, arn):
        raise corrupt()


async def put_object(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key, arn = _object_arn(request, gateway)
    gateway.object_access.check(exchange.caller, PUT_OBJECT, arn)
    key_id, requested_context = requested_key_and_context(request, gateway)
    context = bind_context(requested_context, arn)
    length = check_declared_length(request, gateway.settings.max_object_bytes)
    materials = gateway.materials_for(exchange.caller)
    entry, encryptor = await open_encryptor(gateway, materials, key_id, context, length)
    writer = await gateway.storage.open_write(gateway.settings.default_bucket, key)
    try:
        await encrypt_body(request, gateway, exchange, materials, entry, encryptor, writer.write)
        stored = await writer.commit()
    except BaseException:
        await writer.abort()
        raise
    body = {
        "key": key, "size": encryptor.plaintext_length, "stored_size": stored.size,
        "kms_key_id": key_arn(entry), "etag": etag_of(encryptor.header).strip('"'),
    }
    return web.Response(status=201, body=orjson.dumps(body), content_type="application/json",
                        headers={"ETag": etag_of(encryptor.header)})


async def delete_object(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key, arn = _object_arn(request, gateway)
    gateway.object_access.check(exchange.caller, DELETE_OBJECT, arn)
    await gateway.storage.delete(gateway.settings.default_bucket, key)
    return web.Response(status=204)


async def _read_header(gateway: Gateway, chunks: AsyncIterator[bytes]) -> tuple[MessageHeader, bytearray]:
    """Parse the header from the first chunks; return it and every byte read so far."""
    buf = bytearray()
    policy = gateway.settings.decrypt_policy
    while True:
        header, _ = parse_header(buf, policy)
        if header is not None:
            return header, buf
        chunk = await anext(chunks, None)
        if chunk is None:
            raise TruncatedMessageError("stored object ends inside its header")
        buf += chunk


def _object_headers(info: StoredObject, header: MessageHeader, total: int | None) -> dict[str, str]:
    return {
        "ETag": etag_of(header),
        "Last-Modified": email.utils.formatdate(info.last_modified, usegmt=True),
        "Accept-Ranges": "bytes" if total is not None else "none",
        "Content-Type": OCTET_STREAM,
    }


async def _data_key(gateway: Gateway, exchange: Exchange, header: MessageHeader) -> bytes:
    """The data key of a stored message, unwrapped as the caller (cache or KMS ``Decrypt``)."""
    try:
        return await gateway.materials_for(exchange.caller).data_key(header)
    except DataKeyUnavailableError:
        raise
    except DecryptionError:
        raise corrupt() from None


async def head_object(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key, arn = _object_arn(request, gateway)
    gateway.object_access.check(exchange.caller, GET_OBJECT, arn)
    reader = await _open_for_read(gateway, exchange.caller, key)
    info = reader.info
    try:
        try:
            header, buffered = await _read_header(gateway, aiter(reader))
            total = _plaintext_length(header, info.size)
        except DecryptionError:
            raise corrupt() from None
        _check_bound(header, arn)  # before any KMS call; the header is authenticated with the data key below
    finally:
        await reader.aclose()
    data_key = await _data_key(gateway, exchange, header)
    try:
        if total is None:  # signed: no size to vouch for; the header authenticates under the data key
            Decryptor.for_header(header, gateway.settings.decrypt_policy).set_data_key(data_key)
        else:
            await verified_final_frame(gateway, key, info, header, data_key, buffered)
    except DecryptionError:
        raise corrupt() from None
    headers = _object_headers(info, header, total)
    response = web.StreamResponse(status=200, headers=headers)
    if total is not None:
        response.content_length = total
    await exchange.start(request, response)
    await response.write_eof()
    return response


async def get_object(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    key, arn = _object_arn(request, gateway)
    gateway.object_access.check(exchange.caller, GET_OBJECT, arn)
    expected = parse_context(request.headers)
    reader = await _open_for_read(gateway, exchange.caller, key)
    try:
        chunks = aiter(reader)
        try:
            header, buffered = await _read_header(gateway, chunks)
            total = _plaintext_length(header, reader.info.size)
        except DecryptionError:
            raise corrupt() from None
        _check_bound(header, arn)  # before any KMS call; the header is authenticated with the data key below
        data_key = await _data_key(gateway, exchange, header)
        final: FinalFrame | None = None
        if total is not None and (len(buffered) < reader.info.size or "Range" in request.headers):
            # The size is about to be stated, or a range served: the final frame vouches for both.
            # (An object read whole with its header is verified whole before anything is sent.)
            try:
                final = await verified_final_frame(gateway, key, reader.info, header, data_key, buffered)
            except DecryptionError:
                raise corrupt() from None
        wanted = None
        if total is not None:
            try:
                wanted = parse_range(request.headers.get("Range"), total)
            except RangeNotSatisfiable:
                raise GatewayError(416, "InvalidRange", "The requested range is not satisfiable.") from None
        headers = _object_headers(reader.info, header, total)
        if wanted is not None:
            assert total is not None and final is not None  # a range is parsed only with a vouched-for length
            await reader.aclose()
            return await _get_range(request, gateway, exchange, key, reader.info, header, data_key,
                                    total, wanted, expected, headers, final)
        return await _get_whole(request, gateway, exchange, reader, chunks, header, buffered, data_key,
                                total, expected, headers)
    finally:
        await reader.aclose()


async def _get_whole(request: web.Request, gateway: Gateway, exchange: Exchange, reader: ObjectReader,
                     chunks: AsyncIterator[bytes], header: MessageHeader, buffered: bytearray, data_key: bytes,
                     total: int | None, expected: dict[str, str], headers: dict[str, str]) -> web.StreamResponse:
    decryptor = Decryptor(gateway.settings.decrypt_policy)
    try:
        decryptor.update(buffered)
        decryptor.set_data_key(data_key)
    except DecryptionError:
        raise corrupt() from None
    check_context(header, expected)
    if len(buffered) == reader.info.size:  # the whole object was read with its header: answer in one write
        try:
            body = decryptor.update(b"")
            rest = decryptor.finalize()
        except DecryptionError:
            raise corrupt() from None
        if rest:
            body += rest
        return web.Response(status=200, body=body, headers=headers)
    response = web.StreamResponse(status=200, headers=headers)
    if total is not None:
        response.content_length = total
    await exchange.start(request, response)
    out = await gateway.pool.run(decryptor.update, b"", weight=len(buffered))
    await exchange.write(out)
    async for chunk in chunks:
        await exchange.write(await gateway.pool.run(decryptor.update, chunk))
    await exchange.write(decryptor.finalize())
    await response.write_eof()
    return response


async def _get_range(request: web.Request, gateway: Gateway, exchange: Exchange, key: str, info: StoredObject,
                     header: MessageHeader, data_key: bytes, total: int, wanted: tuple[int, int],
                     expected: dict[str, str], headers: dict[str, str], final: FinalFrame) -> web.StreamResponse:
    """Regular frames holding the range, streamed from storage; then the part of the range in
    the final frame, whose plaintext was verified before the status line."""
    start, end = wanted
    plan = plan_range(final.span, header, info.size, start, end - 1)
    check_context(header, expected)
    decryptor: RangeDecryptor | None = None
    reader: ObjectReader | None = None
    if plan.frames is not None:  # the header already authenticated, with the final frame
        decryptor = RangeDecryptor(header, data_key, plan.frames, gateway.settings.decrypt_policy)
        reader = await open_same_object(gateway, key, info, plan.frames.start, plan.frames.end)
    try:
        response = web.StreamResponse(status=206, headers=headers)
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
        response.content_length = end - start
        await exchange.start(request, response)
        if reader is not None and decryptor is not None:
            async for chunk in reader:
                await exchange.write(await gateway.pool.run(decryptor.update, chunk))
            await exchange.write(decryptor.finalize())
        await exchange.write(final.plaintext[plan.tail_start : plan.tail_end])
        await response.write_eof()
        return response
    finally:
        if reader is not None:
            await reader.aclose()
