"""The Range header as S3 accepts it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsgate.s3.errors import InvalidRange
from kmsgate.s3.ranges import ByteRange, parse_range


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("bytes=0-9", 100, ByteRange(0, 10, 100)),
        ("bytes=90-", 100, ByteRange(90, 100, 100)),
        ("bytes=-10", 100, ByteRange(90, 100, 100)),
        ("bytes=-1000", 100, ByteRange(0, 100, 100)),
        ("bytes=50-1000", 100, ByteRange(50, 100, 100)),
        ("bytes=99-99", 100, ByteRange(99, 100, 100)),
        (" bytes=0-0 ", 1, ByteRange(0, 1, 1)),
    ],
)
def test_one_range_is_served(value: str, size: int, expected: ByteRange) -> None:
    assert parse_range(value, size) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "bytes=", "bytes=-", "bytes=5-3", "items=0-9", "bytes=0-9,20-29", "bytes=a-b", "bytes=0-9x",
     "bytes = 0-9", "bytes=٠-٩", "bytes=" + "9" * 20 + "-"],
)
def test_a_range_s3_cannot_use_is_ignored(value: str | None) -> None:
    assert parse_range(value, 100) is None


@pytest.mark.parametrize(("value", "size"), [("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=-0", 100), ("bytes=0-", 0), ("bytes=-5", 0)])
def test_a_range_that_selects_nothing_is_invalid_range(value: str, size: int) -> None:
    with pytest.raises(InvalidRange) as caught:
        parse_range(value, size)
    assert caught.value.status == 416
    assert caught.value.details == (("RangeRequested", value), ("ActualObjectSize", str(size)))


def test_content_range_is_inclusive() -> None:
    byte_range = ByteRange(0, 10, 100)
    assert byte_range.content_range == "bytes 0-9/100"
    assert byte_range.length == 10


@given(size=st.integers(1, 10**12), first=st.integers(0, 10**12), length=st.integers(0, 10**12))
def test_a_served_range_lies_within_the_object(size: int, first: int, length: int) -> None:
    try:
        byte_range = parse_range(f"bytes={first}-{first + length}", size)
    except InvalidRange:
        assert first >= size
        return
    assert byte_range is not None
    assert 0 <= byte_range.start < byte_range.stop <= size
    assert byte_range.start == first
