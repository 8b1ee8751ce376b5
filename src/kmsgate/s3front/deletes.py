"""DeleteObjects (``POST /bucket?delete``): up to 1000 keys in one request, each deleted on its own.

Each key is checked and deleted as DeleteObject would be (``s3:DeleteObject`` on its ARN); a
key that fails is reported in the result with its S3 code and the others still go. Quiet mode
reports only the failures. ``Content-MD5`` (or a checksum) is checked when sent.
"""

from __future__ import annotations

from aiohttp import web

from kmsgate.gateway.errors import GatewayError
from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.service import Gateway
from kmsgate.gateway.storage.base import StorageError
from kmsgate.s3 import errors as s3
from kmsgate.s3.deletion import (
    MAX_DELETE_REQUEST_BYTES,
    DeletedObject,
    DeleteFailure,
    delete_result,
    parse_delete_request,
)
from kmsgate.s3front.bodies import read_small_body
from kmsgate.s3front.buckets import xml
from kmsgate.s3front.errors import to_s3_error
from kmsgate.s3front.target import Target, checked_key



async def delete_objects(request: web.Request, gateway: Gateway, exchange: Exchange,
                         target: Target) -> web.StreamResponse:
    bucket = target.bucket or ""
    body = await read_small_body(request, exchange, limit=MAX_DELETE_REQUEST_BYTES)
    wanted = parse_delete_request(body)
    await gateway.buckets.head_bucket(exchange.caller, bucket)
    deleted: list[DeletedObject] = []
    failures: list[DeleteFailure] = []
    for entry in wanted.objects:
        try:
            await gateway.objects.delete(exchange.caller, bucket, checked_key(entry.key))
        except (s3.S3Error, GatewayError, StorageError) as exc:
            failures.append(DeleteFailure.from_error(entry.key, to_s3_error(exc), entry.version_id))
            continue
        deleted.append(DeletedObject(entry.key, entry.version_id))
    return xml(delete_result(deleted, failures, quiet=wanted.quiet))
