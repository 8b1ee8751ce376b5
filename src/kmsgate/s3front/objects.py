"""Object operations of the S3 API: PutObject, GetObject, HeadObject, DeleteObject.

A thin adapter over ``ObjectService``: it reads S3's headers into a call and the result into
S3's response headers. What it keeps with an object (``Content-Type``, ``Content-Disposition``,
``Content-Encoding``, ``Content-Language``, ``Cache-Control``, ``Expires``, ``x-amz-meta-*`` and
the plaintext's MD5, as an ``kmsgate.s3.metadata`` record) is sealed by the service under the
object's data key, so storage holds it only encrypted. The ETag is the quoted MD5 of the
plaintext, computed as it streams; ``Content-MD5`` and ``x-amz-checksum-*`` are checked before
the object is committed (``BadDigest``, and nothing is stored).

Which CMK: ``x-amz-server-side-encryption-aws-kms-key-id`` with ``aws:kms``; else the bucket's
default encryption (``PutBucketEncryption``); else the gateway's default key. ``AES256``
(SSE-S3) is served with the gateway's default key; SSE-C is ``NotImplemented``. Objects stored
by the ``/v1`` API (no metadata record) read as ``binary/octet-stream`` with the message's ETag.

GET and HEAD with ``?partNumber=n`` answer for that part of a multipart object (206 with
``Content-Range`` and ``x-amz-mp-parts-count``); part 1 of a single-part object is all of it
(206, no parts count); another number is ``InvalidPartNumber`` (416), and a ``Range`` as
well is ``InvalidRequest`` (400).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone

from aiohttp import web

from kmsgate.gateway.exchange import Exchange, send_object
from kmsgate.gateway.headers import CONTEXT_HEADER, parse_context, parse_key_id
from kmsgate.gateway.object_service import ObjectInfo, part_range
from kmsgate.gateway.service import Gateway
from kmsgate.s3 import errors as s3
from kmsgate.s3.bucket_config import SseAlgorithm, parse_bucket_encryption
from kmsgate.s3.conditions import Preconditions, check
from kmsgate.s3.dates import format_http_date
from kmsgate.s3.etags import MAX_PARTS, md5_etag, quote_etag
from kmsgate.s3.headers import collect_user_metadata, parse_response_overrides, user_metadata_headers
from kmsgate.s3.metadata import ObjectMetadata, decode_metadata, encode_metadata
from kmsgate.s3front.auth import DECODED_LENGTH_HEADER
from kmsgate.s3front.bodies import ChecksumCheck, body_blocks, content_md5
from kmsgate.s3front.target import Target

SSE_HEADER = "x-amz-server-side-encryption"
SSE_KEY_HEADER = "x-amz-server-side-encryption-aws-kms-key-id"
SSE_C_HEADER = "x-amz-server-side-encryption-customer-algorithm"
AWS_KMS = "aws:kms"
PART_NUMBER_PARAMETER = "partNumber"
PARTS_COUNT_HEADER = "x-amz-mp-parts-count"
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
_STORED_HEADERS = {
    "content_type": "Content-Type",
    "content_disposition": "Content-Disposition",
    "content_encoding": "Content-Encoding",
    "content_language": "Content-Language",
    "cache_control": "Cache-Control",
    "expires": "Expires",
}


async def requested_key_id(request: web.Request, gateway: Gateway, bucket: str) -> str | None:
    """The CMK a PUT (or copy, or CreateMultipartUpload) asks for (``None``: the gateway's
    default), as the module docstring says."""
    headers = request.headers
    if SSE_C_HEADER in headers or "x-amz-server-side-encryption-customer-key" in headers:
        raise s3.NotImplementedFeature("Server-side encryption with customer-provided keys (SSE-C) is not supported.")
    algorithm = headers.get(SSE_HEADER)
    key_id = parse_key_id(headers)
    if algorithm is not None and algorithm not in (AWS_KMS, SseAlgorithm.AES256.value):
        raise s3.InvalidArgument("The encryption method specified is not supported", argument_name=SSE_HEADER,
                                 argument_value=algorithm[:64])
    if key_id is not None:
        if algorithm != AWS_KMS:
            raise s3.InvalidArgument("Specifying a KMS key id requires x-amz-server-side-encryption: aws:kms",
                                     argument_name=SSE_KEY_HEADER)
        return key_id
    if algorithm == SseAlgorithm.AES256.value:
        return None
    document = await gateway.buckets.default_encryption(bucket)
    if document is None:
        return None
    config = parse_bucket_encryption(document)
    if config.sse_algorithm is SseAlgorithm.AWS_KMS:
        return config.kms_master_key_id
    return None


def request_context(request: web.Request) -> dict[str, str]:
    """The encryption context a write asks for (the gateway's header), empty when none."""
    return parse_context(request.headers) if CONTEXT_HEADER in request.headers else {}


def metadata_from_headers(headers: Mapping[str, str]) -> ObjectMetadata:
    """What a write's headers ask to keep with the object (``Content-*``, ``Cache-Control``,
    ``Expires``, ``x-amz-meta-*``), with no ETag yet."""
    stored = {attribute: headers[name] for attribute, name in _STORED_HEADERS.items() if name in headers}
    if stored.get("content_encoding", "").strip().lower() == "aws-chunked":
        del stored["content_encoding"]  # the transfer framing, not the object's encoding
    return ObjectMetadata(
        etag=None, user_metadata=collect_user_metadata(headers.items()), content_type=stored.get("content_type"),
        content_disposition=stored.get("content_disposition"), content_encoding=stored.get("content_encoding"),
        content_language=stored.get("content_language"), cache_control=stored.get("cache_control"),
        expires=stored.get("expires"))


def declared_length(request: web.Request, exchange: Exchange) -> int | None:
    """The payload length a request declares (its decoded length when aws-chunked)."""
    if exchange.chunk_verifier is not None:
        value = request.headers.get(DECODED_LENGTH_HEADER, "")
        return int(value) if value.isdigit() else None
    return request.content_length


async def put_object(request: web.Request, gateway: Gateway, exchange: Exchange, target: Target) -> web.StreamResponse:
    bucket, key = target.bucket or "", target.key or ""
    key_id = await requested_key_id(request, gateway, bucket)
    context = request_context(request)
    expected_md5 = content_md5(request)
    checksum = ChecksumCheck(request)
    requested = metadata_from_headers(request.headers)

    def describe(md5: bytes) -> bytes:
        if expected_md5 is not None:
            expected_md5.verify(md5)
        return encode_metadata(replace(requested, etag=md5_etag(md5)))

    settings = gateway.settings
    blocks = body_blocks(request, exchange, limit=settings.max_object_bytes, block=settings.io_block_bytes,
                         checksum=checksum)
    result = await gateway.objects.put(exchange.caller, bucket, key, blocks, key_id=key_id,
                                       encryption_context=context, length=declared_length(request, exchange),
                                       describe=describe)
    md5 = result.md5 or b""
    return web.Response(status=200, headers={
        "ETag": quote_etag(md5.hex()), SSE_HEADER: AWS_KMS, SSE_KEY_HEADER: result.kms_key_arn,
    })


def stored_metadata(info: ObjectInfo) -> ObjectMetadata | None:
    """The metadata record kept with an object, ``None`` for one stored without (``/v1``)."""
    return decode_metadata(info.metadata) if info.metadata else None


def object_etag(info: ObjectInfo, metadata: ObjectMetadata | None) -> str:
    """An object's S3 ETag, unquoted: its record's (the MD5 of a single PUT or copy), else the
    service's (a multipart object's ``<md5>-<n>``, or the message id of a ``/v1`` object)."""
    if metadata is not None and metadata.etag is not None:
        return metadata.etag
    return info.etag.strip('"')


_NOT_MODIFIED_HEADERS = ("ETag", "Last-Modified", "Cache-Control", "Expires")
"""What a 304 repeats of the 200 it stands for (RFC 9110 section 15.4.5); S3 sends no body
headers with it, and a 412 carries none of these."""


def _check_conditions(request: web.Request, info: ObjectInfo, metadata: ObjectMetadata | None,
                      headers: Mapping[str, str]) -> None:
    """Raise ``NotModified`` (with the validators of ``headers``, the 200's) or
    ``PreconditionFailed`` when the request's conditions say so."""
    conditions = Preconditions.from_headers(request.headers)
    if conditions == Preconditions():
        return
    modified = datetime.fromtimestamp(info.last_modified, timezone.utc)
    validators = {name: headers[name] for name in _NOT_MODIFIED_HEADERS if name in headers}
    check(conditions, etag=object_etag(info, metadata), last_modified=modified, is_read=True,
          validators=validators)


def _headers(request: web.Request, info: ObjectInfo, metadata: ObjectMetadata | None) -> dict[str, str]:
    headers = {
        "ETag": quote_etag(object_etag(info, metadata)),
        "Last-Modified": format_http_date(datetime.fromtimestamp(info.last_modified, timezone.utc)),
        "Accept-Ranges": "bytes" if info.accepts_ranges else "none",
        "Content-Type": DEFAULT_CONTENT_TYPE,
        SSE_HEADER: AWS_KMS,
        SSE_KEY_HEADER: info.kms_key_arn,
    }
    if metadata is not None:
        for attribute, name in _STORED_HEADERS.items():
            value = getattr(metadata, attribute)
            if value is not None:
                headers[name] = value
        headers.update(user_metadata_headers(metadata.user_metadata))
    headers.update(parse_response_overrides(request.query))
    return headers


def requested_part(request: web.Request) -> int | None:
    """GetObject's or HeadObject's ``?partNumber``, checked; with a ``Range`` it is ``InvalidRequest``."""
    value = request.query.get(PART_NUMBER_PARAMETER)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 5 or not 1 <= int(value) <= MAX_PARTS:
        raise s3.InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                 argument_name=PART_NUMBER_PARAMETER, argument_value=value[:32])
    if "Range" in request.headers:
        raise s3.InvalidRequest("Cannot specify both Range header and partNumber query parameter.")
    return int(value)


def _part_headers(info: ObjectInfo, part_number: int | None) -> dict[str, str]:
    """``x-amz-mp-parts-count`` of a read by part of a multipart object, as S3 sends it."""
    if part_number is None or not info.part_sizes:
        return {}
    return {PARTS_COUNT_HEADER: str(len(info.part_sizes))}


async def head_object(request: web.Request, gateway: Gateway, exchange: Exchange,
                      target: Target) -> web.StreamResponse:
    part_number = requested_part(request)
    info = await gateway.objects.head(exchange.caller, target.bucket or "", target.key or "",
                                      part_number=part_number)
    metadata = stored_metadata(info)
    headers = _headers(request, info, metadata)
    _check_conditions(request, info, metadata, headers)
    headers.update(_part_headers(info, part_number))
    served = part_range(info, part_number) if part_number is not None else None
    status, length = 200, info.size
    if served is not None:
        status, length = 206, served[1] - served[0]
        headers["Content-Range"] = f"bytes {served[0]}-{served[1] - 1}/{info.size}"
    response = web.StreamResponse(status=status, headers=headers)
    if length is not None:
        response.content_length = length
    await exchange.start(request, response)
    await response.write_eof()
    return response


async def get_object(request: web.Request, gateway: Gateway, exchange: Exchange,
                     target: Target) -> web.StreamResponse:
    part_number = requested_part(request)
    read = await gateway.objects.read(exchange.caller, target.bucket or "", target.key or "",
                                      byte_range=request.headers.get("Range"), part_number=part_number)
    try:
        metadata = stored_metadata(read.info)
        headers = _headers(request, read.info, metadata)
        _check_conditions(request, read.info, metadata, headers)
        headers.update(_part_headers(read.info, part_number))
        return await send_object(request, exchange, read, headers)
    finally:
        await read.aclose()


async def delete_object(request: web.Request, gateway: Gateway, exchange: Exchange,
                        target: Target) -> web.StreamResponse:
    await gateway.objects.delete(exchange.caller, target.bucket or "", target.key or "")
    return web.Response(status=204)
