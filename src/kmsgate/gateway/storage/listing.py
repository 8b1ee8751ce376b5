"""S3's ListObjects semantics over any sorted key range scan (pure: the scan is passed in).

Keys are ordered by code point, which for valid (surrogate-free) strings is the order of their
UTF-8 bytes, S3's order, and SQLite's ``BINARY`` collation of UTF-8 text. A page holds the keys
after ``start_after`` that start with ``prefix``; with a ``delimiter``, a key holding it after
the prefix rolls up into the common prefix ending at its first delimiter. Each common prefix is
returned once and counts once towards ``max_keys``; one at or before ``start_after`` is skipped
(the continuation of a page that ended on it). Rolled-up groups are skipped with one seek past
the group, not by reading through them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kmsgate.gateway.storage.base import MAX_LIST_KEYS, ObjectEntry, ObjectPage

SCAN_BATCH = 256
"""Entries asked of the scan per call."""

Scan = Callable[[str, bool, "str | None", int], Sequence[ObjectEntry]]
"""``scan(lower, inclusive, upper, limit)``: up to ``limit`` entries in key order whose keys
are ``> lower`` (``>=`` when ``inclusive``) and ``< upper`` (unbounded when ``None``)."""


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (``None``: none is)."""
    chars = list(prefix)
    while chars:
        c = ord(chars.pop()) + 1
        if 0xD800 <= c <= 0xDFFF:  # surrogates are never in a key
            c = 0xE000
        if c <= 0x10FFFF:
            return "".join(chars) + chr(c)
    return None


def list_page(scan: Scan, *, prefix: str = "", delimiter: str | None = None,
              start_after: str | None = None, max_keys: int = MAX_LIST_KEYS) -> ObjectPage:
    """One page of a listing; see the module docstring."""
    max_keys = max(0, min(max_keys, MAX_LIST_KEYS))
    objects: list[ObjectEntry] = []
    prefixes: list[str] = []
    order: list[str] = []  # every entry's name, in page order, for next_marker

    def page(truncated: bool) -> ObjectPage:
        marker = order[-1] if truncated and order else None
        return ObjectPage(tuple(objects), tuple(prefixes), truncated, marker)

    if max_keys == 0:
        return page(False)
    upper = prefix_end(prefix) if prefix else None
    lower, inclusive = prefix, True
    if start_after is not None and start_after >= prefix:
        lower, inclusive = start_after, False
    while True:
        batch = scan(lower, inclusive, upper, SCAN_BATCH)
        seek: str | None = None
        for entry in batch:
            group = None
            if delimiter:
                at = entry.key.find(delimiter, len(prefix))
                if at >= 0:
                    group = entry.key[: at + len(delimiter)]
            if group is not None and start_after is not None and group <= start_after:
                pass  # the group a continuation starts inside was returned already
            elif len(order) == max_keys:
                return page(True)
            elif group is None:
                objects.append(entry)
                order.append(entry.key)
            else:
                prefixes.append(group)
                order.append(group)
            if group is not None:
                seek = prefix_end(group)
                if seek is None:
                    return page(False)
                break
        if seek is not None:
            lower, inclusive = seek, True
            if upper is not None and lower >= upper:
                return page(False)
        elif len(batch) < SCAN_BATCH:
            return page(False)
        else:
            lower, inclusive = batch[-1].key, False
