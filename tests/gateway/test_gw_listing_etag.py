"""Sealed listing ETags (pure): round trips, and every way a sealed ETag can be moved or damaged."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsgate.gateway.listing_etag import (
    MAX_ETAG_BYTES,
    ListingEtagError,
    VersionKind,
    open_etag,
    seal_etag,
    upload_version,
)

CATALOG_KEY = bytes(range(32))
MESSAGE_ID = bytes(range(100, 132))
ETAG = "9e107d9d372bb6826bd81d3542a419d6"
OBJECT: dict[str, Any] = {"bucket": "photos", "key": "2026/cat.jpg", "kind": VersionKind.MESSAGE_ID,
                          "version": MESSAGE_ID}


@given(etag=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=MAX_ETAG_BYTES),
       bucket=st.text(min_size=3, max_size=63), key=st.text(max_size=1024), version=st.binary(max_size=64),
       kind=st.sampled_from(VersionKind))
def test_a_sealed_etag_opens_for_the_object_version_it_was_sealed_for(
        etag: str, bucket: str, key: str, version: bytes, kind: VersionKind) -> None:
    where: dict[str, Any] = {"bucket": bucket, "key": key, "kind": kind, "version": version}
    sealed = seal_etag(etag, catalog_key=CATALOG_KEY, **where)
    assert open_etag(sealed, catalog_key=CATALOG_KEY, **where) == etag


def test_the_etag_is_not_in_the_sealed_form_and_two_seals_differ() -> None:
    first = seal_etag(ETAG, catalog_key=CATALOG_KEY, **OBJECT)
    second = seal_etag(ETAG, catalog_key=CATALOG_KEY, **OBJECT)
    assert first != second
    for sealed in (first, second):
        assert ETAG.encode() not in sealed and bytes.fromhex(ETAG) not in sealed


@pytest.mark.parametrize("moved", [
    {"bucket": "photos2"}, {"key": "2026/dog.jpg"}, {"key": "2026/cat.jpg "},
    {"version": bytes(range(101, 133))}, {"kind": VersionKind.UPLOAD_ID},
    {"kind": VersionKind.UPLOAD_ID, "version": upload_version("an-upload")},
], ids=["another-bucket", "another-key", "a-longer-key", "another-message", "as-an-upload", "another-upload"])
def test_a_sealed_etag_moved_to_another_object_or_version_does_not_open(moved: dict[str, Any]) -> None:
    sealed = seal_etag(ETAG, catalog_key=CATALOG_KEY, **OBJECT)
    with pytest.raises(ListingEtagError):
        open_etag(sealed, catalog_key=CATALOG_KEY, **{**OBJECT, **moved})


def test_bucket_and_key_are_delimited_so_their_boundary_cannot_shift() -> None:
    sealed = seal_etag(ETAG, catalog_key=CATALOG_KEY, **{**OBJECT, "bucket": "ab", "key": "c"})
    with pytest.raises(ListingEtagError):
        open_etag(sealed, catalog_key=CATALOG_KEY, **{**OBJECT, "bucket": "a", "key": "bc"})


def test_a_sealed_etag_does_not_open_under_another_catalog_key() -> None:
    sealed = seal_etag(ETAG, catalog_key=CATALOG_KEY, **OBJECT)
    with pytest.raises(ListingEtagError):
        open_etag(sealed, catalog_key=os.urandom(32), **OBJECT)


def test_every_bit_flip_truncation_or_extension_fails_to_open() -> None:
    sealed = seal_etag(ETAG, catalog_key=CATALOG_KEY, **OBJECT)
    for i in range(len(sealed) * 8):
        flipped = bytearray(sealed)
        flipped[i // 8] ^= 1 << (i % 8)
        with pytest.raises(ListingEtagError):
            open_etag(bytes(flipped), catalog_key=CATALOG_KEY, **OBJECT)
    for cut in range(len(sealed)):
        with pytest.raises(ListingEtagError):
            open_etag(sealed[:cut], catalog_key=CATALOG_KEY, **OBJECT)
    with pytest.raises(ListingEtagError):
        open_etag(sealed + b"\x00", catalog_key=CATALOG_KEY, **OBJECT)


def test_an_etag_too_long_or_empty_is_refused_before_sealing() -> None:
    for etag in ("", "a" * (MAX_ETAG_BYTES + 1)):
        with pytest.raises(ValueError):
            seal_etag(etag, catalog_key=CATALOG_KEY, **OBJECT)
