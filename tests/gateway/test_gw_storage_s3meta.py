"""The s3 backend's metadata formats (pure): sidecars, inline user metadata, upload records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsgate.gateway.storage.base import MAX_METADATA_BYTES, MAX_SEALED_ETAG_BYTES
from kmsgate.gateway.storage.s3meta import (
    INLINE_METADATA_BYTES,
    MetadataRef,
    Sidecar,
    decode_sidecar,
    decode_upload_record,
    encode_sidecar,
    encode_upload_record,
    inline_fields,
    new_token,
    read_fields,
    sidecar_fields,
)


@given(metadata=st.binary(max_size=3000), sizes=st.lists(st.integers(0, 2**63), max_size=50))
def test_sidecars_round_trip(metadata: bytes, sizes: list[int]) -> None:
    sidecar = Sidecar(metadata, tuple(sizes))
    assert decode_sidecar(encode_sidecar(sidecar)) == sidecar


def test_every_truncation_or_extension_of_a_sidecar_is_refused() -> None:
    body = encode_sidecar(Sidecar(b"metadata", (5, 6, 7)))
    for cut in range(len(body)):
        with pytest.raises(ValueError):
            decode_sidecar(body[:cut])
    with pytest.raises(ValueError):
        decode_sidecar(body + b"\x00")


def test_sidecar_lengths_over_their_caps_are_refused_before_use() -> None:
    huge_metadata = b"KGS1" + (MAX_METADATA_BYTES + 1).to_bytes(4, "big")
    with pytest.raises(ValueError):
        decode_sidecar(huge_metadata + b"\x00" * (MAX_METADATA_BYTES + 8))
    many_parts = b"KGS1" + (0).to_bytes(4, "big") + (10_001).to_bytes(4, "big")
    with pytest.raises(ValueError):
        decode_sidecar(many_parts + b"\x00" * 8 * 10_001)


@pytest.mark.parametrize("size", [0, 1, INLINE_METADATA_BYTES])
def test_small_metadata_travels_inline(size: int) -> None:
    metadata = bytes(range(256)) * 4
    fields = inline_fields(metadata[:size])
    assert fields is not None
    assert sum(len(k) + len(v) for k, v in fields.items()) < 2048  # S3's user metadata limit
    assert read_fields(fields) == MetadataRef(inline=metadata[:size])


def test_larger_metadata_needs_a_sidecar() -> None:
    assert inline_fields(b"x" * (INLINE_METADATA_BYTES + 1)) is None
    token = new_token()
    assert read_fields(sidecar_fields(token)) == MetadataRef(token=token)
    assert new_token() != token


@pytest.mark.parametrize("fields", [{"kmsgate-s": "../../etc"}, {"kmsgate-s": "A" * 32},
                                    {"kmsgate-m": "not base64!"}])
def test_damaged_user_metadata_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        read_fields(fields)


def test_upload_records_round_trip_and_refuse_damage() -> None:
    token = new_token()
    assert decode_upload_record(encode_upload_record(token, b"meta")) == (token, b"meta")
    for body in (b"", token.encode()[:31], b"Z" * 32, token.encode() + b"x" * (MAX_METADATA_BYTES + 1)):
        with pytest.raises(ValueError):
            decode_upload_record(body)


@given(metadata=st.binary(max_size=3000), sizes=st.lists(st.integers(0, 2**63), max_size=50),
       sealed_etag=st.binary(min_size=1, max_size=MAX_SEALED_ETAG_BYTES))
def test_sidecars_with_a_sealed_etag_round_trip(metadata: bytes, sizes: list[int], sealed_etag: bytes) -> None:
    sidecar = Sidecar(metadata, tuple(sizes), sealed_etag)
    assert decode_sidecar(encode_sidecar(sidecar)) == sidecar


def test_a_sidecar_without_a_sealed_etag_keeps_the_first_format() -> None:
    assert encode_sidecar(Sidecar(b"m", (1,)))[:4] == b"KGS1"
    assert encode_sidecar(Sidecar(b"m", (1,), b"sealed"))[:4] == b"KGS2"


def test_every_truncation_or_extension_of_a_sidecar_with_a_sealed_etag_is_refused() -> None:
    body = encode_sidecar(Sidecar(b"metadata", (5, 6, 7), b"sealed etag"))
    for cut in range(len(body)):
        with pytest.raises(ValueError):
            decode_sidecar(body[:cut])
    with pytest.raises(ValueError):
        decode_sidecar(body + b"\x00")


def test_a_sealed_etag_travels_inline_beside_inline_metadata() -> None:
    fields = inline_fields(b"metadata", b"sealed etag")
    assert fields is not None
    assert read_fields(fields) == MetadataRef(inline=b"metadata", sealed_etag=b"sealed etag")
    assert read_fields(inline_fields(b"", b"sealed etag") or {}) == MetadataRef(sealed_etag=b"sealed etag")
