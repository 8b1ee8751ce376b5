"""The Encryption SDK message parser and decryptor under random and mutated messages.

Bit flips, truncations, inserted bytes, duplicated, swapped and reordered runs of bytes (frames
among them), oversized lengths and counts, and every algorithm suite id: the decryptor raises only
``DecryptionError`` (the one documented error tree), never releases anything but a prefix of the
true plaintext, even given the right data key, and never allocates memory in proportion to a
length or count the message claims.
"""

from __future__ import annotations

import struct
import tracemalloc
from dataclasses import dataclass

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kmsgate.envelope import DecryptionError, Decryptor, parse_header
from kmsgate.envelope.header import DecryptPolicy
from kmsgate.envelope.suites import AES_256_GCM_HKDF_SHA512_COMMIT_KEY, AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
from tests.envelope.conftest import raw_aes_materials, vector_loader
from tests.envelope.helpers import encrypt_chunks

from .conftest import fuzz_settings

ALLOW_LEGACY = DecryptPolicy(allow_non_committing=True)
MEMORY_CEILING_BYTES = 1024 * 1024  # far below any claimed length below: 4 GiB, 65,535 keys of 64 KiB


@dataclass(frozen=True)
class Sample:
    name: str
    message: bytes
    data_key: bytes
    plaintext: bytes


def _samples() -> list[Sample]:
    """Messages of every suite the decryptor reads: the official SDK's vectors, and kmsgate's own
    messages with small frames (several regular frames each)."""
    wrapping, vectors = vector_loader.load_sdk_vectors()
    samples = []
    for vector in vectors:
        header, _ = parse_header(vector.message, ALLOW_LEGACY)
        assert header is not None
        data_key = wrapping.unwrap_data_key(header.encrypted_data_keys[0], vector.encryption_context)
        samples.append(Sample(vector.name, vector.message, data_key, vector_loader.plaintext_of(vector.plaintext_length)))
    for suite in (AES_256_GCM_HKDF_SHA512_COMMIT_KEY, AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384):
        materials = raw_aes_materials(suite, {"tenant": "fuzz"})
        plaintext = bytes(range(256)) * 2
        samples.append(Sample(f"kmsgate-{suite.suite_id:04x}", encrypt_chunks(materials, [plaintext], 64),
                              materials.data_key, plaintext))
    return samples


SAMPLES = _samples()


def decrypt(sample: Sample, message: bytes, pieces: list[int]) -> tuple[bytes, DecryptionError | None]:
    """Feed ``message`` in pieces, with the right data key; the plaintext released and the error, if any."""
    decryptor = Decryptor(ALLOW_LEGACY)
    released = bytearray()
    cuts = sorted({cut % (len(message) + 1) for cut in pieces}) + [len(message)]
    start = 0
    try:
        for cut in cuts:
            released += decryptor.update(message[start:cut])
            start = cut
            if decryptor.needs_data_key:
                decryptor.set_data_key(sample.data_key)
                released += decryptor.update(b"")
        released += decryptor.finalize()
    except DecryptionError as exc:
        return bytes(released), exc
    return bytes(released), None


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Sample, bytes]:
    sample = draw(st.sampled_from(SAMPLES))
    message = bytearray(sample.message)
    for _ in range(draw(st.integers(1, 3))):
        size = len(message)
        position = draw(st.integers(0, max(0, size - 1)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate", "swap", "delete", "u16", "u32"]))
        if kind == "flip" and size:
            message[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del message[position:]
        elif kind == "insert":
            message[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif kind in ("duplicate", "swap", "delete"):
            length = draw(st.integers(1, 600))
            run = bytes(message[position:position + length])
            if kind == "duplicate":
                message[position:position] = run
            elif kind == "delete":
                del message[position:position + length]
            else:
                other = draw(st.integers(0, max(0, size - 1)))
                other_run = bytes(message[other:other + length])
                if other >= position + length:
                    message[other:other + len(other_run)] = run
                    message[position:position + len(run)] = other_run
        elif kind == "u16":
            message[position:position + 2] = draw(st.sampled_from([b"\xff\xff", b"\x00\x00", b"\x80\x00"]))
        elif kind == "u32":
            message[position:position + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                                                    b"\x7f\xff\xff\xff", b"\x00\x00\x00\x01"]))
    return sample, bytes(message)


@fuzz_settings(scale=50)
@given(case=mutated(), pieces=st.lists(st.integers(0, 2**20), max_size=4))
def test_a_mutated_message_fails_with_the_decryption_error_and_releases_only_a_true_prefix(
    case: tuple[Sample, bytes], pieces: list[int]
) -> None:
    sample, message = case
    released, error = decrypt(sample, message, pieces)
    assert sample.plaintext.startswith(released)
    if error is None:  # a mutation that changed nothing the format reads (e.g. swapped equal bytes)
        assert released == sample.plaintext


@fuzz_settings(scale=20)
@given(data=st.binary(max_size=2048), pieces=st.lists(st.integers(0, 4096), max_size=4))
@example(data=b"\x02\x04\x78" + b"\x00" * 32 + b"\xff\xff", pieces=[])
@example(data=b"\x01\x80\x01\x78" + b"\x00" * 16, pieces=[])
def test_random_bytes_fail_with_the_decryption_error(data: bytes, pieces: list[int]) -> None:
    released, error = decrypt(SAMPLES[-1], data, pieces)
    assert released == b"" and error is not None


# Every suite the Encryption SDK defines, and two it does not.
SUITE_IDS = [0x0014, 0x0046, 0x0078, 0x0114, 0x0146, 0x0178, 0x0214, 0x0346, 0x0378, 0x0478, 0x0578, 0x0000, 0xFFFF]


@pytest.mark.parametrize("suite_id", SUITE_IDS, ids=[f"{suite_id:04x}" for suite_id in SUITE_IDS])
def test_every_algorithm_suite_id_on_another_suites_message_fails(suite_id: int) -> None:
    for sample in SAMPLES:
        message = bytearray(sample.message)
        at = 1 if message[0] == 2 else 2
        if message[at:at + 2] == struct.pack(">H", suite_id):
            continue
        message[at:at + 2] = struct.pack(">H", suite_id)
        released, error = decrypt(sample, bytes(message), [])
        assert released == b"" and isinstance(error, DecryptionError), (sample.name, hex(suite_id))


def _v2_header_prefix(suite_id: int = 0x0478) -> bytes:
    return b"\x02" + struct.pack(">H", suite_id) + bytes(32) + struct.pack(">H", 0)


def _peak_while(message: bytes, policy: DecryptPolicy, data_key: bytes = bytes(32)) -> tuple[int, DecryptionError | None]:
    tracemalloc.start()
    try:
        decryptor = Decryptor(policy)
        error = None
        try:
            decryptor.update(message)
            if decryptor.needs_data_key:
                decryptor.set_data_key(data_key)
            decryptor.finalize()
        except DecryptionError as exc:
            error = exc
        return tracemalloc.get_traced_memory()[1], error
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("policy", [DecryptPolicy(), DecryptPolicy(max_encrypted_data_keys=65_535,
                                                                    max_header_bytes=2**32)], ids=["default", "lax"])
def test_a_header_claiming_65535_data_keys_of_64_KiB_allocates_nothing_in_proportion(policy: DecryptPolicy) -> None:
    message = _v2_header_prefix() + struct.pack(">H", 65_535) + struct.pack(">H", 65_535) + b"p" * 100
    peak, error = _peak_while(message, policy)
    assert error is not None
    assert peak < MEMORY_CEILING_BYTES


def _message_with_frame_length(frame_length: int) -> bytes:
    sample = SAMPLES[-2]  # kmsgate's own 0x0478 message
    header, consumed = parse_header(sample.message, ALLOW_LEGACY)
    assert header is not None
    at = len(header.header_bytes) - 32 - 4  # frame length precedes the 32-byte commitment key
    message = bytearray(sample.message)
    message[at:at + 4] = struct.pack(">I", frame_length)
    return bytes(message)


@pytest.mark.parametrize("policy", [DecryptPolicy(), DecryptPolicy(max_frame_length=2**32 - 1)], ids=["default", "lax"])
def test_a_message_claiming_a_4_GiB_frame_allocates_nothing_in_proportion(policy: DecryptPolicy) -> None:
    peak, error = _peak_while(_message_with_frame_length(2**32 - 1), policy, SAMPLES[-2].data_key)
    assert error is not None
    assert peak < MEMORY_CEILING_BYTES


def test_a_final_frame_claiming_a_4_GiB_body_allocates_nothing_in_proportion() -> None:
    sample = SAMPLES[-2]
    header, consumed = parse_header(sample.message, ALLOW_LEGACY)
    assert header is not None
    # the header, then a final frame: end marker, sequence number 1, IV, content length 2**32 - 1
    message = sample.message[:consumed] + b"\xff\xff\xff\xff" + struct.pack(">I", 1) + bytes(12) + \
        struct.pack(">I", 2**32 - 1) + b"c" * 100
    peak, error = _peak_while(message, ALLOW_LEGACY, sample.data_key)
    assert error is not None
    assert peak < MEMORY_CEILING_BYTES
