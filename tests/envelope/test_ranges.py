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
    FrameSpan,
    RangeDecryptor,
    RangeNotSatisfiableError,
    RangeUnsupportedError,
    final_frame_span,
    frame_span,
    plaintext_length,
    plan_range,
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


def test_a_range_in_the_final_frame_of_a_truncated_message_releases_nothing() -> None:
    # Frame length 16: six regular frames of 48 stored bytes, then a final frame of 44 (4 bytes).
    plaintext = vector_loader.plaintext_of(100)
    message = encrypt_chunks(MATERIALS, [plaintext], 16)
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    checked: set[int] = set()
    for cut in range(header.length, len(message)):
        truncated = message[:cut]
        try:
            total = plaintext_length(header, cut)
        except DecryptionError:
            continue  # a length no frame layout has: refused before any frame is read
        final_first = (cut - header.length - 40) // 48 * 16  # regular frames before the final one
        if final_first == total:
            continue  # an empty final frame holds no byte a range could ask for
        span = frame_span(header, cut, final_first, None)
        reader = RangeDecryptor(header, MATERIALS.data_key, span)
        stored = truncated[span.start : span.end]
        released = bytearray()
        with pytest.raises(DecryptionError):
            for i in range(0, len(stored), 7):
                released += reader.update(stored[i : i + 7])
            released += reader.finalize()
        assert released == b"", cut
        checked.add(cut)
    boundaries = {header.length + k * 48 for k in range(1, 7)}
    assert boundaries <= checked and checked - boundaries  # cuts at and between frame boundaries


def read_span(message: bytes, span: FrameSpan) -> bytes:
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    reader = RangeDecryptor(header, MATERIALS.data_key, span)
    return reader.update(message[span.start : span.end]) + reader.finalize()


@pytest.mark.parametrize("length", [0, 1, 99, 100, 101, 1000, 1030])
def test_the_final_frame_span_holds_the_end_of_the_plaintext(length: int) -> None:
    plaintext = vector_loader.plaintext_of(length)
    message = encrypt_chunks(MATERIALS, [plaintext], 100)
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    final = final_frame_span(header, len(message))
    assert (final.end, final.plaintext_length) == (len(message), length)
    assert read_span(message, final) == plaintext[final.first :]
    assert length - final.first == length % 100  # the writer's layout: only full frames are regular


def test_no_truncation_or_extension_passes_the_final_frame_check() -> None:
    plaintext = vector_loader.plaintext_of(300)  # three full frames, then an empty final frame
    message = encrypt_chunks(MATERIALS, [plaintext], 100)
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    damaged = [message[:cut] for cut in range(header.length, len(message))]
    damaged += [message + bytes(n) for n in (1, 40, 132)]
    damaged += [message[:-40] + message[-172:-40] + message[-40:]]  # the last regular frame twice
    for stored in damaged:
        with pytest.raises(DecryptionError):
            read_span(stored, final_frame_span(header, len(stored)))


@settings(max_examples=80, deadline=None)
@given(length=st.integers(1, 3000), frame_length=st.sampled_from([1, 16, 100, 1024]), data=st.data())
def test_any_range_planned_around_the_final_frame_matches_plaintext(  # type: ignore[no-untyped-def]
        length, frame_length, data) -> None:
    plaintext = vector_loader.plaintext_of(length)
    message = encrypt_chunks(MATERIALS, [plaintext], frame_length)
    header, _ = parse_header(message, DecryptPolicy())
    assert header is not None
    first = data.draw(st.integers(0, length - 1))
    last = data.draw(st.integers(first, length + 50))
    final = final_frame_span(header, len(message))
    plan = plan_range(final, header, len(message), first, last)
    served = read_span(message, plan.frames) if plan.frames is not None else b""
    served += read_span(message, final)[plan.tail_start : plan.tail_end]
    assert served == plaintext[first : last + 1]
    if plan.frames is not None:
        assert plan.frames.end <= final.start  # the final frame is read once, to verify it
