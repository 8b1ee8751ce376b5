"""The metadata record kept with each object: its headers, user metadata and ETag.

Serialised as one compact JSON object (orjson, UTF-8); the gateway encrypts it with the
object, so it is never read or written in the clear. Fields that are absent are left out::

    key   type                    meaning
    v     int                     format version, 1
    etag  str                     the plaintext ETag, unquoted: 32 hex digits (the MD5
                                  of a single PUT) or 32 hex digits, "-", part count;
                                  absent from a multipart upload's record, written at
                                  CreateMultipartUpload before any part exists (the
                                  object's ETag is then its completion's)
    pc    int 1..10000            part count, for a multipart object only
    ct    str                     Content-Type
    cd    str                     Content-Disposition
    ce    str                     Content-Encoding
    cl    str                     Content-Language
    cc    str                     Cache-Control
    ex    str                     Expires, as the client sent it
    um    {str: str}              user metadata (x-amz-meta-*), names lower-case

Decoding is strict — unknown version or field, wrong type, an ETag inconsistent with the
part count (a part count without an ETag included), or more than ``MAX_RECORD_BYTES`` — and any failure is one
``InvalidStoredMetadata`` (an ``InternalError`` to the client: the record is ours, so a
bad one is our fault, and what is wrong with it is not the client's business).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kmsgate.s3.errors import InternalError
from kmsgate.s3.etags import MAX_PARTS

FORMAT_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024
"""Largest record accepted: 2 KB of user metadata plus headers S3 caps at 8 KB in all."""
_SINGLE_ETAG = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-([1-9][0-9]{0,4})$")
_HEADER_FIELDS = {
    "ct": "content_type",
    "cd": "content_disposition",
    "ce": "content_encoding",
    "cl": "content_language",
    "cc": "cache_control",
    "ex": "expires",
}
_KNOWN_FIELDS = frozenset({"v", "etag", "pc", "um", *_HEADER_FIELDS})


class InvalidStoredMetadata(InternalError):
    """A stored metadata record that does not decode; reported as S3's InternalError."""


@dataclass(frozen=True, slots=True)
class ObjectMetadata:
    """What is stored about an object besides its bytes."""

    etag: str | None
    """``None`` in a multipart upload's record (see the module docstring)."""
    parts_count: int | None = None
    content_type: str | None = None
    content_disposition: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    user_metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _etag_fits(self.etag, self.parts_count):
            raise ValueError("etag must be an MD5 hex digest, with -<parts_count> for a multipart object")

    @property
    def md5(self) -> bytes | None:
        """The plaintext MD5 of a single-PUT object (``None`` for a multipart one)."""
        return bytes.fromhex(self.etag) if self.etag is not None and self.parts_count is None else None


def _etag_fits(etag: str | None, parts_count: int | None) -> bool:
    if etag is None:
        return parts_count is None
    if parts_count is None:
        return _SINGLE_ETAG.match(etag) is not None
    match = _MULTIPART_ETAG.match(etag)
    return match is not None and int(match.group(1)) == parts_count and 1 <= parts_count <= MAX_PARTS


def encode_metadata(metadata: ObjectMetadata) -> bytes:
    """The record for ``metadata``."""
    record: dict[str, Any] = {"v": FORMAT_VERSION}
    if metadata.etag is not None:
        record["etag"] = metadata.etag
    if metadata.parts_count is not None:
        record["pc"] = metadata.parts_count
    for short, attribute in _HEADER_FIELDS.items():
        value = getattr(metadata, attribute)
        if value is not None:
            record[short] = value
    if metadata.user_metadata:
        record["um"] = dict(metadata.user_metadata)
    return orjson.dumps(record)


def _string(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidStoredMetadata()
    return value


def decode_metadata(data: bytes) -> ObjectMetadata:
    """The metadata in a record; ``InvalidStoredMetadata`` if it is not a valid one."""
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidStoredMetadata()
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidStoredMetadata() from exc
    if not isinstance(record, dict) or not set(record) <= _KNOWN_FIELDS:
        raise InvalidStoredMetadata()
    version = record.get("v")
    if type(version) is not int or version != FORMAT_VERSION:
        raise InvalidStoredMetadata()
    etag = _string(record, "etag")
    parts_count = record.get("pc")
    if parts_count is not None and type(parts_count) is not int:
        raise InvalidStoredMetadata()
    user_metadata = record.get("um", {})
    if not isinstance(user_metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in user_metadata.items()
    ):
        raise InvalidStoredMetadata()
    if not _etag_fits(etag, parts_count):
        raise InvalidStoredMetadata()
    return ObjectMetadata(
        etag=etag,
        parts_count=parts_count,
        content_type=_string(record, "ct"),
        content_disposition=_string(record, "cd"),
        content_encoding=_string(record, "ce"),
        content_language=_string(record, "cl"),
        cache_control=_string(record, "cc"),
        expires=_string(record, "ex"),
        user_metadata=user_metadata,
    )
