"""Service-layer tests (no HTTP) for customer-provided key material, including token and material expiry."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from kmsgate.core.errors import (
    ExpiredImportTokenError,
    IncorrectKeyMaterialError,
    InvalidCiphertextError,
    InvalidImportTokenError,
    KmsInvalidStateError,
    UnsupportedOperationError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.service import KmsService

from .helpers import WRAPPING_ALGORITHMS, wrap_key_material

DAY = 86400.0


async def external_key(service: KmsService, caller: Caller) -> str:
    return (await service.create_key(caller=caller, origin="EXTERNAL"))["key_metadata"]["key_id"]  # type: ignore[no-any-return]


async def import_material(
    service: KmsService,
    caller: Caller,
    key_id: str,
    material: bytes,
    algorithm: str = "RSAES_OAEP_SHA_256",
    **kwargs: object,
) -> dict[str, object]:
    params = await service.get_parameters_for_import(
        caller=caller, key_id=key_id, wrapping_algorithm=algorithm, wrapping_key_spec="RSA_2048"
    )
    wrapped = wrap_key_material(params["public_key"], material, algorithm)
    kwargs.setdefault("expiration_model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    return await service.import_key_material(  # type: ignore[no-any-return]
        caller=caller, key_id=key_id, import_token=params["import_token"], encrypted_key_material=wrapped, **kwargs
    )


@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
async def test_import_round_trip(service: KmsService, caller: Caller, clock: FakeClock, algorithm: str) -> None:
    key_id = await external_key(service, caller)
    params = await service.get_parameters_for_import(
        caller=caller, key_id=key_id, wrapping_algorithm=algorithm, wrapping_key_spec="RSA_2048"
    )
    assert params["key_id"].endswith(key_id)
    assert params["parameters_valid_to"] == clock.now() + 24 * 3600
    material = os.urandom(32)
    wrapped = wrap_key_material(params["public_key"], material, algorithm)
    result = await service.import_key_material(
        caller=caller, key_id=key_id, import_token=params["import_token"], encrypted_key_material=wrapped,
        expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    meta = (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]
    assert meta["key_state"] == "Enabled"
    assert meta["expiration_model"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert meta["current_key_material_id"] == result["key_material_id"]
    blob = (await service.encrypt(caller=caller, key_id=key_id, plaintext=b"byok")).ciphertext_blob
    assert (await service.decrypt(caller=caller, ciphertext_blob=blob)).plaintext == b"byok"


async def test_token_for_another_key_or_altered_is_invalid(service: KmsService, caller: Caller) -> None:
    first = await external_key(service, caller)
    second = await external_key(service, caller)
    params = await service.get_parameters_for_import(
        caller=caller, key_id=first, wrapping_algorithm="RSAES_OAEP_SHA_256", wrapping_key_spec="RSA_2048"
    )
    wrapped = wrap_key_material(params["public_key"], os.urandom(32), "RSAES_OAEP_SHA_256")
    with pytest.raises(InvalidImportTokenError):
        await service.import_key_material(
            caller=caller, key_id=second, import_token=params["import_token"], encrypted_key_material=wrapped,
            expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    token = bytearray(params["import_token"])
    token[len(token) // 2] ^= 1
    with pytest.raises(InvalidImportTokenError):
        await service.import_key_material(
            caller=caller, key_id=first, import_token=bytes(token), encrypted_key_material=wrapped,
            expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    assert (await service.describe_key(caller=caller, key_id=second))["key_metadata"]["key_state"] == "PendingImport"


async def test_expired_token(service: KmsService, caller: Caller, clock: FakeClock) -> None:
    key_id = await external_key(service, caller)
    params = await service.get_parameters_for_import(
        caller=caller, key_id=key_id, wrapping_algorithm="RSAES_OAEP_SHA_1", wrapping_key_spec="RSA_2048"
    )
    wrapped = wrap_key_material(params["public_key"], os.urandom(32), "RSAES_OAEP_SHA_1")
    clock.advance(24 * 3600 + 1)
    with pytest.raises(ExpiredImportTokenError):
        await service.import_key_material(
            caller=caller, key_id=key_id, import_token=params["import_token"], encrypted_key_material=wrapped,
            expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )


async def test_wrongly_wrapped_material(service: KmsService, caller: Caller) -> None:
    key_id = await external_key(service, caller)
    params = await service.get_parameters_for_import(
        caller=caller, key_id=key_id, wrapping_algorithm="RSAES_OAEP_SHA_256", wrapping_key_spec="RSA_2048"
    )
    sha1_wrapped = wrap_key_material(params["public_key"], os.urandom(32), "RSAES_OAEP_SHA_1")
    for bad in (os.urandom(256), sha1_wrapped):
        with pytest.raises(InvalidCiphertextError):
            await service.import_key_material(
                caller=caller, key_id=key_id, import_token=params["import_token"], encrypted_key_material=bad,
                expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
            )
    short = wrap_key_material(params["public_key"], os.urandom(16), "RSAES_OAEP_SHA_256")
    with pytest.raises(IncorrectKeyMaterialError):
        await service.import_key_material(
            caller=caller, key_id=key_id, import_token=params["import_token"], encrypted_key_material=short,
            expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )


async def test_material_is_bound_to_the_key_for_life(service: KmsService, caller: Caller) -> None:
    key_id = await external_key(service, caller)
    material = os.urandom(32)
    first = await import_material(service, caller, key_id, material)
    blob = (await service.encrypt(caller=caller, key_id=key_id, plaintext=b"kept")).ciphertext_blob
    again = await import_material(service, caller, key_id, material)  # same material: accepted
    assert again["key_material_id"] == first["key_material_id"]
    with pytest.raises(IncorrectKeyMaterialError):
        await import_material(service, caller, key_id, os.urandom(32))

    deleted = await service.delete_imported_key_material(caller=caller, key_id=key_id)
    assert deleted["key_material_id"] == first["key_material_id"]
    meta = (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]
    assert meta["key_state"] == "PendingImport" and "current_key_material_id" not in meta
    with pytest.raises(KmsInvalidStateError):
        await service.decrypt(caller=caller, ciphertext_blob=blob)
    await service.delete_imported_key_material(caller=caller, key_id=key_id)  # PendingImport: no effect

    with pytest.raises(IncorrectKeyMaterialError):
        await import_material(service, caller, key_id, os.urandom(32))
    restored = await import_material(service, caller, key_id, material, algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert restored["key_material_id"] == first["key_material_id"]
    assert (await service.decrypt(caller=caller, ciphertext_blob=blob)).plaintext == b"kept"


async def test_reimport_keeps_a_disabled_key_disabled(service: KmsService, caller: Caller) -> None:
    key_id = await external_key(service, caller)
    material = os.urandom(32)
    await import_material(service, caller, key_id, material)
    await service.disable_key(caller=caller, key_id=key_id)
    await import_material(service, caller, key_id, material)
    assert (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]["key_state"] == "Disabled"


async def test_expiring_material_returns_the_key_to_pending_import(
    service: KmsService, caller: Caller, clock: FakeClock, count_stored: Callable[[str, str], int]
) -> None:
    key_id = await external_key(service, caller)
    material = os.urandom(32)
    valid_to = clock.now() + 10 * DAY
    await import_material(
        service, caller, key_id, material, valid_to=valid_to, expiration_model="KEY_MATERIAL_EXPIRES"
    )
    meta = (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]
    assert meta["expiration_model"] == "KEY_MATERIAL_EXPIRES" and meta["valid_to"] == valid_to
    blob = (await service.encrypt(caller=caller, key_id=key_id, plaintext=b"t")).ciphertext_blob

    clock.advance(10 * DAY - 1)
    assert (await service.run_due()).expired == ()
    clock.advance(1)
    assert (await service.run_due()).expired == (key_id,)
    meta = (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]
    assert meta["key_state"] == "PendingImport" and "valid_to" not in meta
    assert count_stored("materials", key_id) == 0
    with pytest.raises(KmsInvalidStateError):
        await service.decrypt(caller=caller, ciphertext_blob=blob)
    await import_material(service, caller, key_id, material)
    assert (await service.decrypt(caller=caller, ciphertext_blob=blob)).plaintext == b"t"


async def test_expiration_arguments_are_checked(service: KmsService, caller: Caller, clock: FakeClock) -> None:
    key_id = await external_key(service, caller)
    material = os.urandom(32)
    with pytest.raises(ValidationError):
        await import_material(service, caller, key_id, material, expiration_model="KEY_MATERIAL_EXPIRES")
    with pytest.raises(ValidationError):
        await import_material(
            service, caller, key_id, material, valid_to=clock.now() - 1, expiration_model="KEY_MATERIAL_EXPIRES"
        )
    with pytest.raises(ValidationError):
        await import_material(
            service, caller, key_id, material, valid_to=clock.now() + DAY, expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE"
        )


async def test_import_operations_need_an_external_key(service: KmsService, caller: Caller) -> None:
    key_id = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
    with pytest.raises(UnsupportedOperationError):
        await service.get_parameters_for_import(
            caller=caller, key_id=key_id, wrapping_algorithm="RSAES_OAEP_SHA_256", wrapping_key_spec="RSA_2048"
        )
    with pytest.raises(UnsupportedOperationError):
        await service.import_key_material(
            caller=caller, key_id=key_id, import_token=b"t" * 64, encrypted_key_material=b"m" * 256,
            expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    with pytest.raises(UnsupportedOperationError):
        await service.delete_imported_key_material(caller=caller, key_id=key_id)


async def test_import_refused_while_pending_deletion(service: KmsService, caller: Caller) -> None:
    key_id = await external_key(service, caller)
    await service.schedule_key_deletion(caller=caller, key_id=key_id)
    with pytest.raises(KmsInvalidStateError):
        await service.get_parameters_for_import(
            caller=caller, key_id=key_id, wrapping_algorithm="RSAES_OAEP_SHA_256", wrapping_key_spec="RSA_2048"
        )
