"""Multipart uploads of the S3 API: a thin adapter over ``MultipartService``.

CreateMultipartUpload (``POST ?uploads``) takes the object's headers and user metadata as
PutObject does (kept, encrypted, in the upload's record, and returned by GetObject and
HeadObject of the completed object) and the CMK by PutObject's rules. UploadPart
(``PUT ?partNumber&uploadId``) checks ``Content-MD5`` and ``x-amz-checksum-*`` as its body
streams, before the part is committed; its ETag is the MD5 of the part's plaintext.
UploadPartCopy takes ``x-amz-copy-source`` (and ``x-amz-copy-source-range: bytes=a-b``, and
the ``x-amz-copy-source-if-*`` conditions) as ``kmsgate.s3front.copies`` reads them.
CompleteMultipartUpload checks S3's rules (``InvalidPartOrder``, ``InvalidPart``,
``EntityTooSmall``); the object's ETag is ``"<md5 of the part MD5s>-<count>"``. Checksums a
completion lists per part are accepted and not compared again: each part's was checked as it
was uploaded. ListParts and ListMultipartUploads page in the front (``max-parts``,
``part-number-marker``; ``max-uploads``, ``key-marker``, ``upload-id-marker``, ``prefix``,
``delimiter``, ``encoding-type``) over the service's full lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from aiohttp import web

from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.multipart_service import UploadSummary
from kmsgate.gateway.object_service import ObjectInfo
from kmsgate.gateway.service import Gateway
from kmsgate.s3 import errors as s3
from kmsgate.s3.checksums import ExpectedDigest
from kmsgate.s3.copying import copy_part_result
from kmsgate.s3.etags import MAX_PARTS, quote_etag
from kmsgate.s3.listings import Owner, parse_encoding_type
from kmsgate.s3.metadata import encode_metadata
from kmsgate.s3.multipart import (
    MAX_COMPLETE_REQUEST_BYTES,
    PartEntry,
    PartListing,
    UploadEntry,
    UploadListing,
    complete_multipart_upload_result,
    initiate_multipart_upload_result,
    list_multipart_uploads_result,
    list_parts_result,
    parse_complete_multipart_upload,
)
from kmsgate.s3front.bodies import ChecksumCheck, body_blocks, content_md5, read_small_body
from kmsgate.s3front.buckets import xml
from kmsgate.s3front.copies import COPY_SOURCE_HEADER, check_source_conditions, parse_copy_source
from kmsgate.s3front.objects import (
    AWS_KMS,
    SSE_HEADER,
    SSE_KEY_HEADER,
    declared_length,
    metadata_from_headers,
    request_context,
    requested_key_id,
)
from kmsgate.s3front.target import Target

COPY_SOURCE_RANGE_HEADER = "x-amz-copy-source-range"
MAX_LISTED = 1000
"""Most parts (ListParts) or uploads (ListMultipartUploads) one page lists."""
_MAX_NUMBER_DIGITS = 10


def _number(request: web.Request, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or len(value) > _MAX_NUMBER_DIGITS or int(value) < low or (
            high is not None and int(value) > high):
        raise s3.InvalidArgument(f"Provided {name} is not an integer or not within range", argument_name=name,
                                 argument_value=value[:32])
    return int(value)


def _part_number(request: web.Request) -> int:
    if "partNumber" not in request.query:
        raise s3.InvalidArgument("A part number is required", argument_name="partNumber")
    return _number(request, "partNumber", 0, low=1, high=MAX_PARTS)


def _upload_id(request: web.Request) -> str:
    upload_id = request.query.get("uploadId", "")
    if not upload_id:
        raise s3.NoSuchUpload()
    return upload_id


def _owner(exchange: Exchange) -> Owner:
    return Owner(id=exchange.caller.account_id, display_name=exchange.caller.account_id)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


async def create_multipart_upload(request: web.Request, gateway: Gateway, exchange: Exchange,
                                  target: Target) -> web.StreamResponse:
    bucket, key = target.bucket or "", target.key or ""
    key_id = await requested_key_id(request, gateway, bucket)
    metadata = encode_metadata(metadata_from_headers(request.headers))
    upload_id = await gateway.multipart.create(exchange.caller, bucket, key, key_id=key_id,
                                               encryption_context=request_context(request), metadata=metadata)
    response = xml(initiate_multipart_upload_result(bucket, key, upload_id))
    response.headers[SSE_HEADER] = AWS_KMS
    return response


async def _md5_checked(blocks: AsyncIterator[bytes], expected: ExpectedDigest | None) -> AsyncIterator[bytes]:
    """``blocks``, with ``Content-MD5`` compared before the last one is passed on (``BadDigest``)."""
    if expected is None:
        async for block in blocks:
            yield block
        return
    md5 = hashlib.md5(usedforsecurity=False)
    held: bytes | None = None
    async for block in blocks:
        if held is not None:
            yield held
        md5.update(block)
        held = block
    expected.verify(md5.digest())
    if held is not None:
        yield held


async def upload_part(request: web.Request, gateway: Gateway, exchange: Exchange,
                      target: Target) -> web.StreamResponse:
    part_number, upload_id = _part_number(request), _upload_id(request)
    expected_md5 = content_md5(request)
    settings = gateway.settings
    blocks = body_blocks(request, exchange, limit=settings.max_object_bytes, block=settings.io_block_bytes,
                         checksum=ChecksumCheck(request))
    part = await gateway.multipart.upload_part(exchange.caller, target.bucket or "", target.key or "", upload_id,
                                               part_number, _md5_checked(blocks, expected_md5),
                                               declared_length(request, exchange))
    return web.Response(status=200, headers={"ETag": part.etag, SSE_HEADER: AWS_KMS})


async def upload_part_copy(request: web.Request, gateway: Gateway, exchange: Exchange,
                           target: Target) -> web.StreamResponse:
    part_number, upload_id = _part_number(request), _upload_id(request)
    source = parse_copy_source(request.headers[COPY_SOURCE_HEADER])
    byte_range = request.headers.get(COPY_SOURCE_RANGE_HEADER)
    if byte_range is not None and not byte_range.startswith("bytes="):
        raise s3.InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last",
                                 argument_name=COPY_SOURCE_RANGE_HEADER, argument_value=byte_range[:64])

    def check_source(info: ObjectInfo) -> None:
        check_source_conditions(request, info)

    part = await gateway.multipart.upload_part_copy(
        exchange.caller, target.bucket or "", target.key or "", upload_id, part_number, src_bucket=source.bucket,
        src_key=source.key, byte_range=byte_range, check_source=check_source)
    response = xml(copy_part_result(part.etag.strip('"'), _utc(part.last_modified)))
    response.headers[SSE_HEADER] = AWS_KMS
    return response


async def complete_multipart_upload(request: web.Request, gateway: Gateway, exchange: Exchange,
                                    target: Target) -> web.StreamResponse:
    bucket, key = target.bucket or "", target.key or ""
    upload_id = _upload_id(request)
    body = await read_small_body(request, exchange, limit=MAX_COMPLETE_REQUEST_BYTES)
    parts = parse_complete_multipart_upload(body)
    done = await gateway.multipart.complete(exchange.caller, bucket, key, upload_id,
                                            [(p.part_number, quote_etag(p.etag)) for p in parts])
    location = f"{request.scheme}://{request.host}/{bucket}/{key}"
    response = xml(complete_multipart_upload_result(location, bucket, key, done.etag.strip('"')))
    response.headers[SSE_HEADER] = AWS_KMS
    response.headers[SSE_KEY_HEADER] = done.kms_key_arn
    return response


async def abort_multipart_upload(request: web.Request, gateway: Gateway, exchange: Exchange,
                                 target: Target) -> web.StreamResponse:
    await gateway.multipart.abort(exchange.caller, target.bucket or "", target.key or "", _upload_id(request))
    return web.Response(status=204)


async def list_parts(request: web.Request, gateway: Gateway, exchange: Exchange,
                     target: Target) -> web.StreamResponse:
    bucket, key = target.bucket or "", target.key or ""
    upload_id = _upload_id(request)
    max_parts = min(_number(request, "max-parts", MAX_LISTED), MAX_LISTED)
    marker = _number(request, "part-number-marker", 0)
    parts = [p for p in await gateway.multipart.list_parts(exchange.caller, bucket, key, upload_id)
             if p.part_number > marker]
    page, truncated = parts[:max_parts], len(parts) > max_parts
    owner = _owner(exchange)
    listing = PartListing(
        bucket=bucket, key=key, upload_id=upload_id, initiator=owner, owner=owner,
        parts=[PartEntry(p.part_number, _utc(p.last_modified), p.etag.strip('"'), p.size) for p in page],
        part_number_marker=marker, next_part_number_marker=page[-1].part_number if page else None,
        max_parts=max_parts, is_truncated=truncated)
    return xml(list_parts_result(listing))


def _after_markers(uploads: list[UploadSummary], key_marker: str, upload_id_marker: str) -> list[UploadSummary]:
    """Uploads after (``key-marker``, ``upload-id-marker``) in S3's order: by key, then by initiation."""
    if not key_marker:
        return uploads
    if not upload_id_marker:
        return [u for u in uploads if u.key > key_marker]
    ids = [u.upload_id for u in uploads if u.key == key_marker]
    rest = ids[ids.index(upload_id_marker) + 1:] if upload_id_marker in ids else []
    return [u for u in uploads if (u.key == key_marker and u.upload_id in rest) or u.key > key_marker]


async def list_multipart_uploads(request: web.Request, gateway: Gateway, exchange: Exchange,
                                 target: Target) -> web.StreamResponse:
    bucket = target.bucket or ""
    query = request.query
    encoding_type = parse_encoding_type(query.get("encoding-type"))
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter") or None
    key_marker, upload_id_marker = query.get("key-marker", ""), query.get("upload-id-marker", "")
    max_uploads = min(_number(request, "max-uploads", MAX_LISTED), MAX_LISTED)
    listed = sorted(await gateway.multipart.list_uploads(exchange.caller, bucket, prefix),
                    key=lambda u: (u.key, u.initiated, u.upload_id))
    uploads: list[UploadSummary] = []
    prefixes: list[str] = []
    truncated = False
    last: tuple[str, str] | None = None
    for upload in _after_markers(listed, key_marker, upload_id_marker):
        common = None
        if delimiter is not None and delimiter in upload.key[len(prefix):]:
            common = upload.key[: len(prefix) + upload.key[len(prefix):].index(delimiter) + len(delimiter)]
            if prefixes and prefixes[-1] == common:
                continue
        if len(uploads) + len(prefixes) == max_uploads:
            truncated = True
            break
        if common is not None:
            prefixes.append(common)
            last = (common, "")
        else:
            uploads.append(upload)
            last = (upload.key, upload.upload_id)
    owner = _owner(exchange)
    listing = UploadListing(
        bucket=bucket, key_marker=key_marker, upload_id_marker=upload_id_marker,
        uploads=[UploadEntry(u.key, u.upload_id, owner, owner, _utc(u.initiated)) for u in uploads],
        common_prefixes=prefixes, next_key_marker=last[0] if truncated and last else None,
        next_upload_id_marker=last[1] if truncated and last and last[1] else None,
        prefix=prefix or None, delimiter=delimiter, max_uploads=max_uploads, is_truncated=truncated,
        encoding_type=encoding_type)
    return xml(list_multipart_uploads_result(listing))
