"""ListObjectsV2 and ListObjects (v1): a thin adapter over ``BucketService.list_objects``.

Query parameters as S3 takes them: ``prefix``, ``delimiter``, ``max-keys`` (0-1000; more is
capped at 1000), ``encoding-type=url``; v2: ``continuation-token`` (opaque: the base64url of
the key or common prefix the previous page ended at), ``start-after``; v1: ``marker``. Sizes
are plaintext sizes; ETags are the ones HEAD reports, opened from each object's sealed ETag
without a KMS call (an object without one: its stored message's id; ``kmsgate.gateway.bucket_service``).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone

from aiohttp import web

from kmsgate.gateway.bucket_service import ObjectListing as ServiceListing
from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.service import Gateway
from kmsgate.gateway.storage.base import MAX_LIST_KEYS
from kmsgate.s3 import errors as s3
from kmsgate.s3.etags import unquote_etag
from kmsgate.s3.listings import (
    ObjectEntry,
    ObjectListing,
    list_objects_v1_result,
    list_objects_v2_result,
    parse_encoding_type,
)
from kmsgate.s3front.buckets import xml
from kmsgate.s3front.target import Target

MAX_KEYS_DIGITS = 10


def _max_keys(query: web.Request) -> int:
    value = query.query.get("max-keys")
    if value is None:
        return MAX_LIST_KEYS
    if not value.isdigit() or len(value) > MAX_KEYS_DIGITS:
        raise s3.InvalidArgument("Provided max-keys not an integer or within integer range",
                                 argument_name="max-keys", argument_value=value[:32])
    return min(int(value), MAX_LIST_KEYS)


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8", "surrogateescape")).decode("ascii")


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise s3.InvalidArgument("The continuation token provided is incorrect",
                                 argument_name="continuation-token") from None


async def _page(request: web.Request, gateway: Gateway, exchange: Exchange, bucket: str,
                start_after: str | None, max_keys: int) -> ServiceListing:
    query = request.query
    delimiter = query.get("delimiter") or None
    if max_keys == 0:  # nothing asked for; the bucket is still checked
        await gateway.buckets.head_bucket(exchange.caller, bucket)
        return ServiceListing(objects=(), common_prefixes=(), is_truncated=False, next_marker=None)
    return await gateway.buckets.list_objects(exchange.caller, bucket, prefix=query.get("prefix", ""),
                                              delimiter=delimiter, start_after=start_after or None,
                                              max_keys=max_keys)


def _listing(request: web.Request, bucket: str, page: ServiceListing, max_keys: int) -> ObjectListing:
    query = request.query
    entries = [ObjectEntry(key=o.key, last_modified=datetime.fromtimestamp(o.last_modified, timezone.utc),
                           etag=unquote_etag(o.etag), size=o.size) for o in page.objects]
    return ObjectListing(bucket=bucket, prefix=query.get("prefix", ""), delimiter=query.get("delimiter") or None,
                         max_keys=max_keys, is_truncated=page.is_truncated, contents=entries,
                         common_prefixes=page.common_prefixes,
                         encoding_type=parse_encoding_type(query.get("encoding-type")))


async def list_objects_v2(request: web.Request, gateway: Gateway, exchange: Exchange,
                          target: Target) -> web.StreamResponse:
    bucket = target.bucket or ""
    query = request.query
    parse_encoding_type(query.get("encoding-type"))
    token = query.get("continuation-token")
    start_after = query.get("start-after")
    after = decode_token(token) if token is not None else start_after
    if token is not None and start_after and start_after > (after or ""):
        after = start_after
    max_keys = _max_keys(request)
    page = await _page(request, gateway, exchange, bucket, after, max_keys)
    next_token = encode_token(page.next_marker) if page.is_truncated and page.next_marker else None
    return xml(list_objects_v2_result(_listing(request, bucket, page, max_keys), continuation_token=token,
                                      next_continuation_token=next_token, start_after=start_after))


async def list_objects_v1(request: web.Request, gateway: Gateway, exchange: Exchange,
                          target: Target) -> web.StreamResponse:
    bucket = target.bucket or ""
    query = request.query
    parse_encoding_type(query.get("encoding-type"))
    marker = query.get("marker", "")
    max_keys = _max_keys(request)
    page = await _page(request, gateway, exchange, bucket, marker, max_keys)
    next_marker = page.next_marker if page.is_truncated and query.get("delimiter") else None
    return xml(list_objects_v1_result(_listing(request, bucket, page, max_keys), marker=marker,
                                      next_marker=next_marker))
