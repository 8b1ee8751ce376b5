"""Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom.

These run entirely from memory: no database or root-key work per request.
"""

from __future__ import annotations

import asyncio

import os
from collections.abc import Mapping, Sequence
from typing import Any

from kmsgate.core.errors import (
    IncorrectKeyError,
    InvalidCiphertextError,
    NotFoundError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms import asymmetric, blob
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.keyspecs import KEY_SPECS
from kmsgate.kms.context import encode_context
from kmsgate.kms.model import SYMMETRIC_DEFAULT, KeyMaterial, KmsKey
from kmsgate.kms.results import DataKeyResult, DecryptResult, EncryptResult, ReEncryptResult

MAX_PLAINTEXT_BYTES = 4096
_KEY_SPEC_BYTES = {"AES_256": 32, "AES_128": 16}


def _check_algorithm(algorithm: str | None, field: str) -> None:
    if algorithm not in (None, SYMMETRIC_DEFAULT):
        raise ValidationError(f"{field} {algorithm} is not valid for a symmetric key; use SYMMETRIC_DEFAULT")


def _refuse_context(encryption_context: Mapping[str, str] | None) -> None:
    if encryption_context:
        raise ValidationError("EncryptionContext is not supported with asymmetric KMS keys")


class CryptoOperations(ServiceBase):
    def _seal(self, key: KmsKey, plaintext: bytes, encryption_context: Mapping[str, str] | None) -> tuple[bytes, KeyMaterial]:
        material = self._material(key)
        sealed = blob.seal(material.secret, key.key_id, material.version, plaintext, encode_context(encryption_context))
        return sealed, material

    def _authorize_use(
        self,
        caller: Caller,
        action: str,
        key: KmsKey,
        key_ref: str | None,
        encryption_context: Mapping[str, str] | None,
        grant_tokens: Sequence[str],
        encryption_algorithm: str | None = None,
        conditions: Mapping[str, str] | None = None,
    ) -> None:
        """A cryptographic use of ``key`` (named ``key_ref`` in the request): allowed, and the key usable.

        The context's size is checked first: no policy condition is evaluated over an oversized one.
        """
        encode_context(encryption_context)
        self._authorize(
            caller,
            action,
            key,
            encryption_context=dict(encryption_context or {}),
            grant_tokens=grant_tokens,
            request_alias=self._request_alias(key_ref),
            extra={"kms:EncryptionAlgorithm": encryption_algorithm or SYMMETRIC_DEFAULT, **(conditions or {})},
        )
        self._require_usable(key)

    async def _open(
        self,
        ciphertext_blob: bytes,
        encryption_context: Mapping[str, str] | None,
        key_id: str | None,
        caller: Caller,
        action: str,
        grant_tokens: Sequence[str],
    ) -> tuple[bytes, KmsKey, KeyMaterial]:
        encoded = encode_context(encryption_context)
        header = blob.read_header(ciphertext_blob)
        snapshot = await self._refresh()
        key = snapshot.keys.get(header.key_id)
        if key_id is not None:
            named = self._resolve_in(snapshot, key_id, allow_alias=True)
            if key is None or named.key_id != key.key_id:
                raise IncorrectKeyError(
                    "The key ID in the request does not identify the KMS key that encrypted the ciphertext."
                )
        if key is None:
            if await asyncio.to_thread(self._store.was_deleted, header.key_id):
                raise NotFoundError(f"Key '{self.namespace.key_arn(header.key_id)}' does not exist")
            raise InvalidCiphertextError(blob.INVALID_CIPHERTEXT_MESSAGE)
        self._authorize_use(caller, action, key, key_id, encryption_context, grant_tokens)
        material = self._snapshot.materials.get((key.key_id, header.version))
        if material is None or key.key_spec != SYMMETRIC_DEFAULT:
            raise InvalidCiphertextError(blob.INVALID_CIPHERTEXT_MESSAGE)
        return blob.open_blob(material.secret, ciphertext_blob, encoded), key, material

    async def encrypt(
        self,
        *,
        caller: Caller,
        key_id: str,
        plaintext: bytes,
        encryption_context: Mapping[str, str] | None = None,
        grant_tokens: Sequence[str] = (),
        encryption_algorithm: str | None = None,
    ) -> EncryptResult:
        if not 1 <= len(plaintext) <= MAX_PLAINTEXT_BYTES:
            raise ValidationError(f"Plaintext must be 1 to {MAX_PLAINTEXT_BYTES} bytes")
        key = await self._resolve(key_id, allow_alias=True)
        self._authorize_use(
            caller, "kms:Encrypt", key, key_id, encryption_context, grant_tokens, encryption_algorithm
        )
        if key.key_spec != SYMMETRIC_DEFAULT:
            return self._encrypt_asymmetric(key, plaintext, encryption_context, encryption_algorithm)
        _check_algorithm(encryption_algorithm, "EncryptionAlgorithm")
        sealed, material = self._seal(key, plaintext, encryption_context)
        self._note_use(key, "Encrypt")
        return EncryptResult(
            key_id=key.arn,
            ciphertext_blob=sealed,
            encryption_algorithm=SYMMETRIC_DEFAULT,
            key_material_id=material.material_id,
        )

    async def decrypt(
        self,
        *,
        caller: Caller,
        ciphertext_blob: bytes,
        encryption_context: Mapping[str, str] | None = None,
        key_id: str | None = None,
        grant_tokens: Sequence[str] = (),
        encryption_algorithm: str | None = None,
    ) -> DecryptResult:
        if key_id is not None:
            named = await self._resolve(key_id, allow_alias=True)
            if named.key_spec != SYMMETRIC_DEFAULT:
                return await self._decrypt_asymmetric(
                    caller, named, key_id, ciphertext_blob, encryption_context, grant_tokens, encryption_algorithm
                )
        _check_algorithm(encryption_algorithm, "EncryptionAlgorithm")
        plaintext, key, material = await self._open(
            ciphertext_blob, encryption_context, key_id, caller, "kms:Decrypt", grant_tokens
        )
        self._note_use(key, "Decrypt")
        return DecryptResult(
            key_id=key.arn,
            plaintext=plaintext,
            encryption_algorithm=SYMMETRIC_DEFAULT,
            key_material_id=material.material_id,
        )

    def _encrypt_asymmetric(
        self, key: KmsKey, plaintext: bytes, encryption_context: Mapping[str, str] | None, algorithm: str | None
    ) -> EncryptResult:
        self._require_key_usage(key, "Encrypt", "ENCRYPT_DECRYPT")
        spec = KEY_SPECS[key.key_spec]
        chosen = asymmetric.check_encryption_algorithm(spec, key.key_usage, algorithm)
        _refuse_context(encryption_context)
        material = self._material(key)
        ciphertext = asymmetric.encrypt(material.secret, spec, chosen, plaintext)
        self._note_use(key, "Encrypt")
        return EncryptResult(
            key_id=key.arn, ciphertext_blob=ciphertext, encryption_algorithm=chosen, key_material_id=material.material_id
        )

    async def _decrypt_asymmetric(
        self,
        caller: Caller,
        key: KmsKey,
        key_ref: str,
        ciphertext_blob: bytes,
        encryption_context: Mapping[str, str] | None,
        grant_tokens: Sequence[str],
        algorithm: str | None,
    ) -> DecryptResult:
        self._authorize_use(caller, "kms:Decrypt", key, key_ref, encryption_context, grant_tokens, algorithm)
        self._require_key_usage(key, "Decrypt", "ENCRYPT_DECRYPT")
        chosen = asymmetric.check_encryption_algorithm(KEY_SPECS[key.key_spec], key.key_usage, algorithm)
        _refuse_context(encryption_context)
        material = self._material(key)
        # An RSA private-key operation: off the event loop (see asymmetric.slow_private_operation).
        plaintext = await self._run_slow(asymmetric.decrypt, material.secret, chosen, ciphertext_blob)
        self._note_use(key, "Decrypt")
        return DecryptResult(
            key_id=key.arn, plaintext=plaintext, encryption_algorithm=chosen, key_material_id=material.material_id
        )

    async def re_encrypt(
        self,
        *,
        caller: Caller,
        ciphertext_blob: bytes,
        destination_key_id: str,
        source_encryption_context: Mapping[str, str] | None = None,
        source_key_id: str | None = None,
        destination_encryption_context: Mapping[str, str] | None = None,
        source_encryption_algorithm: str | None = None,
        destination_encryption_algorithm: str | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> ReEncryptResult:
        _check_algorithm(source_encryption_algorithm, "SourceEncryptionAlgorithm")
        _check_algorithm(destination_encryption_algorithm, "DestinationEncryptionAlgorithm")
        destination = await self._resolve(destination_key_id, allow_alias=True)
        plaintext, source, source_material = await self._open(
            ciphertext_blob, source_encryption_context, source_key_id, caller, "kms:ReEncryptFrom", grant_tokens
        )
        self._authorize_use(
            caller, "kms:ReEncryptTo", destination, destination_key_id, destination_encryption_context, grant_tokens
        )
        self._require_key_usage(destination, "ReEncrypt", "ENCRYPT_DECRYPT", symmetric=True)
        sealed, material = self._seal(destination, plaintext, destination_encryption_context)
        self._note_use(source, "ReEncrypt")
        self._note_use(destination, "ReEncrypt")
        return ReEncryptResult(
            key_id=destination.arn,
            ciphertext_blob=sealed,
            source_key_id=source.arn,
            source_encryption_algorithm=SYMMETRIC_DEFAULT,
            destination_encryption_algorithm=SYMMETRIC_DEFAULT,
            source_key_material_id=source_material.material_id,
            destination_key_material_id=material.material_id,
        )

    async def _data_key(
        self,
        caller: Caller,
        action: str,
        key_id: str,
        encryption_context: Mapping[str, str] | None,
        number_of_bytes: int | None,
        key_spec: str | None,
        grant_tokens: Sequence[str],
    ) -> tuple[KmsKey, bytes, bytes, KeyMaterial]:
        if (number_of_bytes is None) == (key_spec is None):
            raise ValidationError("Specify either KeySpec or NumberOfBytes, but not both")
        size = _KEY_SPEC_BYTES[key_spec] if key_spec is not None else int(number_of_bytes or 0)
        key = await self._resolve(key_id, allow_alias=True)
        self._authorize_use(caller, action, key, key_id, encryption_context, grant_tokens)
        self._require_key_usage(key, action.removeprefix("kms:"), "ENCRYPT_DECRYPT", symmetric=True)
        plaintext = os.urandom(size)
        sealed, material = self._seal(key, plaintext, encryption_context)
        self._note_use(key, action.removeprefix("kms:"))
        return key, plaintext, sealed, material

    async def generate_data_key(
        self,
        *,
        caller: Caller,
        key_id: str,
        encryption_context: Mapping[str, str] | None = None,
        number_of_bytes: int | None = None,
        key_spec: str | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> DataKeyResult:
        key, plaintext, sealed, material = await self._data_key(
            caller, "kms:GenerateDataKey", key_id, encryption_context, number_of_bytes, key_spec, grant_tokens
        )
        return DataKeyResult(
            key_id=key.arn, plaintext=plaintext, ciphertext_blob=sealed, key_material_id=material.material_id
        )

    async def generate_data_key_without_plaintext(
        self,
        *,
        caller: Caller,
        key_id: str,
        encryption_context: Mapping[str, str] | None = None,
        number_of_bytes: int | None = None,
        key_spec: str | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> DataKeyResult:
        key, _plaintext, sealed, material = await self._data_key(
            caller,
            "kms:GenerateDataKeyWithoutPlaintext",
            key_id,
            encryption_context,
            number_of_bytes,
            key_spec,
            grant_tokens,
        )
        return DataKeyResult(key_id=key.arn, plaintext=None, ciphertext_blob=sealed, key_material_id=material.material_id)

    async def generate_random(
        self, *, caller: Caller, number_of_bytes: int | None = None, custom_key_store_id: str | None = None
    ) -> dict[str, Any]:
        if custom_key_store_id is not None:
            raise NotFoundError("Custom key stores are not supported")
        self._authorize(caller, "kms:GenerateRandom", None)
        if number_of_bytes is None:
            raise ValidationError("NumberOfBytes is required")
        return {"plaintext": os.urandom(number_of_bytes)}
