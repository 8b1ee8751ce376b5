"""The stored object metadata record: round trips, and strict decoding."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsgate.s3.errors import InternalError
from kmsgate.s3.metadata import (
    MAX_RECORD_BYTES,
    InvalidStoredMetadata,
    ObjectMetadata,
    decode_metadata,
    encode_metadata,
)
from tests.s3.strategies import etags

optional_text = st.none() | st.text(max_size=200)


@st.composite
def object_metadata(draw: st.DrawFn) -> ObjectMetadata:
    md5 = draw(etags)
    parts = draw(st.none() | st.integers(1, 10_000))
    return ObjectMetadata(
        etag=md5 if parts is None else f"{md5}-{parts}",
        parts_count=parts,
        content_type=draw(optional_text),
        content_disposition=draw(optional_text),
        content_encoding=draw(optional_text),
        content_language=draw(optional_text),
        cache_control=draw(optional_text),
        expires=draw(optional_text),
        user_metadata=draw(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=50), max_size=5)),
    )


@given(metadata=object_metadata())
def test_every_record_decodes_to_what_was_encoded(metadata: ObjectMetadata) -> None:
    assert decode_metadata(encode_metadata(metadata)) == metadata


def test_the_record_is_compact_json() -> None:
    record = encode_metadata(
        ObjectMetadata(etag="d41d8cd98f00b204e9800998ecf8427e", content_type="text/plain", user_metadata={"a": "b"})
    )
    assert record == b'{"v":1,"etag":"d41d8cd98f00b204e9800998ecf8427e","ct":"text/plain","um":{"a":"b"}}'


def test_a_single_put_record_knows_its_md5() -> None:
    metadata = ObjectMetadata(etag="d41d8cd98f00b204e9800998ecf8427e")
    assert metadata.md5 == bytes.fromhex("d41d8cd98f00b204e9800998ecf8427e")
    assert ObjectMetadata(etag="d41d8cd98f00b204e9800998ecf8427e-2", parts_count=2).md5 is None


@pytest.mark.parametrize(
    ("etag", "parts"),
    [("xyz", None), ("d41d8cd98f00b204e9800998ecf8427e-2", None), ("d41d8cd98f00b204e9800998ecf8427e", 2),
     ("d41d8cd98f00b204e9800998ecf8427e-3", 2), ("D41D8CD98F00B204E9800998ECF8427E", None)],
)
def test_an_etag_inconsistent_with_the_part_count_is_refused(etag: str, parts: int | None) -> None:
    with pytest.raises(ValueError):
        ObjectMetadata(etag=etag, parts_count=parts)


GOOD = {"v": 1, "etag": "d41d8cd98f00b204e9800998ecf8427e"}


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"not json",
        b"[]",
        orjson.dumps({**GOOD, "v": 2}),
        orjson.dumps({**GOOD, "v": True}),
        orjson.dumps({"etag": GOOD["etag"]}),
        orjson.dumps({**GOOD, "extra": 1}),
        orjson.dumps({**GOOD, "ct": 5}),
        orjson.dumps({**GOOD, "pc": "2"}),
        orjson.dumps({**GOOD, "pc": True}),
        orjson.dumps({**GOOD, "pc": 2}),
        orjson.dumps({**GOOD, "um": {"a": 1}}),
        orjson.dumps({**GOOD, "um": ["a"]}),
        orjson.dumps({"v": 1, "pc": 2}),
        orjson.dumps({**GOOD, "ct": "x" * MAX_RECORD_BYTES}),
    ],
)
def test_a_bad_record_is_one_internal_error(record: bytes) -> None:
    with pytest.raises(InvalidStoredMetadata) as caught:
        decode_metadata(record)
    assert isinstance(caught.value, InternalError)
    assert (caught.value.code, caught.value.status) == ("InternalError", 500)
    assert caught.value.message == InternalError.default_message


def test_a_multipart_uploads_record_leaves_the_etag_out_and_round_trips() -> None:
    metadata = ObjectMetadata(etag=None, content_type="text/plain", user_metadata={"a": "b"})
    record = encode_metadata(metadata)
    assert record == b'{"v":1,"ct":"text/plain","um":{"a":"b"}}'
    assert decode_metadata(record) == metadata
    assert metadata.md5 is None
