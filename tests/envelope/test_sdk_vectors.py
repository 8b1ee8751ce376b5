"""Known-answer tests: messages written by the official aws-encryption-sdk decrypt with kmsgate,
and kmsgate's header parser agrees with the SDK on every header field."""

from __future__ import annotations

import hashlib

import pytest

from kmsgate.envelope import DecryptPolicy, Decryptor, ForbiddenSuiteError, parse_header

from .conftest import vector_loader

WRAPPING, VECTORS = vector_loader.load_sdk_vectors()
ALLOW_LEGACY = DecryptPolicy(allow_non_committing=True)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_sdk_message_decrypts_and_header_fields_agree(vector) -> None:  # type: ignore[no-untyped-def]
    header, consumed = parse_header(vector.message, ALLOW_LEGACY)
    assert header is not None
    assert header.suite.suite_id == vector.suite_id
    assert header.message_id == vector.message_id
    assert header.frame_length == vector.frame_length
    assert dict(header.encryption_context) == vector.encryption_context
    assert len(header.encrypted_data_keys) == 1
    assert header.encrypted_data_keys[0].provider_id == WRAPPING.provider_id
    assert consumed == header.length

    decryptor = Decryptor(ALLOW_LEGACY)
    out = decryptor.update(vector.message)
    assert decryptor.needs_data_key and out == b""
    decryptor.set_data_key(WRAPPING.unwrap_data_key(header.encrypted_data_keys[0], vector.encryption_context))
    plaintext = bytes(decryptor.finalize())
    assert len(plaintext) == vector.plaintext_length
    assert hashlib.sha256(plaintext).hexdigest() == vector.plaintext_sha256
    assert plaintext == vector_loader.plaintext_of(vector.plaintext_length)


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.suite_id in (0x0178, 0x0378)], ids=lambda v: v.name)
def test_non_committing_sdk_message_is_refused_by_default(vector) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ForbiddenSuiteError):
        Decryptor().update(vector.message)


def test_vectors_cover_the_required_cases() -> None:
    names = {v.name for v in VECTORS}
    suites = {v.suite_id for v in VECTORS}
    assert {0x0478, 0x0578} <= suites
    assert any(v.plaintext_length == 0 for v in VECTORS)
    assert any(v.plaintext_length == v.frame_length for v in VECTORS)
    assert any(v.plaintext_length == v.frame_length + 1 for v in VECTORS)
    assert any(v.plaintext_length > 5 * v.frame_length for v in VECTORS)
    assert any(not v.encryption_context for v in VECTORS) and len(names) == len(VECTORS)
