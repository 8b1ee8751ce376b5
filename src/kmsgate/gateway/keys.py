"""Object keys: what the gateway accepts as the ``{key}`` in ``/v1/objects/{key}``.

A valid key is a non-empty string whose UTF-8 encoding is at most ``MAX_OBJECT_KEY_BYTES``
bytes, contains no NUL, and has no path segment (between ``/``) equal to ``.`` or ``..``.
Empty segments (``a//b``, a leading ``/``) are allowed, as S3 allows them. Backends still
must not trust keys for file paths (the file backend hashes them); these rules keep keys
portable across backends and free of path-traversal look-alikes in logs and tools.
"""

from __future__ import annotations

MAX_OBJECT_KEY_BYTES = 1024


class InvalidObjectKey(ValueError):
    """The key breaks a rule above; the message says which (never echoes the key)."""


def validate_object_key(key: str) -> str:
    """Return ``key`` unchanged if valid, else raise ``InvalidObjectKey``."""
    if not key:
        raise InvalidObjectKey("object key is empty")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidObjectKey("object key is not valid UTF-8") from None
    if len(encoded) > MAX_OBJECT_KEY_BYTES:
        raise InvalidObjectKey(f"object key is longer than {MAX_OBJECT_KEY_BYTES} bytes")
    if "\x00" in key:
        raise InvalidObjectKey("object key contains NUL")
    for segment in key.split("/"):
        if segment in (".", ".."):
            raise InvalidObjectKey("object key contains a '.' or '..' segment")
    return key
