"""Limit/Marker pagination as the KMS list operations use it.

A marker is the URL-safe base64 of the sort key of the last item returned, so a page boundary
survives items being added or removed between calls.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kmsgate.core.errors import InvalidMarkerError, ValidationError

T = TypeVar("T")
DEFAULT_LIMIT = 100


def check_limit(limit: int | None, maximum: int) -> None:
    """AWS's own bound on ``Limit`` for an operation, tighter than the service model's 1-1000
    (ListAliases, ListGrants and ListRetirableGrants take at most 100, ListResourceTags 50)."""
    if limit is not None and limit > maximum:
        raise ValidationError(
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
            f"Member must have value less than or equal to {maximum}"
        )


def paginate(
    items: Sequence[T],
    sort_key: Callable[[T], str],
    limit: int | None,
    marker: str | None,
    default_limit: int = DEFAULT_LIMIT,
) -> tuple[list[T], dict[str, Any]]:
    """Return one page of ``items`` and the ``truncated``/``next_marker`` fields for the response.

    ``default_limit`` is the page size without a ``Limit``: AWS documents it per operation (100
    for ListKeys, 50 for ListAliases, ListGrants, ListRetirableGrants and ListResourceTags).
    """
    ordered = sorted(items, key=sort_key)
    if marker is not None:
        after = _decode(marker)
        ordered = [item for item in ordered if sort_key(item) > after]
    size = default_limit if limit is None else limit
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
