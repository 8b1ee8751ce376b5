"""Service-layer tests (no HTTP) for Encrypt, Decrypt, ReEncrypt, data keys and GenerateRandom."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kmsgate.core.errors import (
    IncorrectKeyError,
    InvalidCiphertextError,
    NotFoundError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms.blob import INVALID_CIPHERTEXT_MESSAGE
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service

from .helpers import ACCOUNT_ID, REGION, tampered


async def new_key_id(service: KmsService, caller: Caller) -> str:
    return (await service.create_key(caller=caller))["key_metadata"]["key_id"]  # type: ignore[no-any-return]


async def test_encrypt_decrypt_round_trip_without_key_id(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    for size in (1, 2, 17, 4096):
        plaintext = os.urandom(size)
        result = await service.encrypt(caller=caller, key_id=key_id, plaintext=plaintext)
        assert result.key_id.endswith(key_id)
        assert result.encryption_algorithm == "SYMMETRIC_DEFAULT"
        decrypted = await service.decrypt(caller=caller, ciphertext_blob=result.ciphertext_blob)
        assert decrypted.plaintext == plaintext
        assert decrypted.key_id == result.key_id
        assert decrypted.key_material_id == result.key_material_id


async def test_same_plaintext_encrypts_differently(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    one = await service.encrypt(caller=caller, key_id=key_id, plaintext=b"same")
    two = await service.encrypt(caller=caller, key_id=key_id, plaintext=b"same")
    assert one.ciphertext_blob != two.ciphertext_blob


@pytest.mark.parametrize("size", [0, 4097])
async def test_plaintext_length_is_1_to_4096(service: KmsService, caller: Caller, size: int) -> None:
    key_id = await new_key_id(service, caller)
    with pytest.raises(ValidationError):
        await service.encrypt(caller=caller, key_id=key_id, plaintext=b"x" * size)


async def test_decrypt_with_key_id_in_every_form(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    other = await new_key_id(service, caller)
    await service.create_alias(caller=caller, alias_name="alias/dec", target_key_id=key_id)
    await service.create_alias(caller=caller, alias_name="alias/other", target_key_id=other)
    blob = (await service.encrypt(caller=caller, key_id=key_id, plaintext=b"p")).ciphertext_blob
    arn = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key_id}"
    for form in (key_id, arn, "alias/dec", f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:alias/dec"):
        assert (await service.decrypt(caller=caller, ciphertext_blob=blob, key_id=form)).plaintext == b"p"
    for wrong in (other, "alias/other"):
        with pytest.raises(IncorrectKeyError):
            await service.decrypt(caller=caller, ciphertext_blob=blob, key_id=wrong)
    with pytest.raises(NotFoundError):
        await service.decrypt(caller=caller, ciphertext_blob=blob, key_id="alias/missing")


async def test_encryption_context_must_match_exactly(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    context = {"tenant": "acme", "purpose": "orders"}
    blob = (await service.encrypt(caller=caller, key_id=key_id, plaintext=b"c", encryption_context=context)).ciphertext_blob
    reordered = dict(reversed(list(context.items())))
    assert (await service.decrypt(caller=caller, ciphertext_blob=blob, encryption_context=reordered)).plaintext == b"c"
    for wrong in (None, {}, {"tenant": "acme"}, {**context, "extra": ""}, {**context, "tenant": "acmf"}):
        with pytest.raises(InvalidCiphertextError) as info:
            await service.decrypt(caller=caller, ciphertext_blob=blob, encryption_context=wrong)
        assert info.value.message == INVALID_CIPHERTEXT_MESSAGE
    plain = (await service.encrypt(caller=caller, key_id=key_id, plaintext=b"c")).ciphertext_blob
    assert (await service.decrypt(caller=caller, ciphertext_blob=plain, encryption_context={})).plaintext == b"c"
    with pytest.raises(InvalidCiphertextError):
        await service.decrypt(caller=caller, ciphertext_blob=plain, encryption_context={"a": "b"})


async def test_context_boundaries_are_not_interchangeable(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    pairs = [({"a": "bc"}, {"ab": "c"}), ({"a": "b", "c": "d"}, {"a": "bc", "": "d"}), ({"k": ""}, {"": "k"})]
    for made_with, tried in pairs:
        blob = (
            await service.encrypt(caller=caller, key_id=key_id, plaintext=b"x", encryption_context=made_with)
        ).ciphertext_blob
        with pytest.raises(InvalidCiphertextError):
            await service.decrypt(caller=caller, ciphertext_blob=blob, encryption_context=tried)
        assert (await service.decrypt(caller=caller, ciphertext_blob=blob, encryption_context=made_with)).plaintext


async def test_every_tampered_or_truncated_blob_fails_with_one_error(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    context = {"k": "v"}
    blob = (
        await service.encrypt(caller=caller, key_id=key_id, plaintext=b"tamper me", encryption_context=context)
    ).ciphertext_blob
    count = 0
    for label, bad in tampered(blob):
        with pytest.raises(InvalidCiphertextError) as info:
            await service.decrypt(caller=caller, ciphertext_blob=bad, encryption_context=context)
        assert info.value.message == INVALID_CIPHERTEXT_MESSAGE, label
        count += 1
    assert count == 3 * len(blob) + 1


async def test_foreign_ciphertexts_are_invalid(service: KmsService, caller: Caller, tmp_path: Path) -> None:
    await new_key_id(service, caller)
    other = open_service(tmp_path / "other", RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID, clock=FakeClock())
    try:
        other_key = await new_key_id(other, caller)
        foreign = (await other.encrypt(caller=caller, key_id=other_key, plaintext=b"elsewhere")).ciphertext_blob
    finally:
        other.close()
    for bad in (foreign, os.urandom(80), b"\x01" * 100, b"\x02" + foreign[1:], b"x" * 6145):
        with pytest.raises(InvalidCiphertextError):
            await service.decrypt(caller=caller, ciphertext_blob=bad)


async def test_a_blob_moved_to_another_key_id_fails(service: KmsService, caller: Caller) -> None:
    first = await new_key_id(service, caller)
    second = await new_key_id(service, caller)
    blob = (await service.encrypt(caller=caller, key_id=first, plaintext=b"mine")).ciphertext_blob
    import uuid

    moved = blob[:1] + uuid.UUID(second).bytes + blob[17:]
    with pytest.raises(InvalidCiphertextError):
        await service.decrypt(caller=caller, ciphertext_blob=moved)


async def test_generate_data_key_sizes(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    for spec, size in (("AES_256", 32), ("AES_128", 16)):
        result = await service.generate_data_key(caller=caller, key_id=key_id, key_spec=spec)
        assert result.plaintext is not None and len(result.plaintext) == size
        assert (await service.decrypt(caller=caller, ciphertext_blob=result.ciphertext_blob)).plaintext == result.plaintext
    for size in (1, 64, 1024):
        result = await service.generate_data_key(caller=caller, key_id=key_id, number_of_bytes=size)
        assert result.plaintext is not None and len(result.plaintext) == size
    with pytest.raises(ValidationError):
        await service.generate_data_key(caller=caller, key_id=key_id)
    with pytest.raises(ValidationError):
        await service.generate_data_key(caller=caller, key_id=key_id, key_spec="AES_256", number_of_bytes=32)


async def test_generate_data_key_secrets_never_in_repr(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    result = await service.generate_data_key(caller=caller, key_id=key_id, key_spec="AES_256")
    decrypted = await service.decrypt(caller=caller, ciphertext_blob=result.ciphertext_blob)
    assert result.plaintext is not None
    for text in (repr(result), repr(decrypted)):
        assert result.plaintext.hex() not in text and repr(result.plaintext) not in text


async def test_generate_data_key_with_context_and_without_plaintext(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    context = {"bucket": "b1"}
    result = await service.generate_data_key_without_plaintext(
        caller=caller, key_id=key_id, key_spec="AES_256", encryption_context=context
    )
    assert result.plaintext is None
    decrypted = await service.decrypt(caller=caller, ciphertext_blob=result.ciphertext_blob, encryption_context=context)
    assert len(decrypted.plaintext) == 32
    with pytest.raises(InvalidCiphertextError):
        await service.decrypt(caller=caller, ciphertext_blob=result.ciphertext_blob)


async def test_reencrypt_between_keys_and_contexts(service: KmsService, caller: Caller) -> None:
    source = await new_key_id(service, caller)
    destination = await new_key_id(service, caller)
    await service.create_alias(caller=caller, alias_name="alias/dest", target_key_id=destination)
    blob = (
        await service.encrypt(caller=caller, key_id=source, plaintext=b"move me", encryption_context={"a": "1"})
    ).ciphertext_blob
    with pytest.raises(InvalidCiphertextError):
        await service.re_encrypt(caller=caller, ciphertext_blob=blob, destination_key_id=destination)
    with pytest.raises(IncorrectKeyError):
        await service.re_encrypt(
            caller=caller,
            ciphertext_blob=blob,
            source_key_id=destination,
            source_encryption_context={"a": "1"},
            destination_key_id=destination,
        )
    result = await service.re_encrypt(
        caller=caller,
        ciphertext_blob=blob,
        source_key_id=source,
        source_encryption_context={"a": "1"},
        destination_key_id="alias/dest",
        destination_encryption_context={"b": "2"},
    )
    assert result.key_id.endswith(destination) and result.source_key_id.endswith(source)
    assert result.source_encryption_algorithm == result.destination_encryption_algorithm == "SYMMETRIC_DEFAULT"
    decrypted = await service.decrypt(caller=caller, ciphertext_blob=result.ciphertext_blob, encryption_context={"b": "2"})
    assert decrypted.plaintext == b"move me"
    assert decrypted.key_material_id == result.destination_key_material_id
    with pytest.raises(InvalidCiphertextError):
        await service.decrypt(caller=caller, ciphertext_blob=result.ciphertext_blob, encryption_context={"a": "1"})


async def test_unsupported_algorithms_are_rejected(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    with pytest.raises(ValidationError):
        await service.encrypt(caller=caller, key_id=key_id, plaintext=b"x", encryption_algorithm="RSAES_OAEP_SHA_256")


async def test_generate_random(service: KmsService, caller: Caller) -> None:
    for size in (1, 32, 1024):
        assert len((await service.generate_random(caller=caller, number_of_bytes=size))["plaintext"]) == size
    one = (await service.generate_random(caller=caller, number_of_bytes=32))["plaintext"]
    two = (await service.generate_random(caller=caller, number_of_bytes=32))["plaintext"]
    assert one != two
    with pytest.raises(NotFoundError):
        await service.generate_random(caller=caller, number_of_bytes=8, custom_key_store_id="cks-1234567890")
