"""Where the s3 backend keeps an object's metadata blob and part sizes upstream (pure formats).

An upstream object's user metadata can hold only 2 KB, so the blob travels one of two ways,
named by the upstream object's user metadata:

* ``x-amz-meta-kmsgate-m``: the blob itself, base64, when it is at most ``INLINE_METADATA_BYTES``
  and the object was written whole (no part sizes to keep); then ``x-amz-meta-kmsgate-e`` holds
  the object's sealed ETag (``kmsgate.gateway.listing_etag``), base64, when it has one;
* ``x-amz-meta-kmsgate-s``: a version token ``t`` (32 random hex digits, unique to this one
  object version); the blob and the part sizes are in the sidecar object
  ``<prefix>.kmsgate/meta/<t>``, written BEFORE the object is made visible;
* neither: an empty blob, no part sizes (also every object written before this scheme).

Sidecar body, byte by byte (integers big-endian)::

    4   b"KGS1"
    4   n = metadata length (at most MAX_METADATA_BYTES)
    n   metadata
    4   p = number of parts (0 for an object written whole; at most MAX_PART_NUMBER)
    8p  each part's stored size

A sidecar that also keeps the object's sealed ETag starts ``b"KGS2"`` instead, and goes on::

    2   e = sealed ETag length (1 to MAX_SEALED_ETAG_BYTES)
    e   the sealed ETag

(one without a sealed ETag is still written as ``KGS1``, readable by every version).

A part's metadata blob, when it has one, is kept in ``<prefix>.kmsgate/parts/<sha256(upload
id)>/<part number>`` as ``u8 len(etag) || etag (ASCII) || blob``: the upstream ETag of the part
it was written with, so a record left by an earlier upload of the same part number (the upstream
keeps the later part, whichever record was written last) is recognised and ignored.

The in-progress upload record ``<prefix>.kmsgate/uploads/<sha256(upload id)>`` is the token
``t`` (32 ASCII hex digits) followed by the upload's metadata blob: the token is chosen before
the upstream ``CreateMultipartUpload`` (it goes into the object's user metadata there) and the
blob is needed again only at completion, when the sidecar is written.

Every length is checked against what remains and against its cap before it is used: a
damaged sidecar raises ``ValueError``, never a wrong split.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from kmsgate.gateway.storage.base import (
    MAX_METADATA_BYTES,
    MAX_PART_METADATA_BYTES,
    MAX_PART_NUMBER,
    MAX_SEALED_ETAG_BYTES,
)

INLINE_METADATA_BYTES = 1024
"""Largest blob kept in the upstream object's own user metadata (1368 base64 characters)."""
INLINE_FIELD = "kmsgate-m"
SIDECAR_FIELD = "kmsgate-s"
SEALED_ETAG_FIELD = "kmsgate-e"
_MAGIC = b"KGS1"
_MAGIC_WITH_ETAG = b"KGS2"
_TOKEN = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Sidecar:
    metadata: bytes
    part_sizes: tuple[int, ...] = ()
    sealed_etag: bytes = b""


def encode_sidecar(sidecar: Sidecar) -> bytes:
    if (len(sidecar.metadata) > MAX_METADATA_BYTES or len(sidecar.part_sizes) > MAX_PART_NUMBER
            or len(sidecar.sealed_etag) > MAX_SEALED_ETAG_BYTES):
        raise ValueError("sidecar over its caps")
    etag = sidecar.sealed_etag
    return b"".join([
        _MAGIC_WITH_ETAG if etag else _MAGIC, struct.pack(">I", len(sidecar.metadata)), sidecar.metadata,
        struct.pack(">I", len(sidecar.part_sizes)), struct.pack(f">{len(sidecar.part_sizes)}Q", *sidecar.part_sizes),
        struct.pack(">H", len(etag)) + etag if etag else b"",
    ])


def decode_sidecar(body: bytes) -> Sidecar:
    if len(body) < 8 or body[:4] not in (_MAGIC, _MAGIC_WITH_ETAG):
        raise ValueError("not a sidecar")
    (n,) = struct.unpack_from(">I", body, 4)
    if n > MAX_METADATA_BYTES or len(body) < 8 + n + 4:
        raise ValueError("sidecar metadata length out of range")
    metadata = body[8 : 8 + n]
    (p,) = struct.unpack_from(">I", body, 8 + n)
    end = 12 + n + 8 * p
    if p > MAX_PART_NUMBER or len(body) < end:
        raise ValueError("sidecar part count out of range")
    sizes = struct.unpack_from(f">{p}Q", body, 12 + n)
    etag = b""
    if body[:4] == _MAGIC_WITH_ETAG:
        if len(body) < end + 2:
            raise ValueError("sidecar sealed ETag length missing")
        (e,) = struct.unpack_from(">H", body, end)
        end += 2
        if not 1 <= e <= MAX_SEALED_ETAG_BYTES or len(body) < end + e:
            raise ValueError("sidecar sealed ETag length out of range")
        etag, end = bytes(body[end : end + e]), end + e
    if len(body) != end:
        raise ValueError("sidecar has trailing bytes")
    return Sidecar(bytes(metadata), tuple(sizes), etag)


def inline_fields(metadata: bytes, sealed_etag: bytes = b"") -> dict[str, str] | None:
    """The user metadata that carries ``metadata`` (and ``sealed_etag``) inline, or ``None`` when
    it needs a sidecar."""
    if len(metadata) > INLINE_METADATA_BYTES or len(sealed_etag) > MAX_SEALED_ETAG_BYTES:
        return None
    fields = {INLINE_FIELD: base64.b64encode(metadata).decode("ascii")} if metadata else {}
    if sealed_etag:
        fields[SEALED_ETAG_FIELD] = base64.b64encode(sealed_etag).decode("ascii")
    return fields


def new_token() -> str:
    """A version token: 128 random bits, so sidecar names never collide."""
    return secrets.token_hex(16)


def sidecar_fields(token: str) -> dict[str, str]:
    return {SIDECAR_FIELD: token}


@dataclass(frozen=True, slots=True)
class MetadataRef:
    """What an upstream object's user metadata says about its blob."""

    inline: bytes = b""
    token: str | None = None
    """The sidecar's version token, when there is one."""
    sealed_etag: bytes = b""
    """The sealed ETag kept inline (with a sidecar, the sidecar keeps it)."""


def _inline_blob(fields: Mapping[str, str], name: str, cap: int) -> bytes:
    value = fields.get(name)
    if value is None:
        return b""
    try:
        blob = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("malformed inline metadata") from exc
    if len(blob) > cap:
        raise ValueError("inline metadata over its cap")
    return blob


def read_fields(fields: Mapping[str, str]) -> MetadataRef:
    token = fields.get(SIDECAR_FIELD)
    if token is not None:
        if not _TOKEN.fullmatch(token):
            raise ValueError("malformed sidecar token")
        return MetadataRef(token=token)
    return MetadataRef(inline=_inline_blob(fields, INLINE_FIELD, INLINE_METADATA_BYTES),
                       sealed_etag=_inline_blob(fields, SEALED_ETAG_FIELD, MAX_SEALED_ETAG_BYTES))


def encode_part_record(etag: str, metadata: bytes) -> bytes:
    encoded = etag.encode("ascii")
    if len(encoded) > 255 or len(metadata) > MAX_PART_METADATA_BYTES:
        raise ValueError("part record over its caps")
    return bytes([len(encoded)]) + encoded + metadata


def decode_part_record(body: bytes) -> tuple[str, bytes]:
    """The upstream ETag a part record belongs to, and its blob."""
    if not body or len(body) > 1 + body[0] + MAX_PART_METADATA_BYTES or len(body) < 1 + body[0]:
        raise ValueError("part record length out of range")
    return body[1 : 1 + body[0]].decode("ascii", errors="replace"), bytes(body[1 + body[0] :])


def encode_upload_record(token: str, metadata: bytes) -> bytes:
    return token.encode("ascii") + metadata


def decode_upload_record(body: bytes) -> tuple[str, bytes]:
    if len(body) < 32 or len(body) > 32 + MAX_METADATA_BYTES:
        raise ValueError("upload record length out of range")
    token = body[:32].decode("ascii", errors="replace")
    if not _TOKEN.fullmatch(token):
        raise ValueError("malformed upload record")
    return token, bytes(body[32:])
