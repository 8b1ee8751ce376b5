"""The copy-avoiding paths: ``update_into`` on both sides, exact output sizing, whole-message
decryption from any buffer type, the header-key shortcut of the decryption cache and
the memoized header fields. All compare against the plain ``update`` paths."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmsgate.envelope import (
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
    Decryptor,
    Encryptor,
    FrameAuthenticationError,
    MalformedHeaderError,
    parse_header,
)
from kmsgate.envelope.buffers import UNINITIALIZED_MIN_BYTES, new_buffer
from kmsgate.envelope.cache import decrypt_cache_key, header_cache_key
from kmsgate.envelope.header import DecryptPolicy
from kmsgate.envelope.kms_client import GeneratedDataKey, UnwrappedKey, WrappedKey
from kmsgate.envelope.materials import MaterialsManager, decrypt_message, encrypt_message

from .conftest import raw_aes_materials
from .helpers import decrypt_chunks

UNSIGNED = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY, {"tenant": "a"})
SIGNED = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, {"tenant": "a"})
MESSAGE_ID = bytes(range(32))


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(max_size=3000), cut=st.integers(0, 3000), frame_length=st.sampled_from([1, 64, 1000]))
def test_update_into_writes_exactly_what_update_returns(plaintext, cut, frame_length) -> None:  # type: ignore[no-untyped-def]
    plain = Encryptor(UNSIGNED, frame_length=frame_length, message_id=MESSAGE_ID)
    into = Encryptor(UNSIGNED, frame_length=frame_length, message_id=MESSAGE_ID)
    buffer = bytearray(8000)
    expected, produced = bytearray(), bytearray()
    for piece, final in ((plaintext[:cut], False), (plaintext[cut:], True)):
        size = into.output_length(len(piece), final=final)
        expected += plain.encrypt(piece) if final else plain.update(piece)
        written = into.update_into(piece, buffer, final=final)
        assert written == size
        produced += buffer[:written]
    assert produced == expected
    assert decrypt_chunks(UNSIGNED.data_key, [bytes(produced)]) == plaintext


def test_output_length_is_exact_for_signed_messages() -> None:
    encryptor = Encryptor(SIGNED, frame_length=100)
    first = encryptor.output_length(250)
    assert len(encryptor.update(b"x" * 250)) == first
    last = encryptor.output_length(30, final=True)
    message_tail = encryptor.encrypt(b"y" * 30)
    assert len(message_tail) == last


def test_update_into_refuses_a_short_buffer() -> None:
    encryptor = Encryptor(UNSIGNED, frame_length=64)
    need = encryptor.output_length(100)
    with pytest.raises(ValueError):
        encryptor.update_into(b"z" * 100, bytearray(need - 1))
    with pytest.raises(ValueError):
        encryptor.update_into(b"z" * 100, memoryview(bytes(need)))  # read-only


@settings(max_examples=30, deadline=None)
@given(plaintext=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 4000), max_size=5))
def test_decryptor_update_into_matches_update(plaintext, cuts) -> None:  # type: ignore[no-untyped-def]
    message = bytes(Encryptor(UNSIGNED, frame_length=100).encrypt(plaintext))
    header, consumed = parse_header(message, DecryptPolicy())
    assert header is not None
    decryptor = Decryptor.for_header(header)
    decryptor.set_data_key(UNSIGNED.data_key)
    body = message[consumed:]
    out = bytearray()
    buffer = bytearray(len(body))
    last = 0
    for point in sorted({c % (len(body) + 1) for c in cuts}) + [len(body)]:
        n = decryptor.update_into(body[last:point], buffer)
        out += buffer[:n]
        last = point
    assert len(decryptor.finalize()) == 0
    assert decryptor.done
    assert out == plaintext


def test_failed_update_into_leaves_no_plaintext_in_the_buffer() -> None:
    plaintext = os.urandom(300)
    message = bytearray(Encryptor(UNSIGNED, frame_length=100).encrypt(plaintext))
    header, consumed = parse_header(bytes(message), DecryptPolicy())
    assert header is not None
    message[consumed + 132 + 20] ^= 1  # inside the second frame's ciphertext
    decryptor = Decryptor.for_header(header)
    decryptor.set_data_key(UNSIGNED.data_key)
    buffer = bytearray(b"\xaa" * len(message))
    with pytest.raises(FrameAuthenticationError):
        decryptor.update_into(message[consumed:], buffer)
    assert buffer == bytes(len(buffer))


def test_new_buffer_sizes_on_both_sides_of_the_threshold() -> None:
    for size in (0, 1, UNINITIALIZED_MIN_BYTES - 1, UNINITIALIZED_MIN_BYTES, 3 * UNINITIALIZED_MIN_BYTES + 7):
        buffer = new_buffer(size)
        assert isinstance(buffer, bytearray)
        assert len(buffer) == size
        buffer[-1:] = b"\x01"  # writable to its last byte


class _MemoryKms:
    """A stand-in KMS that wraps data keys under one in-memory AES-GCM key (no server needed
    for what this file tests: buffer handling around the KMS calls)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(os.urandom(32))
        self.arn = "arn:aws:kms:us-east-1:111122223333:key/test"

    async def generate_data_key(self, *, key_id, encryption_context, number_of_bytes):  # type: ignore[no-untyped-def]
        plaintext = os.urandom(number_of_bytes)
        nonce = os.urandom(12)
        return GeneratedDataKey(self.arn, plaintext, nonce + self._aead.encrypt(nonce, plaintext, None))

    async def decrypt(self, *, ciphertext_blob, encryption_context, key_id):  # type: ignore[no-untyped-def]
        return UnwrappedKey(self.arn, self._aead.decrypt(ciphertext_blob[:12], ciphertext_blob[12:], None))

    async def encrypt(self, *, key_id, plaintext, encryption_context) -> WrappedKey:  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_decrypt_message_reads_bytes_bytearray_and_memoryview_alike() -> None:
    async def run() -> None:
        manager = MaterialsManager(_MemoryKms())
        plaintext = os.urandom(200_000)
        message = await encrypt_message(manager, plaintext, key_id="k", encryption_context={"a": "b"})
        for form in (bytes(message), message, memoryview(message)):
            result = await decrypt_message(manager, form)
            assert result.plaintext == plaintext
            assert result.header.encryption_context == {"a": "b"}
        assert manager.stats.kms_calls == 2  # one GenerateDataKey, one Decrypt: the rest hit the caches

    asyncio.run(run())


@pytest.mark.parametrize(("first", "second"), [
    ({"a": "1", "b": "2"}, {"b": "2", "a": "1"}),
    ({"a": "1"}, {"a": "2"}),
    ({}, {"a": ""}),
])
def test_header_cache_key_partitions_like_decrypt_cache_key(first, second) -> None:  # type: ignore[no-untyped-def]
    headers = []
    for context in (first, second):
        materials = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY, context)
        materials = type(materials)(materials.suite, UNSIGNED.data_key, UNSIGNED.encrypted_data_keys,
                                    materials.encryption_context)
        header, _ = parse_header(bytes(Encryptor(materials).encrypt(b"p")), DecryptPolicy())
        assert header is not None
        headers.append(header)
    old = [decrypt_cache_key(h.suite.suite_id, h.encrypted_data_keys, h.encryption_context) for h in headers]
    new = [header_cache_key(h) for h in headers]
    assert (old[0] == old[1]) == (new[0] == new[1])


def test_memoized_header_fields_still_reject_bad_provider_ids_every_time() -> None:
    message = bytearray(Encryptor(UNSIGNED).encrypt(b"p"))
    header, _ = parse_header(bytes(message), DecryptPolicy())
    assert header is not None
    provider_at = bytes(message).index(UNSIGNED.encrypted_data_keys[0].provider_id.encode())
    message[provider_at] = 0xFF  # not UTF-8
    for _ in range(2):
        with pytest.raises(MalformedHeaderError):
            parse_header(bytes(message), DecryptPolicy())
    again, _ = parse_header(bytes(Encryptor(UNSIGNED).encrypt(b"q")), DecryptPolicy())
    assert again is not None and again.encrypted_data_keys == header.encrypted_data_keys


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(max_size=1200), frame_length=st.sampled_from([1, 64, 1000, 4096]),
       first_empty_update=st.booleans())
def test_one_call_encrypt_writes_what_update_and_finalize_write(plaintext, frame_length,  # type: ignore[no-untyped-def]
                                                                first_empty_update) -> None:
    # encrypt() of a message shorter than one frame skips the general writer; bytes must not change.
    shortcut = Encryptor(UNSIGNED, frame_length=frame_length, message_id=MESSAGE_ID)
    general = Encryptor(UNSIGNED, frame_length=frame_length, message_id=MESSAGE_ID)
    counted: list[int] = []
    counting = Encryptor(UNSIGNED, frame_length=frame_length, message_id=MESSAGE_ID, on_plaintext=counted.append)
    head = shortcut.update(b"") if first_empty_update else bytearray()
    produced = head + shortcut.encrypt(plaintext)
    expected = general.update(plaintext) + general.finalize()
    assert produced == expected
    assert counting.encrypt(plaintext) == expected
    assert shortcut.plaintext_length == len(plaintext) == sum(counted)
    assert decrypt_chunks(UNSIGNED.data_key, [bytes(produced)]) == plaintext
    with pytest.raises(Exception, match="finalized"):
        shortcut.encrypt(b"again")


def test_header_template_rebuilds_serialize_header() -> None:
    from kmsgate.envelope.header import header_template, serialize_header

    suite = UNSIGNED.suite
    commitment = bytes(range(100, 132))
    prefix, middle = header_template(suite.suite_id, UNSIGNED.header_fields, 4096)
    assert prefix + MESSAGE_ID + middle + commitment == serialize_header(
        suite, MESSAGE_ID, UNSIGNED.header_fields, 4096, commitment)
    header = Encryptor(UNSIGNED, frame_length=4096, message_id=MESSAGE_ID).header
    assert header.header_bytes[-32:] == header.commitment_key
    assert header.header_bytes.startswith(prefix + MESSAGE_ID + middle)
