"""Bucket operations of the S3 API: Create/Head/Delete/ListBuckets, GetBucketLocation, bucket encryption.

A thin adapter over ``BucketService``. A bucket's default encryption is kept as the canonical
``ServerSideEncryptionConfiguration`` document (parsed and rendered again, so what storage holds
is always valid); ``AES256`` is accepted and served with the gateway's default key.
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.service import Gateway
from kmsgate.s3 import errors as s3
from kmsgate.s3.bucket_config import (
    MAX_CONFIGURATION_BYTES,
    US_EAST_1,
    bucket_encryption_result,
    location_constraint_result,
    parse_bucket_encryption,
    parse_create_bucket_configuration,
)
from kmsgate.s3.listings import BucketEntry, Owner, list_buckets_result
from kmsgate.s3front.bodies import read_small_body
from kmsgate.s3front.front import REGION, XML_CONTENT_TYPE
from kmsgate.s3front.target import Target

BUCKET_REGION_HEADER = "x-amz-bucket-region"


class IllegalLocationConstraint(s3.S3Error):
    code, status = "IllegalLocationConstraintException", 400
    default_message = "The specified location-constraint is not valid for this endpoint."


class EncryptionConfigurationNotFound(s3.S3Error):
    code, status = "ServerSideEncryptionConfigurationNotFoundError", 404
    default_message = "The server side encryption configuration was not found"


def xml(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type=XML_CONTENT_TYPE)


def _region(request: web.Request) -> str:
    return request.app[REGION]


async def create_bucket(request: web.Request, gateway: Gateway, exchange: Exchange,
                        target: Target) -> web.StreamResponse:
    bucket = target.bucket or ""
    body = await read_small_body(request, exchange, limit=MAX_CONFIGURATION_BYTES)
    constraint = parse_create_bucket_configuration(body).location_constraint
    if (constraint or US_EAST_1) != _region(request):
        raise IllegalLocationConstraint()
    await gateway.buckets.create_bucket(exchange.caller, bucket)
    return web.Response(status=200, headers={"Location": f"/{bucket}"})


async def head_bucket(request: web.Request, gateway: Gateway, exchange: Exchange,
                      target: Target) -> web.StreamResponse:
    await gateway.buckets.head_bucket(exchange.caller, target.bucket or "")
    return web.Response(status=200, headers={BUCKET_REGION_HEADER: _region(request)})


async def delete_bucket(request: web.Request, gateway: Gateway, exchange: Exchange,
                        target: Target) -> web.StreamResponse:
    await gateway.buckets.delete_bucket(exchange.caller, target.bucket or "")
    return web.Response(status=204)


async def list_buckets(request: web.Request, gateway: Gateway, exchange: Exchange,
                       target: Target) -> web.StreamResponse:
    buckets = await gateway.buckets.list_buckets(exchange.caller)
    entries = [BucketEntry(b.name, datetime.fromtimestamp(b.created, timezone.utc)) for b in buckets]
    owner = Owner(id=exchange.caller.account_id, display_name=exchange.caller.account_id)
    return xml(list_buckets_result(entries, owner))


async def get_bucket_location(request: web.Request, gateway: Gateway, exchange: Exchange,
                              target: Target) -> web.StreamResponse:
    await gateway.buckets.bucket_location(exchange.caller, target.bucket or "")
    return xml(location_constraint_result(_region(request)))


async def put_bucket_encryption(request: web.Request, gateway: Gateway, exchange: Exchange,
                                target: Target) -> web.StreamResponse:
    body = await read_small_body(request, exchange, limit=MAX_CONFIGURATION_BYTES)
    config = parse_bucket_encryption(body)
    await gateway.buckets.put_encryption(exchange.caller, target.bucket or "", bucket_encryption_result(config))
    return web.Response(status=200)


async def get_bucket_encryption(request: web.Request, gateway: Gateway, exchange: Exchange,
                                target: Target) -> web.StreamResponse:
    document = await gateway.buckets.get_encryption(exchange.caller, target.bucket or "")
    if document is None:
        raise EncryptionConfigurationNotFound()
    return xml(document)


async def delete_bucket_encryption(request: web.Request, gateway: Gateway, exchange: Exchange,
                                   target: Target) -> web.StreamResponse:
    await gateway.buckets.delete_encryption(exchange.caller, target.bucket or "")
    return web.Response(status=204)
