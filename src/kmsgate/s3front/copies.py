"""CopyObject, and the copy source both it and UploadPartCopy read: a thin adapter over ``MultipartService``.

``x-amz-copy-source`` names the source as ``[/]<bucket>/<key>``, URL-encoded, optionally with
``?versionId=null`` (the only version an unversioned bucket has; any other is
``NotImplemented``). The source is read as the caller (``s3:GetObject``) and encrypted again
for the destination (``s3:PutObject``), under the CMK the request asks for (the same rules as
PutObject: ``x-amz-server-side-encryption*``, else the destination bucket's default, else the
gateway's); the source's CMK and context are not carried over.

``x-amz-copy-source-if-match``, ``-if-none-match``, ``-if-modified-since`` and
``-if-unmodified-since`` are checked against the source before anything is written; a failure
is ``PreconditionFailed`` (412). ``x-amz-metadata-directive``: ``COPY`` (the default) keeps the
source's headers and user metadata, ``REPLACE`` takes the request's. Either way the copy's
ETag is the MD5 of its plaintext (also when the source was a multipart object), as S3's is for
a copy made in one request. Copying an object onto itself with ``COPY`` and no encryption
header changes nothing, and is S3's ``InvalidRequest``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from urllib.parse import unquote

from aiohttp import web

from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.object_service import Describe, ObjectInfo
from kmsgate.gateway.service import Gateway
from kmsgate.s3 import errors as s3
from kmsgate.s3.conditions import COPY_SOURCE_PREFIX, Preconditions, check
from kmsgate.s3.copying import copy_object_result
from kmsgate.s3.etags import md5_etag
from kmsgate.s3.metadata import ObjectMetadata, encode_metadata
from kmsgate.s3front.buckets import xml
from kmsgate.s3front.objects import (
    AWS_KMS,
    SSE_HEADER,
    SSE_KEY_HEADER,
    metadata_from_headers,
    object_etag,
    request_context,
    requested_key_id,
    stored_metadata,
)
from kmsgate.s3front.target import Target, checked_bucket, checked_key

COPY_SOURCE_HEADER = "x-amz-copy-source"
METADATA_DIRECTIVE_HEADER = "x-amz-metadata-directive"
_DIRECTIVES = ("COPY", "REPLACE")


@dataclass(frozen=True, slots=True)
class CopySource:
    bucket: str
    key: str


def parse_copy_source(value: str) -> CopySource:
    """The object ``x-amz-copy-source`` names (see the module docstring)."""
    path, _, query = value.partition("?")
    if query and query != "versionId=null":
        raise s3.NotImplementedFeature("Copying a version other than the null version is not supported.")
    try:
        decoded = unquote(path, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise s3.InvalidArgument("Invalid copy source encoding", argument_name=COPY_SOURCE_HEADER) from None
    bucket, slash, key = decoded.removeprefix("/").partition("/")
    if not bucket or not slash or not key:
        raise s3.InvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                                 argument_name=COPY_SOURCE_HEADER, argument_value=value[:256])
    return CopySource(checked_bucket(bucket), checked_key(key))


def check_source_conditions(request: web.Request, info: ObjectInfo) -> ObjectMetadata | None:
    """The source's ``x-amz-copy-source-if-*`` conditions, checked (412 when one fails); returns
    the source's metadata record."""
    metadata = stored_metadata(info)
    conditions = Preconditions.from_headers(request.headers, prefix=COPY_SOURCE_PREFIX)
    if conditions != Preconditions():
        modified = datetime.fromtimestamp(info.last_modified, timezone.utc)
        check(conditions, etag=object_etag(info, metadata), last_modified=modified, is_read=False)
    return metadata


def _directive(request: web.Request) -> str:
    directive = request.headers.get(METADATA_DIRECTIVE_HEADER, "COPY").upper()
    if directive not in _DIRECTIVES:
        raise s3.InvalidArgument("Unknown metadata directive.", argument_name=METADATA_DIRECTIVE_HEADER,
                                 argument_value=directive[:32])
    return directive


async def copy_object(request: web.Request, gateway: Gateway, exchange: Exchange,
                      target: Target) -> web.StreamResponse:
    bucket, key = target.bucket or "", target.key or ""
    source = parse_copy_source(request.headers[COPY_SOURCE_HEADER])
    directive = _directive(request)
    if (source.bucket, source.key) == (bucket, key) and directive == "COPY" and SSE_HEADER not in request.headers:
        raise s3.InvalidRequest("This copy request is illegal because it is trying to copy an object to itself "
                                "without changing the object's metadata, storage class, website redirect location "
                                "or encryption attributes.")
    key_id = await requested_key_id(request, gateway, bucket)
    replacement = metadata_from_headers(request.headers) if directive == "REPLACE" else None

    def describe(info: ObjectInfo) -> Describe:
        kept = check_source_conditions(request, info)
        wanted = replacement or (replace(kept, parts_count=None) if kept is not None else ObjectMetadata(etag=None))
        return lambda md5: encode_metadata(replace(wanted, etag=md5_etag(md5)))

    result = await gateway.multipart.copy(exchange.caller, source.bucket, source.key, bucket, key, key_id=key_id,
                                          encryption_context=request_context(request), describe=describe)
    md5 = result.md5 or b""
    modified = datetime.fromtimestamp(result.last_modified, timezone.utc)
    response = xml(copy_object_result(md5.hex(), modified))
    response.headers[SSE_HEADER] = AWS_KMS
    response.headers[SSE_KEY_HEADER] = result.kms_key_arn
    return response
