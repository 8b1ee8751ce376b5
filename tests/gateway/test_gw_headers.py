"""Header parsing: encryption context, key id, and Range (pure: no event loop)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsgate.gateway.headers import (
    CONTEXT_HEADER,
    KEY_ID_HEADER,
    MAX_CONTEXT_HEADER_CHARS,
    HeaderError,
    RangeNotSatisfiable,
    encode_context,
    parse_context,
    parse_key_id,
    parse_range,
)


def test_context_round_trips_through_the_header() -> None:
    ctx = {"tenant": "acme", "purpose": "ünïcode ✓"}
    assert parse_context({CONTEXT_HEADER: encode_context(ctx)}) == ctx
    assert parse_context({}) == {}


@pytest.mark.parametrize("raw", [
    "not base64!!", base64.b64encode(b"[1,2]").decode(), base64.b64encode(b'{"a": 1}').decode(),
    base64.b64encode(b"\xff\xfe").decode(), "A" * (MAX_CONTEXT_HEADER_CHARS + 1),
])
def test_bad_context_headers_are_refused(raw: str) -> None:
    with pytest.raises(HeaderError):
        parse_context({CONTEXT_HEADER: raw})


def test_key_id_header() -> None:
    assert parse_key_id({}) is None
    assert parse_key_id({KEY_ID_HEADER: " alias/x "}) == "alias/x"
    with pytest.raises(HeaderError):
        parse_key_id({KEY_ID_HEADER: " "})
    with pytest.raises(HeaderError):
        parse_key_id({KEY_ID_HEADER: "k" * 3000})


@pytest.mark.parametrize("value,size,expected", [
    (None, 10, None),
    ("bytes=0-0", 10, (0, 1)),
    ("bytes=2-5", 10, (2, 6)),
    ("bytes=5-", 10, (5, 10)),
    ("bytes=5-100", 10, (5, 10)),
    ("bytes=-3", 10, (7, 10)),
    ("bytes=-30", 10, (0, 10)),
    ("bytes=5-2", 10, None),
    ("bytes=0-1,3-4", 10, None),
    ("items=0-1", 10, None),
    ("bytes=-", 10, None),
    ("bytes=" + "9" * 40 + "-", 10, None),
])
def test_ranges(value: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(value, size) == expected


@pytest.mark.parametrize("value,size", [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=0-", 0),
                                        ("bytes=-5", 0)])
def test_unsatisfiable_ranges(value: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(value, size)


@given(st.integers(0, 10_000), st.integers(0, 20_000), st.integers(0, 20_000))
def test_parsed_ranges_stay_inside_the_body(size: int, a: int, b: int) -> None:
    for value in (f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"):
        try:
            got = parse_range(value, size)
        except RangeNotSatisfiable:
            continue
        if got is not None:
            start, end = got
            assert 0 <= start < end <= size
