"""An object's S3 ETag sealed under the gateway's catalog key, so listings report it with no KMS call.

The ETag S3 gives an unencrypted object is the MD5 of its bytes (``"<md5 of the part MD5s>-<n>"``
for a multipart one); kept in the clear, the MD5 of a plaintext lets anyone who reads storage
confirm a guess of its contents. So storage keeps it only sealed, in the record a listing reads
(the file backend's catalog row, the s3 backend's upstream user metadata or sidecar), under the
catalog key (``kmsgate.gateway.catalog_key``): one 256-bit key per gateway, held in memory only.

Sealed form (all lengths fixed)::

    version        1 byte    0x01
    nonce         12 bytes   from the OS random source
    ciphertext     n bytes   AES-256-GCM of the ETag (ASCII, unquoted; at most MAX_ETAG_BYTES)
    tag           16 bytes

    key = HKDF-SHA256(ikm = catalog key, salt = none, info = b"kmsgate listing etag v1")  (32 bytes)
    associated data = b"kmsgate listing etag v1"
                      || u16 len(bucket) || bucket || u16 len(key) || key (UTF-8)
                      || u8 kind || u16 len(version) || version

``version`` names the object version the ETag belongs to, as a listing can read it from the
stored message's header without a KMS call: for an object written whole (kind 1), the message
id; for a multipart object (kind 2), the upload id its first part's header names. So a sealed
ETag moved to another object, or kept beside a replaced version, does not open
(``ListingEtagError``), and the listing reports that entry as if no ETag were sealed.

Why this is sound: AES-GCM with a random 96-bit nonce stays within its bounds for well over
2^32 seals under one key, far more object writes than one gateway makes; the key is derived
(not the catalog key itself), so the catalog key may serve other records under other labels. A
listing's ETag was never authenticated end to end (a listing does not open the message either):
this protects the MD5 at rest and binds it to its object; HEAD and GET still vouch for it with
the object's own data key.
"""

from __future__ import annotations

import enum
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
CATALOG_KEY_BYTES = 32
INFO = b"kmsgate listing etag v1"
MAX_ETAG_BYTES = 64
"""An S3 ETag is 32 hex digits, with ``-<parts>`` for a multipart object."""
OVERHEAD_BYTES = 1 + NONCE_BYTES + TAG_BYTES
MAX_SEALED_ETAG_BYTES = OVERHEAD_BYTES + MAX_ETAG_BYTES


class VersionKind(enum.IntEnum):
    """What names the object version a sealed ETag belongs to."""

    MESSAGE_ID = 1
    """An object written whole: its message's id."""
    UPLOAD_ID = 2
    """A multipart object: the upload that made it."""


class ListingEtagError(Exception):
    """A sealed ETag that does not open for this object version under this catalog key."""


def _aead(catalog_key: bytes) -> AESGCM:
    if len(catalog_key) != CATALOG_KEY_BYTES:
        raise ValueError("a catalog key is 32 bytes")
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(catalog_key))


def _with_length(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _associated_data(bucket: str, key: str, kind: VersionKind, version: bytes) -> bytes:
    return (INFO + _with_length(bucket.encode("utf-8", "surrogateescape"))
            + _with_length(key.encode("utf-8", "surrogateescape")) + bytes([kind]) + _with_length(version))


def upload_version(upload_id: str) -> bytes:
    """The ``version`` naming a multipart object by the upload that made it."""
    return upload_id.encode("utf-8", "surrogatepass")


def seal_etag(etag: str, *, catalog_key: bytes, bucket: str, key: str, kind: VersionKind, version: bytes) -> bytes:
    """``etag`` (unquoted) sealed for the object version ``bucket/key`` named by ``kind``/``version``."""
    encoded = etag.encode("ascii")
    if not encoded or len(encoded) > MAX_ETAG_BYTES:
        raise ValueError(f"an ETag is 1 to {MAX_ETAG_BYTES} ASCII characters")
    nonce = os.urandom(NONCE_BYTES)
    sealed = _aead(catalog_key).encrypt(nonce, encoded, _associated_data(bucket, key, kind, version))
    return bytes([VERSION]) + nonce + sealed


def open_etag(blob: bytes, *, catalog_key: bytes, bucket: str, key: str, kind: VersionKind, version: bytes) -> str:
    """The ETag (unquoted) sealed in ``blob`` for this object version, or ``ListingEtagError``."""
    if not OVERHEAD_BYTES < len(blob) <= MAX_SEALED_ETAG_BYTES or blob[0] != VERSION:
        raise ListingEtagError("sealed ETag has an unknown form")
    nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        plain = _aead(catalog_key).decrypt(nonce, sealed, _associated_data(bucket, key, kind, version))
    except InvalidTag:
        raise ListingEtagError("sealed ETag failed authentication") from None
    try:
        return plain.decode("ascii")
    except UnicodeDecodeError:  # pragma: no cover - only an ASCII ETag is ever sealed
        raise ListingEtagError("sealed ETag is not ASCII") from None
