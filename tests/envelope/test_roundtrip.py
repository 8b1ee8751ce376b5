"""Round trips at random sizes and chunkings, and kmsgate messages read by the official SDK."""

from __future__ import annotations

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsgate.envelope import (
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
    Encryptor,
    EncryptionError,
)
from kmsgate.envelope.frames import body_size

from .conftest import raw_aes_materials, vector_loader
from .helpers import decrypt_chunks, encrypt_chunks, split

SUITES = [AES_256_GCM_HKDF_SHA512_COMMIT_KEY, AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384]
UNSIGNED = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY, {"tenant": "a"})
SIGNED = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, {"tenant": "a"})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    signed=st.booleans(),
    frame_length=st.sampled_from([1, 7, 64, 1000, 4096]),
    plaintext=st.binary(max_size=6000),
    enc_cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=6),
    dec_cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_round_trip_any_size_any_chunking(signed, frame_length, plaintext, enc_cuts, dec_cuts) -> None:  # type: ignore[no-untyped-def]
    materials = SIGNED if signed else UNSIGNED
    message = encrypt_chunks(materials, split(plaintext, enc_cuts), frame_length)
    if not signed:
        header_len = len(message) - body_size(len(plaintext), frame_length)
        assert header_len > 0
    assert decrypt_chunks(materials.data_key, split(message, dec_cuts)) == plaintext


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(max_size=3000), head=st.integers(0, 3000), frame_length=st.sampled_from([1, 50, 1024]))
def test_one_shot_encrypt_equals_streaming_layout(plaintext, head, frame_length) -> None:  # type: ignore[no-untyped-def]
    encryptor = Encryptor(UNSIGNED, frame_length=frame_length)
    message = bytes(encryptor.update(plaintext[:head]) + encryptor.encrypt(plaintext[head:]))
    assert decrypt_chunks(UNSIGNED.data_key, [message]) == plaintext
    with pytest.raises(EncryptionError):
        encryptor.update(b"more")


def test_one_byte_chunks_round_trip() -> None:
    plaintext = bytes(range(256)) * 3
    message = encrypt_chunks(UNSIGNED, [plaintext[i : i + 1] for i in range(len(plaintext))], 100)
    assert decrypt_chunks(UNSIGNED.data_key, [message[i : i + 1] for i in range(len(message))]) == plaintext


def test_two_messages_under_one_data_key_have_distinct_ids_and_ciphertexts() -> None:
    a = Encryptor(UNSIGNED)
    b = Encryptor(UNSIGNED)
    assert a.header.message_id != b.header.message_id
    assert bytes(a.update(b"x" * 100) + a.finalize()) != bytes(b.update(b"x" * 100) + b.finalize())


def test_reserved_context_keys_are_refused() -> None:
    from kmsgate.envelope.context import check_user_context

    with pytest.raises(EncryptionError):
        check_user_context({"aws-crypto-public-key": "x"})


@pytest.mark.parametrize("suite", SUITES, ids=["0478", "0578"])
@pytest.mark.parametrize(
    ("context", "length", "frame_length"),
    [({}, 0, 4096), ({"a": "b", "\u00fc": "\u2603"}, 4096, 4096), ({"a": "b"}, 4097, 4096), ({}, 10_000, 100)],
    ids=["empty-ctx-empty-pt", "one-frame", "frame-plus-one", "many-frames"],
)
def test_official_sdk_decrypts_kmsgate_message(suite, context, length, frame_length) -> None:  # type: ignore[no-untyped-def]
    materials = raw_aes_materials(suite, context)
    plaintext = vector_loader.plaintext_of(length)
    message = encrypt_chunks(materials, [plaintext], frame_length)
    provider = _sdk_raw_provider()
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    decrypted, header = client.decrypt(source=message, key_provider=provider)
    assert decrypted == plaintext
    assert header.algorithm.algorithm_id == suite.suite_id
    assert header.frame_length == frame_length
    for key, value in context.items():
        assert header.encryption_context[key] == value


def _sdk_raw_provider():  # type: ignore[no-untyped-def]
    import importlib.util

    from .conftest import VECTORS_DIR

    spec = importlib.util.spec_from_file_location("kmsgate_sdk_vector_generator", VECTORS_DIR / "generate_sdk_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    provider = module.StaticRawProvider()
    provider.add_master_key(module.KEY_NAME)
    return provider
