"""S3's timestamp formats."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsgate.s3.dates import format_http_date, format_timestamp, parse_http_date

EXAMPLE = datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc)


def test_xml_timestamps_have_milliseconds() -> None:
    assert format_timestamp(datetime(2009, 10, 12, 17, 50, 30, tzinfo=timezone.utc)) == "2009-10-12T17:50:30.000Z"
    assert format_timestamp(datetime(2009, 10, 12, 17, 50, 30, 7999, tzinfo=timezone.utc)) == "2009-10-12T17:50:30.007Z"


@pytest.mark.parametrize(
    "value", ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"]
)
def test_the_three_http_date_forms(value: str) -> None:
    assert parse_http_date(value) == EXAMPLE


@pytest.mark.parametrize(
    "value",
    ["", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
     "2009-10-12T17:50:30.000Z", "Sun, ٠٦ Nov 1994 08:49:37 GMT", "x" * 100],
)
def test_anything_else_is_not_a_date(value: str) -> None:
    assert parse_http_date(value) is None


@given(moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)))
def test_http_dates_round_trip_to_the_second(moment: datetime) -> None:
    assert parse_http_date(format_http_date(moment)) == moment.replace(microsecond=0)


def test_http_dates_agree_with_the_standard_library() -> None:
    from email.utils import format_datetime

    assert format_http_date(EXAMPLE) == format_datetime(EXAMPLE, usegmt=True)
