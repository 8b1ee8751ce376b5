"""Ranged decryption of stored messages (pure: no event loop, no KMS)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmsgate.envelope import DEFAULT_SUITE, DecryptionError, DecryptPolicy, Encryptor, EncryptionMaterials, parse_header
from kmsgate.envelope.data_keys import EncryptedDataKey
from kmsgate.gateway.ranged import RangeDecryptor, frame_span, plaintext_length

FRAME = 64


def encrypt(plaintext: bytes, data_key: bytes, frame_length: int = FRAME) -> bytes:
    materials = EncryptionMaterials(
        DEFAULT_SUITE, data_key, (EncryptedDataKey("aws-kms", b"arn:test", b"wrapped"),), {"a": "b"}, None
    )
    enc = Encryptor(materials, frame_length=frame_length)
    return bytes(enc.update(plaintext) + enc.finalize())


def header_of(message: bytes):  # type: ignore[no-untyped-def]
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    return header


def read_range(message: bytes, data_key: bytes, start: int, end: int, chunk: int = 7) -> bytes:
    header = header_of(message)
    total = plaintext_length(header, len(message))
    assert total is not None
    dec = RangeDecryptor(header, data_key, total, start, end)
    span = dec.span
    stored = message[span.offset : span.end]
    out = bytearray()
    for i in range(0, len(stored), chunk):
        out += dec.update(stored[i : i + chunk])
    dec.finalize()
    return bytes(out)


@pytest.mark.parametrize("size", [0, 1, FRAME - 1, FRAME, FRAME + 1, 10 * FRAME, 10 * FRAME + 5])
def test_plaintext_length_from_stored_length(size: int) -> None:
    message = encrypt(os.urandom(size), os.urandom(32))
    assert plaintext_length(header_of(message), len(message)) == size


def test_inconsistent_stored_length_is_malformed() -> None:
    message = encrypt(os.urandom(100), os.urandom(32))
    header = header_of(message)
    with pytest.raises(DecryptionError):
        plaintext_length(header, header.length + 10)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6 * FRAME + 3), st.data())
def test_any_range_matches_the_plaintext(size: int, data: st.DataObject) -> None:
    plaintext = bytes(range(256)) * (size // 256 + 1)
    plaintext = plaintext[:size]
    key = os.urandom(32)
    message = encrypt(plaintext, key)
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start + 1, size))
    assert read_range(message, key, start, end) == plaintext[start:end]


def test_frame_boundaries_touch_only_needed_frames() -> None:
    plaintext = os.urandom(4 * FRAME)
    message = encrypt(plaintext, os.urandom(32))
    header = header_of(message)
    span = frame_span(header, len(plaintext), FRAME, 2 * FRAME)
    assert (span.first, span.last) == (1, 1)
    assert span.end - span.offset == FRAME + 32
    span = frame_span(header, len(plaintext), FRAME - 1, FRAME + 1)
    assert (span.first, span.last) == (0, 1)


def test_wrong_key_or_tampered_frame_fails() -> None:
    plaintext = os.urandom(5 * FRAME)
    key = os.urandom(32)
    message = encrypt(plaintext, key)
    with pytest.raises(DecryptionError):
        read_range(message, os.urandom(32), 0, 10)
    header = header_of(message)
    span = frame_span(header, len(plaintext), 2 * FRAME, 3 * FRAME)
    tampered = bytearray(message)
    tampered[span.offset + 40] ^= 1
    with pytest.raises(DecryptionError):
        read_range(bytes(tampered), key, 2 * FRAME, 3 * FRAME)


def test_frames_from_another_position_are_refused() -> None:
    plaintext = os.urandom(5 * FRAME)
    key = os.urandom(32)
    message = bytearray(encrypt(plaintext, key))
    header = header_of(bytes(message))
    one = frame_span(header, len(plaintext), FRAME, 2 * FRAME)
    two = frame_span(header, len(plaintext), 2 * FRAME, 3 * FRAME)
    swapped = bytearray(message)
    swapped[one.offset : one.end] = message[two.offset : two.end]
    with pytest.raises(DecryptionError):
        read_range(bytes(swapped), key, FRAME, 2 * FRAME)
