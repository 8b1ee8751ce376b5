"""Tampering: every flipped byte, every truncation, trailing bytes, reordered and dropped frames
fail with a ``DecryptionError``; output released before the failure is only ever a correct prefix."""

from __future__ import annotations

import pytest

from kmsgate.envelope import (
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
    DecryptionError,
    Decryptor,
    FrameAuthenticationError,
    HeaderLimitError,
    MalformedFrameError,
    TrailingDataError,
    TruncatedMessageError,
    UnsupportedSuiteError,
)
from kmsgate.envelope.header import DecryptPolicy, parse_header

from .conftest import raw_aes_materials
from .helpers import encrypt_chunks

FRAME = 16
PLAINTEXT = bytes(range(40))  # two regular frames and a final frame of 8 bytes
SUITES = [AES_256_GCM_HKDF_SHA512_COMMIT_KEY, AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384]


def attempt(data_key: bytes, message: bytes) -> tuple[bytes, DecryptionError | None]:
    """Decrypt in one piece; return (plaintext released, error raised)."""
    decryptor = Decryptor()
    released = bytearray()
    try:
        released += decryptor.update(message)
        if decryptor.needs_data_key:
            decryptor.set_data_key(data_key)
            released += decryptor.update(b"")
        released += decryptor.finalize()
    except DecryptionError as exc:
        return bytes(released), exc
    return bytes(released), None


@pytest.fixture(params=SUITES, ids=["0478", "0578"])
def sample(request):  # type: ignore[no-untyped-def]
    materials = raw_aes_materials(request.param, {"k": "v"})
    return materials.data_key, encrypt_chunks(materials, [PLAINTEXT], FRAME)


def test_untampered_sample_decrypts(sample) -> None:  # type: ignore[no-untyped-def]
    data_key, message = sample
    assert attempt(data_key, message) == (PLAINTEXT, None)


def test_every_flipped_byte_fails(sample) -> None:  # type: ignore[no-untyped-def]
    data_key, message = sample
    for position in range(len(message)):
        for mask in (0x01, 0x80):
            tampered = bytearray(message)
            tampered[position] ^= mask
            released, error = attempt(data_key, bytes(tampered))
            assert error is not None, f"flip at {position} was accepted"
            assert PLAINTEXT.startswith(released), f"wrong plaintext released for flip at {position}"


def test_every_truncation_fails(sample) -> None:  # type: ignore[no-untyped-def]
    data_key, message = sample
    for length in range(len(message)):
        released, error = attempt(data_key, message[:length])
        assert error is not None, f"truncation to {length} bytes was accepted"
        assert PLAINTEXT.startswith(released)


def test_truncation_after_whole_frames_is_truncated_message_error(sample) -> None:  # type: ignore[no-untyped-def]
    data_key, message = sample
    header, header_length = parse_header(message, DecryptPolicy())
    assert header is not None
    regular_frame = 4 + 12 + FRAME + 16  # sequence number, IV, ciphertext, tag
    cut = header_length + 2 * regular_frame  # start of the final frame
    assert message[cut : cut + 4] == b"\xff\xff\xff\xff"
    released, error = attempt(data_key, message[:cut])
    assert isinstance(error, TruncatedMessageError)
    assert released == PLAINTEXT[:32]  # the two verified regular frames, nothing more


def test_trailing_bytes_fail(sample) -> None:  # type: ignore[no-untyped-def]
    data_key, message = sample
    _, error = attempt(data_key, message + b"\x00")
    assert isinstance(error, TrailingDataError)
    decryptor = Decryptor()
    decryptor.update(message)
    decryptor.set_data_key(data_key)
    decryptor.finalize()
    with pytest.raises(TrailingDataError):
        decryptor.update(b"x")


def test_reordered_and_dropped_frames_fail() -> None:
    materials = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    message = encrypt_chunks(materials, [PLAINTEXT], FRAME)
    final_at = message.index(b"\xff\xff\xff\xff", len(message) - 60)
    frame_size = FRAME + 32
    first = final_at - 2 * frame_size
    head, f1, f2, tail = message[:first], message[first : first + frame_size], message[first + frame_size : final_at], message[final_at:]
    for bad in (head + f2 + f1 + tail, head + f2 + tail, head + f1 + tail, head + f1 + f1 + f2 + tail):
        _, error = attempt(materials.data_key, bad)
        assert isinstance(error, (MalformedFrameError, FrameAuthenticationError))


def test_wrong_data_key_fails_before_any_plaintext() -> None:
    materials = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    message = encrypt_chunks(materials, [PLAINTEXT], FRAME)
    released, error = attempt(bytes(32), message)
    assert error is not None and released == b""


def test_caps_on_attacker_controlled_header_fields() -> None:
    materials = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY, {"k": "v" * 3000})
    message = encrypt_chunks(materials, [PLAINTEXT], FRAME)
    for policy in (DecryptPolicy(max_context_bytes=1024), DecryptPolicy(max_header_bytes=1024),
                   DecryptPolicy(max_frame_length=8)):
        with pytest.raises(HeaderLimitError):
            Decryptor(policy).update(message)
    too_many = bytearray(message)
    edk_count_at = 35 + 2 + int.from_bytes(message[35:37], "big")
    too_many[edk_count_at : edk_count_at + 2] = (2).to_bytes(2, "big")
    with pytest.raises(HeaderLimitError):
        Decryptor().update(bytes(too_many))
    with pytest.raises(UnsupportedSuiteError):
        Decryptor().update(b"\x02\x99\x99" + message[3:])


def test_decryptor_is_dead_after_a_failure() -> None:
    materials = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    message = bytearray(encrypt_chunks(materials, [PLAINTEXT], FRAME))
    message[-1] ^= 1
    decryptor = Decryptor()
    decryptor.update(bytes(message[:-30]))
    decryptor.set_data_key(materials.data_key)
    with pytest.raises(DecryptionError):
        decryptor.update(bytes(message[-30:]))
    with pytest.raises(DecryptionError):
        decryptor.finalize()
