"""Customer-provided key material: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial.

kmsgate holds one material version per EXTERNAL key (no rotation of imported material).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

from kmsgate.core.errors import (
    IncorrectKeyMaterialError,
    UnsupportedOperationError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms import importing, keyspecs
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.keyspecs import KEY_SPECS
from kmsgate.kms.model import (
    KEY_MATERIAL_EXPIRES,
    ORIGIN_EXTERNAL,
    KeyMaterial,
    KeyState,
    KmsKey,
)
from kmsgate.kms.ops_keys import new_material_id
from kmsgate.kms.transaction import Transaction

IMPORTED_VERSION = 1
MAX_VALID_TO_DAYS = 365  # ImportKeyMaterial: ValidTo at most this far ahead, as AWS allows


class ImportOperations(ServiceBase):
    def _require_external(self, key: KmsKey) -> None:
        if key.origin != ORIGIN_EXTERNAL:
            raise UnsupportedOperationError(f"{key.arn} origin is {key.origin}, not EXTERNAL")

    async def get_parameters_for_import(
        self, *, caller: Caller, key_id: str, wrapping_algorithm: str, wrapping_key_spec: str
    ) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:GetParametersForImport", key)
        self._require_external(key)
        self._require_state(key, KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT)
        root_key = self._store.root_key
        parameters = await asyncio.to_thread(
            importing.create_parameters,
            root_key,
            key.key_id,
            wrapping_algorithm,
            wrapping_key_spec,
            self._clock.now(),
        )
        return {
            "key_id": key.arn,
            "import_token": parameters.import_token,
            "public_key": parameters.public_key_der,
            "parameters_valid_to": parameters.valid_to,
        }

    async def import_key_material(
        self,
        *,
        caller: Caller,
        key_id: str,
        import_token: bytes,
        encrypted_key_material: bytes,
        valid_to: float | None = None,
        expiration_model: str | None = None,
        import_type: str | None = None,
        key_material_description: str | None = None,
        key_material_id: str | None = None,
    ) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:ImportKeyMaterial", key)
        self._require_external(key)
        self._require_state(key, KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT)
        if import_type == "NEW_KEY_MATERIAL":
            raise UnsupportedOperationError("kmsgate keeps one imported key material per key; NEW_KEY_MATERIAL is not supported")
        # AWS's default is KEY_MATERIAL_EXPIRES, which needs a ValidTo: a request with neither is refused.
        model = expiration_model or KEY_MATERIAL_EXPIRES
        now = self._clock.now()
        if model == KEY_MATERIAL_EXPIRES:
            if valid_to is None:
                raise ValidationError(
                    "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES (the default); "
                    "give ValidTo, or ExpirationModel KEY_MATERIAL_DOES_NOT_EXPIRE"
                )
            if valid_to <= now:
                raise ValidationError("ValidTo must be in the future")
            if valid_to > now + MAX_VALID_TO_DAYS * 86400:
                raise ValidationError(f"ValidTo must be at most {MAX_VALID_TO_DAYS} days from now")
        elif valid_to is not None:
            raise ValidationError("ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE")
        secret = await asyncio.to_thread(
            importing.unwrap_material, self._store.root_key, key.key_id, import_token, encrypted_key_material, now
        )
        # HMAC keys take raw key bytes, asymmetric keys a PKCS#8 private key of their spec.
        secret = keyspecs.check_imported_material(KEY_SPECS[key.key_spec], secret)

        commitment = material_commitment(secret)

        def change(tx: Transaction) -> str:
            current = self._load_key(tx, key.key_id)
            self._require_state(current, KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT)
            if current.imported_commitment is not None and not hmac.compare_digest(
                current.imported_commitment, commitment
            ):
                raise IncorrectKeyMaterialError(
                    "The key material does not match the key material previously imported into this key"
                )
            if (
                key_material_id is not None
                and current.imported_material_id is not None
                and key_material_id != current.imported_material_id
            ):
                raise IncorrectKeyMaterialError("KeyMaterialId does not identify this key's material")
            material_id = current.imported_material_id or new_material_id()
            tx.put_material(
                KeyMaterial(
                    key_id=current.key_id,
                    version=IMPORTED_VERSION,
                    material_id=material_id,
                    secret=secret,
                    created=now,
                    rotation_type=None,
                    origin=ORIGIN_EXTERNAL,
                )
            )
            state = KeyState.ENABLED if current.state is KeyState.PENDING_IMPORT else current.state
            tx.put_key(
                current.evolve(
                    state=state,
                    current_version=IMPORTED_VERSION,
                    expiration_model=model,
                    valid_to=valid_to if model == KEY_MATERIAL_EXPIRES else None,
                    imported_material_id=material_id,
                    imported_commitment=commitment,
                )
            )
            return material_id

        material_id = await self._mutate(change)
        return {"key_id": key.arn, "key_material_id": material_id}

    async def delete_imported_key_material(
        self, *, caller: Caller, key_id: str, key_material_id: str | None = None
    ) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:DeleteImportedKeyMaterial", key)
        self._require_external(key)

        def change(tx: Transaction) -> str | None:
            current = self._load_key(tx, key.key_id)
            if current.state is KeyState.PENDING_IMPORT:
                return None  # nothing to delete: AWS treats this as a successful no-op
            previous = tx.get_material(current.key_id, IMPORTED_VERSION)
            tx.put_key(expire_imported(tx, current))
            return previous.material_id if previous is not None else None

        material_id = await self._mutate(change)
        result: dict[str, Any] = {"key_id": key.arn}
        if material_id is not None:
            result["key_material_id"] = material_id
        return result


def material_commitment(secret: bytes) -> str:
    """A one-way commitment to imported material: equal material gives an equal commitment."""
    return hmac.digest(secret, b"kmsgate-import-commitment-v1", hashlib.sha256).hex()


def expire_imported(tx: Transaction, key: KmsKey) -> KmsKey:
    """Destroy an EXTERNAL key's material; it waits for a new import (inside a transaction)."""
    tx.delete_materials(key.key_id)
    state = key.state if key.state is KeyState.PENDING_DELETION else KeyState.PENDING_IMPORT
    return key.evolve(state=state, current_version=0, valid_to=None, expiration_model=None)
