"""Canonical, unambiguous encoding of an encryption context, used as authenticated data.

Encoding (all integers big-endian)::

    uint16 pair_count
    pair_count times, sorted by the UTF-8 bytes of the key:
        uint16 key_length,   key bytes (UTF-8)
        uint16 value_length, value bytes (UTF-8)

Every key and value is length-prefixed, so ``{"a": "bc"}`` and ``{"ab": "c"}`` encode differently,
and sorting makes the encoding independent of the order a client sent the pairs in. An empty or
absent context encodes as the two bytes ``00 00``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from kmsgate.core.errors import ValidationError

MAX_CONTEXT_BYTES = 8192  # cap on the encoded size: the context travels in every request
_UINT16_MAX = 0xFFFF


def encode_context(encryption_context: Mapping[str, str] | None) -> bytes:
    """Return the canonical encoding; raise ``ValidationError`` if it is too large."""
    if not encryption_context:
        return b"\x00\x00"
    pairs = sorted(
        (key.encode("utf-8"), value.encode("utf-8")) for key, value in encryption_context.items()
    )
    parts = [struct.pack(">H", len(pairs))]
    for key, value in pairs:
        if len(key) > _UINT16_MAX or len(value) > _UINT16_MAX:
            raise ValidationError("Encryption context key or value is too long")
        parts.append(struct.pack(">H", len(key)))
        parts.append(key)
        parts.append(struct.pack(">H", len(value)))
        parts.append(value)
    encoded = b"".join(parts)
    if len(encoded) > MAX_CONTEXT_BYTES:
        raise ValidationError(
            f"Encryption context is too large: its encoding may be at most {MAX_CONTEXT_BYTES} bytes"
        )
    return encoded
