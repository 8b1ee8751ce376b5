"""Limit/Marker pagination as the KMS list operations use it.

A marker is the URL-safe base64 of the sort key of the last item returned, so a page boundary
survives items being added or removed between calls.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kmsgate.core.errors import InvalidMarkerError

T = TypeVar("T")
DEFAULT_LIMIT = 100


def paginate(
    items: Sequence[T], sort_key: Callable[[T], str], limit: int | None, marker: str | None
) -> tuple[list[T], dict[str, Any]]:
    """Return one page of ``items`` and the ``truncated``/``next_marker`` fields for the response."""
    ordered = sorted(items, key=sort_key)
    if marker is not None:
        after = _decode(marker)
        ordered = [item for item in ordered if sort_key(item) > after]
    size = DEFAULT_LIMIT if limit is None else limit
    page = ordered[:size]
    if len(ordered) > size:
        return page, {"truncated": True, "next_marker": _encode(sort_key(page[-1]))}
    return page, {"truncated": False}


def _encode(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")


def _decode(marker: str) -> str:
    """Accept only markers this module issued: strict base64 that re-encodes to the same text."""
    try:
        value = base64.b64decode(marker.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidMarkerError("The marker is not valid") from None
    if not value or _encode(value) != marker:
        raise InvalidMarkerError("The marker is not valid")
    return value
