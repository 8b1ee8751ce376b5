"""Conditional requests: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since.

Evaluated in RFC 9110's order (section 13.2.2), which is the precedence S3 documents:

1. If-Match present: the current ETag must be listed (or ``*`` with an existing object),
   else 412. When it holds, If-Unmodified-Since is not looked at — so "If-Match true,
   If-Unmodified-Since false" is 200, as S3 says.
2. Otherwise If-Unmodified-Since: modified after that date is 412.
3. If-None-Match present: a listed ETag (or ``*`` with an existing object) is 304 for
   GET/HEAD and 412 for anything else. When it does not match, If-Modified-Since is not
   looked at.
4. Otherwise If-Modified-Since (GET/HEAD only): not modified since that date is 304 — so
   "If-None-Match false, If-Modified-Since true" is 304, as S3 says.

Dates that do not parse are ignored (HTTP's rule, S3's behaviour). HTTP-dates have
whole seconds, so the object's Last-Modified is truncated to the second before comparing.
ETags compare without quotes and without a weak ``W/`` prefix (S3 never issues weak tags).
CopyObject's ``x-amz-copy-source-if-*`` headers are the same four conditions about the
source object, where every failure is 412 (``is_read=False``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from kmsgate.s3.dates import parse_http_date
from kmsgate.s3.errors import NotModified, PreconditionFailed
from kmsgate.s3.etags import unquote_etag

COPY_SOURCE_PREFIX = "x-amz-copy-source-"
MAX_ETAG_LIST_CHARS = 8 * 1024
"""Longest If-Match / If-None-Match list looked at; longer lists match nothing."""


class Outcome(enum.Enum):
    PROCEED = 200
    NOT_MODIFIED = 304
    PRECONDITION_FAILED = 412


@dataclass(frozen=True, slots=True)
class Preconditions:
    """The conditional headers of one request, parsed."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: datetime | None = None
    if_unmodified_since: datetime | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *, prefix: str = "") -> Preconditions:
        """The conditions in ``headers`` (names matched case-insensitively).

        ``prefix=COPY_SOURCE_PREFIX`` reads CopyObject's ``x-amz-copy-source-if-*``.
        """
        lowered = {name.lower(): value for name, value in headers.items()}

        def date(name: str) -> datetime | None:
            value = lowered.get(prefix + name)
            return parse_http_date(value) if value is not None else None

        return cls(
            if_match=lowered.get(prefix + "if-match"),
            if_none_match=lowered.get(prefix + "if-none-match"),
            if_modified_since=date("if-modified-since"),
            if_unmodified_since=date("if-unmodified-since"),
        )


def _etag_listed(header: str, current_etag: str | None) -> bool:
    """Whether an If-Match / If-None-Match list names the current representation."""
    if len(header) > MAX_ETAG_LIST_CHARS:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            if current_etag is not None:
                return True
            continue
        if tag.startswith("W/"):
            tag = tag[2:]
        if current_etag is not None and unquote_etag(tag) == current_etag:
            return True
    return False


def _seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _evaluate(
    conditions: Preconditions,
    etag: str | None,
    last_modified: datetime | None,
    is_read: bool,
) -> tuple[Outcome, str | None]:
    """The outcome and, when it does not proceed, the header that decided it."""
    if conditions.if_match is not None:
        if not _etag_listed(conditions.if_match, etag):
            return Outcome.PRECONDITION_FAILED, "If-Match"
    elif conditions.if_unmodified_since is not None and last_modified is not None:
        if _seconds(last_modified) > conditions.if_unmodified_since:
            return Outcome.PRECONDITION_FAILED, "If-Unmodified-Since"
    if conditions.if_none_match is not None:
        if _etag_listed(conditions.if_none_match, etag):
            return (Outcome.NOT_MODIFIED if is_read else Outcome.PRECONDITION_FAILED), "If-None-Match"
    elif is_read and conditions.if_modified_since is not None and last_modified is not None:
        if _seconds(last_modified) <= conditions.if_modified_since:
            return Outcome.NOT_MODIFIED, "If-Modified-Since"
    return Outcome.PROCEED, None


def evaluate(
    conditions: Preconditions,
    *,
    etag: str | None,
    last_modified: datetime | None,
    is_read: bool,
) -> Outcome:
    """The outcome of ``conditions`` against the current object.

    ``etag`` (unquoted) and ``last_modified`` describe the object; both ``None`` when it
    does not exist (a conditional write such as PUT with ``If-None-Match: *``; S3 answers
    a write with If-Match on a missing key with NoSuchKey, which is the caller's check).
    ``is_read`` is true for GET and HEAD.
    """
    return _evaluate(conditions, etag, last_modified, is_read)[0]


def check(
    conditions: Preconditions,
    *,
    etag: str | None,
    last_modified: datetime | None,
    is_read: bool,
    validators: Mapping[str, str] | None = None,
) -> None:
    """``evaluate``, raising ``NotModified`` or ``PreconditionFailed`` unless it proceeds.

    ``PreconditionFailed`` names the failed header in ``Condition``, as S3 does, and carries
    no other header; ``NotModified`` carries ``validators``, the headers of a 200 that a 304
    repeats (see ``NotModified``).
    """
    outcome, condition = _evaluate(conditions, etag, last_modified, is_read)
    if outcome is Outcome.NOT_MODIFIED:
        raise NotModified(headers=validators)
    if outcome is Outcome.PRECONDITION_FAILED:
        raise PreconditionFailed(condition=condition)
