"""Ranged reads: frame spans computed from the header decrypt to exactly the requested bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmsgate.envelope import (
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
    DecryptionError,
    DecryptPolicy,
    parse_header,
)
from kmsgate.envelope.ranges import (
    RangeDecryptor,
    RangeNotSatisfiableError,
    RangeUnsupportedError,
    frame_span,
    plaintext_length,
)

from .conftest import raw_aes_materials, vector_loader
from .helpers import encrypt_chunks

MATERIALS = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY, {"r": "1"})


def ranged_read(message: bytes, first: int, last: int | None, piece: int = 7) -> bytes:
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    span = frame_span(header, len(message), first, last)
    reader = RangeDecryptor(header, MATERIALS.data_key, span)
    stored = message[span.start : span.end]
    out = b"".join(reader.update(stored[i : i + piece]) for i in range(0, len(stored), piece))
    return out + reader.finalize()


@settings(max_examples=80, deadline=None)
@given(length=st.integers(1, 3000), frame_length=st.sampled_from([1, 16, 100, 1024]),
       data=st.data())
def test_any_range_matches_plaintext(length, frame_length, data) -> None:  # type: ignore[no-untyped-def]
    plaintext = vector_loader.plaintext_of(length)
    message = encrypt_chunks(MATERIALS, [plaintext], frame_length)
    first = data.draw(st.integers(0, length - 1))
    last = data.draw(st.integers(first, length + 50))
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None and plaintext_length(header, len(message)) == length
    assert ranged_read(message, first, last) == plaintext[first : last + 1]


def test_span_fetches_only_needed_frames() -> None:
    plaintext = vector_loader.plaintext_of(10 * 100 + 30)
    message = encrypt_chunks(MATERIALS, [plaintext], 100)
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    span = frame_span(header, len(message), 250, 349)  # frames 3 and 4 (1-based)
    assert (span.first_sequence, span.end - span.start, span.skip) == (3, 2 * 132, 50)
    tail = frame_span(header, len(message), 1020, None)  # last regular frame and the final frame
    assert tail.end == len(message) and tail.length == 10


def test_ranges_outside_plaintext_and_signed_messages_are_refused() -> None:
    message = encrypt_chunks(MATERIALS, [b"abc"], 100)
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    with pytest.raises(RangeNotSatisfiableError):
        frame_span(header, len(message), 3, 5)
    signed = encrypt_chunks(raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384), [b"abc"], 100)
    signed_header, _ = parse_header(signed, DecryptPolicy())
    assert signed_header is not None
    with pytest.raises(RangeUnsupportedError):
        frame_span(signed_header, len(signed), 0, 1)


def test_tampered_or_misplaced_span_fails() -> None:
    plaintext = vector_loader.plaintext_of(1000)
    message = encrypt_chunks(MATERIALS, [plaintext], 100)
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    span = frame_span(header, len(message), 300, 399)
    stored = bytearray(message[span.start : span.end])
    stored[40] ^= 1
    with pytest.raises(DecryptionError):
        RangeDecryptor(header, MATERIALS.data_key, span).update(bytes(stored))
    other = frame_span(header, len(message), 500, 599)  # frame 6's bytes offered as frame 4
    with pytest.raises(DecryptionError):
        RangeDecryptor(header, MATERIALS.data_key, span).update(message[other.start : other.end])
