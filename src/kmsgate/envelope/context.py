"""Encryption context: the canonical byte encoding the message header carries and authenticates.

Wire format (all integers big-endian, unsigned)::

    offset  size  field
    0       2     pair count N (> 0)
    2       2     key length K1
    4       K1    key 1, UTF-8
    ..      2     value length V1
    ..      V1    value 1, UTF-8
    ..            ... pairs 2..N, sorted by the UTF-8 bytes of their keys

An empty context encodes as zero bytes (the header's AAD-length field is then 0).
Keys are unique; the whole encoding fits in 2**16 - 1 bytes because the header
prefixes it with a 2-byte length. Keys starting with ``aws-crypto-`` are reserved
for the format itself (``aws-crypto-public-key`` carries the signing suite's
public key); callers may not set them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from .errors import EncryptionError, HeaderLimitError, MalformedHeaderError

RESERVED_PREFIX = "aws-crypto-"
PUBLIC_KEY_FIELD = "aws-crypto-public-key"
MAX_CONTEXT_BYTES = 2**16 - 1  # the format's own limit: a 2-byte length prefix


def check_user_context(encryption_context: Mapping[str, str]) -> None:
    """Reject a caller context that uses reserved keys or is not all strings."""
    for key, value in encryption_context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise EncryptionError("encryption context keys and values must be strings")
        if key.startswith(RESERVED_PREFIX):
            raise EncryptionError(f"encryption context keys starting with {RESERVED_PREFIX!r} are reserved")


def serialize_context(encryption_context: Mapping[str, str]) -> bytes:
    """The canonical encoding above; ``b""`` for an empty context."""
    if not encryption_context:
        return b""
    try:
        pairs = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in encryption_context.items())
    except (AttributeError, UnicodeEncodeError) as exc:
        raise EncryptionError("encryption context must be valid Unicode strings") from exc
    if len(pairs) > 0xFFFF:
        raise EncryptionError("encryption context has too many entries")
    out = bytearray(struct.pack(">H", len(pairs)))
    for key, value in pairs:
        if len(key) > 0xFFFF or len(value) > 0xFFFF:
            raise EncryptionError("encryption context entry is too long")
        out += struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value
    if len(out) > MAX_CONTEXT_BYTES:
        raise EncryptionError("serialized encryption context exceeds 65535 bytes")
    return bytes(out)


def parse_context(data: bytes | memoryview, *, max_bytes: int = MAX_CONTEXT_BYTES) -> dict[str, str]:
    """Parse the encoding above from exactly ``data``; raise a ``MalformedHeaderError`` otherwise."""
    if len(data) > max_bytes:
        raise HeaderLimitError("encryption context exceeds the configured size")
    if len(data) == 0:
        return {}
    view = memoryview(data)
    if len(view) < 2:
        raise MalformedHeaderError("encryption context too short")
    (count,) = struct.unpack_from(">H", view, 0)
    if count == 0:
        raise MalformedHeaderError("encryption context has a zero pair count")
    pos = 2
    result: dict[str, str] = {}
    previous: bytes | None = None
    for _ in range(count):
        fields = []
        for _part in range(2):
            if pos + 2 > len(view):
                raise MalformedHeaderError("encryption context truncated")
            (length,) = struct.unpack_from(">H", view, pos)
            pos += 2
            if pos + length > len(view):
                raise MalformedHeaderError("encryption context truncated")
            fields.append(bytes(view[pos : pos + length]))
            pos += length
        key_bytes, value_bytes = fields
        if previous is not None and key_bytes <= previous:
            # Duplicates would make two different contexts encode alike.
            raise MalformedHeaderError("encryption context keys are duplicated or unsorted")
        previous = key_bytes
        try:
            result[key_bytes.decode("utf-8")] = value_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedHeaderError("encryption context is not UTF-8") from exc
    if pos != len(view):
        raise MalformedHeaderError("encryption context has trailing bytes")
    return result
