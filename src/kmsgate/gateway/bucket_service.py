"""Buckets as a service with no HTTP in it: create, head, delete, list, configuration, object listings.

The S3 front is a thin adapter over this (as over ``ObjectService`` for objects). Every call is
first an S3 action on the bucket's ARN (``arn:aws:s3:::<bucket>``; ListBuckets on
``arn:aws:s3:::*``), decided by the caller's identity policy (``kmsgate.gateway.object_access``):

======================================  ===================================
call                                    action
======================================  ===================================
``create_bucket``                       ``s3:CreateBucket``
``head_bucket``, ``list_objects``       ``s3:ListBucket``
``delete_bucket``                       ``s3:DeleteBucket``
``list_buckets``                        ``s3:ListAllMyBuckets``
``bucket_location``                     ``s3:GetBucketLocation``
``get_encryption``                      ``s3:GetEncryptionConfiguration``
``put_encryption``, ``delete_encryption``  ``s3:PutEncryptionConfiguration`` (as AWS checks both)
======================================  ===================================

Listings report each object's plaintext size: storage knows only the stored message's size,
so the size follows from the message's header (a short ranged read of each listed object, a
few at a time; no KMS call). A multipart object is one message per part, so its size is the
sum of its parts', each from that part's header (one short ranged read per part). An object
whose header cannot be read (not a message, or a signed one whose size the format does not
fix) is listed with its stored size.

ETags are the ones HEAD reports (the MD5 of a single PUT or copy, ``"<md5 of the part MD5s>-<n>"``
of a multipart object), opened from the sealed ETag storage keeps with each object under the
gateway's catalog key (``kmsgate.gateway.listing_etag``), bound to the object and to the version
its header names (message id; a multipart object's upload id): no KMS call per key, none at all
once the catalog key is loaded. An entry falls back to its message's id (as before sealed ETags
existed) when it has no sealed ETag (stored before them, by ``/v1``, or while the catalog key
could not be had), when its sealed ETag does not open for it (moved from another object), or
when the catalog key cannot be had now (``kmsgate.gateway.catalog_key``: the listing waits for it
briefly, never fails for it).

The default-encryption document a write follows (``default_encryption``) is kept per bucket for
``ENCRYPTION_CACHE_SECONDS``, so a small PUT does not pay a catalog read (a thread hand-off) for
it each time. A change made through this process (PutBucketEncryption, DeleteBucketEncryption,
DeleteBucket) drops it at once; one made through another worker or node is followed within that
time, as S3's bucket configurations are eventually consistent. The key a write uses is still
used as the caller and checked by its key policy, so a stale document never widens access.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmsgate.core.principal import Caller
from kmsgate.envelope.errors import DecryptionError
from kmsgate.envelope.header import MessageHeader, parse_header
from kmsgate.envelope.ranges import RangeUnsupportedError, plaintext_length
from kmsgate.gateway.encryption import etag_of
from kmsgate.gateway.listing_etag import ListingEtagError, VersionKind, open_etag, upload_version
from kmsgate.gateway.multipart_records import UPLOAD_ID_CONTEXT_KEY
from kmsgate.gateway.object_access import LIST_BUCKET, bucket_arn
from kmsgate.gateway.storage.base import MAX_LIST_KEYS, BucketInfo, ObjectEntry, ObjectNotFound, ObjectPage

if TYPE_CHECKING:
    from kmsgate.gateway.service import Gateway

CREATE_BUCKET = "s3:CreateBucket"
DELETE_BUCKET = "s3:DeleteBucket"
LIST_ALL_MY_BUCKETS = "s3:ListAllMyBuckets"
GET_BUCKET_LOCATION = "s3:GetBucketLocation"
GET_ENCRYPTION = "s3:GetEncryptionConfiguration"
PUT_ENCRYPTION = "s3:PutEncryptionConfiguration"
ALL_BUCKETS_ARN = "arn:aws:s3:::*"
ENCRYPTION_CONFIG = "encryption"
"""The name of the bucket configuration document holding a bucket's default encryption."""
HEADER_PROBE_BYTES = 4096
"""Bytes read first to find a listed object's header (kmsgate's headers are well under this)."""
PROBES_AT_ONCE = 8
ENCRYPTION_CACHE_SECONDS = 1.0
"""How long a bucket's default-encryption document is kept before it is read again."""
ENCRYPTION_CACHE_BUCKETS = 4096
"""Buckets whose document is kept at once; the map is dropped whole when full."""


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object of a listing: ``size`` is the plaintext size; ``etag`` (quoted) HEAD's, else the
    stored message's (see the module docstring)."""

    key: str
    size: int
    etag: str
    last_modified: float


@dataclass(frozen=True, slots=True)
class ObjectListing:
    objects: tuple[ListedObject, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_marker: str | None


class BucketService:
    """Buckets of one gateway process (see the module docstring)."""

    __slots__ = ("_gateway", "_clock", "_encryption", "_changes")

    def __init__(self, gateway: Gateway, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._gateway = gateway
        self._clock = clock
        self._encryption: dict[str, tuple[float, bytes | None]] = {}
        """bucket -> (when read, its default-encryption document)"""
        self._changes = 0
        """Changes made through this service: a read that a change overtook is not kept."""

    def _check(self, caller: Caller, action: str, bucket: str) -> None:
        self._gateway.object_access.check(caller, action, bucket_arn(bucket))

    async def create_bucket(self, caller: Caller, bucket: str) -> BucketInfo:
        self._check(caller, CREATE_BUCKET, bucket)
        return await self._gateway.storage.create_bucket(bucket)

    async def head_bucket(self, caller: Caller, bucket: str) -> BucketInfo:
        self._check(caller, LIST_BUCKET, bucket)
        return await self._gateway.storage.head_bucket(bucket)

    async def delete_bucket(self, caller: Caller, bucket: str) -> None:
        self._check(caller, DELETE_BUCKET, bucket)
        self._forget_encryption(bucket)
        try:
            await self._gateway.storage.delete_bucket(bucket)
        finally:
            self._forget_encryption(bucket)

    async def list_buckets(self, caller: Caller) -> list[BucketInfo]:
        self._gateway.object_access.check(caller, LIST_ALL_MY_BUCKETS, ALL_BUCKETS_ARN)
        return await self._gateway.storage.list_buckets()

    async def bucket_location(self, caller: Caller, bucket: str) -> BucketInfo:
        self._check(caller, GET_BUCKET_LOCATION, bucket)
        return await self._gateway.storage.head_bucket(bucket)

    async def get_encryption(self, caller: Caller, bucket: str) -> bytes | None:
        """The bucket's default-encryption document, ``None`` when it has none."""
        self._check(caller, GET_ENCRYPTION, bucket)
        return await self._gateway.storage.get_bucket_config(bucket, ENCRYPTION_CONFIG)

    async def put_encryption(self, caller: Caller, bucket: str, document: bytes) -> None:
        self._check(caller, PUT_ENCRYPTION, bucket)
        self._forget_encryption(bucket)
        try:
            await self._gateway.storage.put_bucket_config(bucket, ENCRYPTION_CONFIG, document)
        finally:
            self._forget_encryption(bucket)

    async def delete_encryption(self, caller: Caller, bucket: str) -> None:
        self._check(caller, PUT_ENCRYPTION, bucket)
        self._forget_encryption(bucket)
        try:
            await self._gateway.storage.delete_bucket_config(bucket, ENCRYPTION_CONFIG)
        finally:
            self._forget_encryption(bucket)

    async def default_encryption(self, bucket: str) -> bytes | None:
        """The default-encryption document a write into ``bucket`` follows, at most
        ``ENCRYPTION_CACHE_SECONDS`` old (see the module docstring); no access check: the write
        itself is checked as ``s3:PutObject``."""
        now = self._clock()
        cached = self._encryption.get(bucket)
        if cached is not None and now - cached[0] < ENCRYPTION_CACHE_SECONDS:
            return cached[1]
        changes = self._changes
        document = await self._gateway.storage.get_bucket_config(bucket, ENCRYPTION_CONFIG)
        if changes == self._changes:
            if len(self._encryption) >= ENCRYPTION_CACHE_BUCKETS:
                self._encryption.clear()
            self._encryption[bucket] = (now, document)
        return document

    def _forget_encryption(self, bucket: str) -> None:
        self._changes += 1
        self._encryption.pop(bucket, None)

    async def list_objects(self, caller: Caller, bucket: str, *, prefix: str = "", delimiter: str | None = None,
                           start_after: str | None = None, max_keys: int = MAX_LIST_KEYS) -> ObjectListing:
        """One page of ``bucket``'s objects in key order, with S3's listing semantics (see
        ``kmsgate.gateway.storage.base``), each with its plaintext size."""
        self._check(caller, LIST_BUCKET, bucket)
        page: ObjectPage = await self._gateway.storage.list_objects(
            bucket, prefix=prefix, delimiter=delimiter, start_after=start_after, max_keys=max_keys)
        limit = asyncio.Semaphore(PROBES_AT_ONCE)
        catalog_key = await self._gateway.catalog_key.get() if page.objects else None

        async def listed(entry: ObjectEntry) -> ListedObject:
            async with limit:
                return await self._listed(bucket, entry, catalog_key)

        objects = await asyncio.gather(*(listed(entry) for entry in page.objects))
        return ObjectListing(objects=tuple(objects), common_prefixes=page.common_prefixes,
                             is_truncated=page.is_truncated, next_marker=page.next_marker)

    async def _listed(self, bucket: str, entry: ObjectEntry, catalog_key: bytes | None) -> ListedObject:
        etag = f'"{entry.etag}"'
        try:
            reader = await self._gateway.storage.open_read(bucket, entry.key, 0, HEADER_PROBE_BYTES)
        except ObjectNotFound:  # deleted since the listing was taken: listed as the listing saw it
            return ListedObject(entry.key, entry.size, etag, entry.last_modified)
        try:
            data = b"".join([chunk async for chunk in reader])
            part_sizes = reader.info.part_sizes
            sealed_etag = reader.info.sealed_etag
        finally:
            await reader.aclose()
        try:
            header = self._header(data)
            if header is None:
                return ListedObject(entry.key, entry.size, etag, entry.last_modified)
            if not part_sizes:
                size = plaintext_length(header, entry.size)
            else:
                size = plaintext_length(header, part_sizes[0]) + await self._later_parts_size(
                    bucket, entry.key, part_sizes)
            opened = _opened_etag(sealed_etag, catalog_key, bucket, entry.key, header, bool(part_sizes))
            return ListedObject(entry.key, size, opened or etag_of(header), entry.last_modified)
        except (DecryptionError, RangeUnsupportedError, ValueError, ObjectNotFound):
            # not a message this gateway can size (or replaced meanwhile): its stored size stands
            return ListedObject(entry.key, entry.size, etag, entry.last_modified)

    def _header(self, data: bytes) -> MessageHeader | None:
        header, _ = parse_header(data, self._gateway.settings.decrypt_policy)
        return header

    async def _later_parts_size(self, bucket: str, key: str, part_sizes: tuple[int, ...]) -> int:
        """The plaintext size of every part of a multipart object but the first, from their headers."""
        total, start = 0, part_sizes[0]
        for stored_size in part_sizes[1:]:
            reader = await self._gateway.storage.open_read(bucket, key, start, start + min(stored_size,
                                                                                          HEADER_PROBE_BYTES))
            try:
                data = b"".join([chunk async for chunk in reader])
            finally:
                await reader.aclose()
            header = self._header(data)
            if header is None:
                raise ValueError("a part's header does not fit the probe")
            total += plaintext_length(header, stored_size)
            start += stored_size
        return total


def _opened_etag(sealed_etag: bytes, catalog_key: bytes | None, bucket: str, key: str, header: MessageHeader,
                 multipart: bool) -> str | None:
    """The quoted ETag sealed for this object version, ``None`` when there is none to open."""
    if not sealed_etag or catalog_key is None:
        return None
    if multipart:
        upload_id = header.encryption_context.get(UPLOAD_ID_CONTEXT_KEY)
        if upload_id is None:
            return None
        kind, version = VersionKind.UPLOAD_ID, upload_version(upload_id)
    else:
        kind, version = VersionKind.MESSAGE_ID, header.message_id
    try:
        etag = open_etag(sealed_etag, catalog_key=catalog_key, bucket=bucket, key=key, kind=kind, version=version)
    except ListingEtagError:
        return None
    return f'"{etag}"'
