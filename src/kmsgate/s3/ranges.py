"""The ``Range`` request header as S3 accepts it.

S3 serves one byte range per GET: ``bytes=first-last``, ``bytes=first-`` or the suffix
``bytes=-length``. What it cannot use it ignores and serves the whole object (200):
another unit, several ranges, a syntax error, or ``last < first``. A well-formed range
that selects nothing — ``first`` at or past the end, a zero-length suffix, any range of
an empty object — is ``InvalidRange`` (416), with the requested range and the object size
in the error document. ``last`` past the end is clamped to the last byte, and a suffix
longer than the object selects all of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kmsgate.s3.errors import InvalidRange

MAX_RANGE_DIGITS = 19
"""Longest position accepted (beyond any object size); longer ones make the range ignored."""
_SINGLE_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` (inclusive) to ``stop`` (exclusive) of an object of ``size`` bytes."""

    start: int
    stop: int
    size: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` header of the 206 response, e.g. ``bytes 0-9/100``."""
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """The range to serve from an object of ``size`` bytes, or ``None`` for all of it."""
    if value is None:
        return None
    match = _SINGLE_RANGE.match(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if len(first) > MAX_RANGE_DIGITS or len(last) > MAX_RANGE_DIGITS or not (first or last):
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise InvalidRange(range_requested=value.strip(), actual_object_size=size)
        return ByteRange(max(0, size - suffix), size, size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise InvalidRange(range_requested=value.strip(), actual_object_size=size)
    stop = size if not last else min(int(last) + 1, size)
    return ByteRange(start, stop, size)
