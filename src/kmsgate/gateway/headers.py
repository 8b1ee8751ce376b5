"""Parsing of the request headers the gateway honours (pure: strings in, values out).

* ``x-amz-server-side-encryption-aws-kms-key-id``: the KMS key (id, ARN or alias), at most
  ``MAX_KEY_ID_CHARS`` characters; absent means the configured default key.
* ``x-amz-server-side-encryption-context``: standard base64 of a UTF-8 JSON object whose
  values are all strings. The header is capped at ``MAX_CONTEXT_HEADER_CHARS`` before it
  is decoded, so a hostile header costs bounded work.
* ``Range``: one ``bytes=`` range (``a-b``, ``a-`` or the suffix ``-n``), turned into a
  half-open ``(start, end)`` over a body of known size. As RFC 9110 allows, a malformed
  or multi-range header is ignored (the whole body is served); a well-formed range that
  selects nothing raises ``RangeNotSatisfiable`` (416).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

import orjson

KEY_ID_HEADER = "x-amz-server-side-encryption-aws-kms-key-id"
CONTEXT_HEADER = "x-amz-server-side-encryption-context"
MAX_KEY_ID_CHARS = 2048
MAX_CONTEXT_HEADER_CHARS = 16 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_RANGE_DIGITS = 19  # beyond any object size; keeps int() on attacker digits cheap


class HeaderError(ValueError):
    """A header is present but unusable; the message names the header, not its value."""


class RangeNotSatisfiable(ValueError):
    """The range is well formed but starts past the end of the body."""


def parse_key_id(headers: Mapping[str, str]) -> str | None:
    raw = headers.get(KEY_ID_HEADER)
    if raw is None:
        return None
    key_id = raw.strip()
    if not key_id or len(key_id) > MAX_KEY_ID_CHARS:
        raise HeaderError(f"{KEY_ID_HEADER} must be 1 to {MAX_KEY_ID_CHARS} characters")
    return key_id


def parse_context(headers: Mapping[str, str]) -> dict[str, str]:
    raw = headers.get(CONTEXT_HEADER)
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_CONTEXT_HEADER_CHARS:
        raise HeaderError(f"{CONTEXT_HEADER} is longer than {MAX_CONTEXT_HEADER_CHARS} characters")
    try:
        decoded = orjson.loads(base64.b64decode(raw.strip(), validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise HeaderError(f"{CONTEXT_HEADER} must be base64 of a UTF-8 JSON object") from None
    if not isinstance(decoded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
    ):
        raise HeaderError(f"{CONTEXT_HEADER} must be a JSON object of string values")
    return decoded


def encode_context(encryption_context: Mapping[str, str]) -> str:
    """The header value for ``encryption_context`` (for clients and tests)."""
    return base64.b64encode(orjson.dumps(dict(encryption_context))).decode("ascii")


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` half-open within ``[0, size)``, or ``None`` to serve everything."""
    if value is None:
        return None
    match = _RANGE.match(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if len(first) > _MAX_RANGE_DIGITS or len(last) > _MAX_RANGE_DIGITS:
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(value)
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(value)
    end = size if not last else min(int(last) + 1, size)
    return start, end
