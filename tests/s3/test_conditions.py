"""Conditional requests in S3's precedence order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kmsgate.s3.conditions import COPY_SOURCE_PREFIX, Outcome, Preconditions, check, evaluate
from kmsgate.s3.errors import NotModified, PreconditionFailed

ETAG = "9b2cf535f27731c974343645a3985328"
OTHER = "0" * 32
MODIFIED = datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=timezone.utc)
BEFORE = "Wed, 01 May 2024 11:59:59 GMT"
SAME_SECOND = "Wed, 01 May 2024 12:00:00 GMT"
AFTER = "Wed, 01 May 2024 12:00:01 GMT"


def _outcome(headers: dict[str, str], *, is_read: bool = True) -> Outcome:
    return evaluate(Preconditions.from_headers(headers), etag=ETAG, last_modified=MODIFIED, is_read=is_read)


@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        ({}, Outcome.PROCEED),
        ({"If-Match": f'"{ETAG}"'}, Outcome.PROCEED),
        ({"If-Match": ETAG}, Outcome.PROCEED),
        ({"If-Match": f'"{OTHER}", "{ETAG}"'}, Outcome.PROCEED),
        ({"If-Match": "*"}, Outcome.PROCEED),
        ({"If-Match": f'"{OTHER}"'}, Outcome.PRECONDITION_FAILED),
        ({"If-None-Match": f'"{ETAG}"'}, Outcome.NOT_MODIFIED),
        ({"If-None-Match": f'W/"{ETAG}"'}, Outcome.NOT_MODIFIED),
        ({"If-None-Match": "*"}, Outcome.NOT_MODIFIED),
        ({"If-None-Match": f'"{OTHER}"'}, Outcome.PROCEED),
        ({"If-Modified-Since": BEFORE}, Outcome.PROCEED),
        ({"If-Modified-Since": SAME_SECOND}, Outcome.NOT_MODIFIED),
        ({"If-Modified-Since": AFTER}, Outcome.NOT_MODIFIED),
        ({"If-Unmodified-Since": BEFORE}, Outcome.PRECONDITION_FAILED),
        ({"If-Unmodified-Since": SAME_SECOND}, Outcome.PROCEED),
        ({"If-Unmodified-Since": AFTER}, Outcome.PROCEED),
        ({"If-Modified-Since": "yesterday"}, Outcome.PROCEED),
        ({"If-Unmodified-Since": "not a date"}, Outcome.PROCEED),
    ],
)
def test_each_condition_alone(headers: dict[str, str], outcome: Outcome) -> None:
    assert _outcome(headers) is outcome


def test_if_match_true_wins_over_if_unmodified_since_false() -> None:
    # S3: "If-Match evaluates to true, and If-Unmodified-Since evaluates to false: 200 OK"
    assert _outcome({"If-Match": f'"{ETAG}"', "If-Unmodified-Since": BEFORE}) is Outcome.PROCEED


def test_if_none_match_false_with_if_modified_since_true_is_not_modified() -> None:
    # S3: "If-None-Match evaluates to false, and If-Modified-Since evaluates to true: 304"
    assert _outcome({"If-None-Match": f'"{ETAG}"', "If-Modified-Since": BEFORE}) is Outcome.NOT_MODIFIED


def test_if_none_match_true_overrides_if_modified_since_false() -> None:
    assert _outcome({"If-None-Match": f'"{OTHER}"', "If-Modified-Since": AFTER}) is Outcome.PROCEED


def test_a_failed_if_match_is_412_before_any_304() -> None:
    assert _outcome({"If-Match": f'"{OTHER}"', "If-None-Match": f'"{ETAG}"'}) is Outcome.PRECONDITION_FAILED


def test_a_write_gets_412_where_a_read_gets_304() -> None:
    assert _outcome({"If-None-Match": f'"{ETAG}"'}, is_read=False) is Outcome.PRECONDITION_FAILED
    # If-Modified-Since applies to reads only
    assert _outcome({"If-Modified-Since": AFTER}, is_read=False) is Outcome.PROCEED


def test_a_conditional_create_proceeds_only_when_nothing_exists() -> None:
    create = Preconditions.from_headers({"If-None-Match": "*"})
    assert evaluate(create, etag=None, last_modified=None, is_read=False) is Outcome.PROCEED
    assert evaluate(create, etag=ETAG, last_modified=MODIFIED, is_read=False) is Outcome.PRECONDITION_FAILED
    overwrite = Preconditions.from_headers({"If-Match": "*"})
    assert evaluate(overwrite, etag=None, last_modified=None, is_read=False) is Outcome.PRECONDITION_FAILED


def test_copy_source_conditions_read_their_own_headers() -> None:
    headers = {"x-amz-copy-source-if-match": f'"{OTHER}"', "If-Match": f'"{ETAG}"'}
    source = Preconditions.from_headers(headers, prefix=COPY_SOURCE_PREFIX)
    assert source.if_match == f'"{OTHER}"'
    assert evaluate(source, etag=ETAG, last_modified=MODIFIED, is_read=False) is Outcome.PRECONDITION_FAILED
    not_modified = Preconditions.from_headers({"x-amz-copy-source-if-modified-since": AFTER}, prefix=COPY_SOURCE_PREFIX)
    assert not_modified.if_modified_since == datetime(2024, 5, 1, 12, 0, 1, tzinfo=timezone.utc)


def test_check_raises_s3s_errors_naming_the_condition() -> None:
    with pytest.raises(NotModified):
        check(Preconditions(if_none_match=ETAG), etag=ETAG, last_modified=MODIFIED, is_read=True)
    with pytest.raises(PreconditionFailed) as caught:
        check(
            Preconditions(if_unmodified_since=MODIFIED - timedelta(hours=1)),
            etag=ETAG,
            last_modified=MODIFIED,
            is_read=True,
        )
    assert caught.value.details == (("Condition", "If-Unmodified-Since"),)
    check(Preconditions(if_match=ETAG), etag=ETAG, last_modified=MODIFIED, is_read=True)


def test_an_oversized_etag_list_matches_nothing() -> None:
    huge = ", ".join([f'"{OTHER}"'] * 1000 + [f'"{ETAG}"'])
    assert _outcome({"If-Match": huge}) is Outcome.PRECONDITION_FAILED
