"""Key rotation: automatic on a schedule, on demand, and the list of rotations.

Rotation adds a new version of key material; every earlier version stays, so ciphertexts made
under it still decrypt, while new encryptions use the newest.
"""

from __future__ import annotations

import os
from typing import Any

from kmsgate.core.errors import LimitExceededError, UnsupportedOperationError
from kmsgate.core.principal import Caller
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.model import KEY_MATERIAL_BYTES, ORIGIN_EXTERNAL, SYMMETRIC_DEFAULT, KeyMaterial, KeyState, KmsKey
from kmsgate.kms.ops_keys import DAY_SECONDS, new_material_id
from kmsgate.kms.pagination import paginate
from kmsgate.kms.transaction import Transaction

DEFAULT_ROTATION_PERIOD_DAYS = 365
MAX_ON_DEMAND_ROTATIONS = 25  # AWS's lifetime quota per key
AUTOMATIC = "AUTOMATIC"
ON_DEMAND = "ON_DEMAND"


def add_material_version(tx: Transaction, key: KmsKey, rotation_type: str, now: float) -> KmsKey:
    """Write a new random material version and make it current (inside a transaction)."""
    version = key.current_version + 1
    tx.put_material(
        KeyMaterial(
            key_id=key.key_id,
            version=version,
            material_id=new_material_id(),
            secret=os.urandom(KEY_MATERIAL_BYTES),
            created=now,
            rotation_type=rotation_type,
        )
    )
    return key.evolve(current_version=version)


def _require_rotation_support(key: KmsKey) -> None:
    """Only symmetric encryption keys rotate (as in AWS); kmsgate does not rotate imported material."""
    if key.key_spec != SYMMETRIC_DEFAULT:
        raise UnsupportedOperationError(
            f"{key.arn} has KeySpec {key.key_spec}; only SYMMETRIC_DEFAULT keys support key rotation"
        )
    if key.origin == ORIGIN_EXTERNAL:
        raise UnsupportedOperationError(f"{key.arn} has imported key material; kmsgate does not rotate it")


class RotationOperations(ServiceBase):
    def _rotatable(self, key: KmsKey) -> None:
        _require_rotation_support(key)
        if key.state is KeyState.DISABLED:
            self._require_usable(key)
        self._require_state(key, KeyState.ENABLED)

    async def enable_key_rotation(
        self, *, caller: Caller, key_id: str, rotation_period_in_days: int | None = None
    ) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:EnableKeyRotation", key)
        self._rotatable(key)
        period = rotation_period_in_days or DEFAULT_ROTATION_PERIOD_DAYS
        next_date = self._clock.now() + period * DAY_SECONDS

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)
            self._rotatable(current)
            tx.put_key(
                current.evolve(rotation_enabled=True, rotation_period_days=period, next_rotation_date=next_date)
            )

        await self._mutate(change)
        return {}

    async def disable_key_rotation(self, *, caller: Caller, key_id: str) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:DisableKeyRotation", key)
        self._rotatable(key)

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)
            self._rotatable(current)
            tx.put_key(current.evolve(rotation_enabled=False, next_rotation_date=None))

        await self._mutate(change)
        return {}

    async def get_key_rotation_status(self, *, caller: Caller, key_id: str) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:GetKeyRotationStatus", key)
        _require_rotation_support(key)
        status: dict[str, Any] = {"key_rotation_enabled": key.rotation_enabled, "key_id": key.arn}
        if key.rotation_enabled:
            status["rotation_period_in_days"] = key.rotation_period_days
            status["next_rotation_date"] = key.next_rotation_date
        if key.on_demand_rotation_start is not None:
            status["on_demand_rotation_start_date"] = key.on_demand_rotation_start
        return status

    async def rotate_key_on_demand(self, *, caller: Caller, key_id: str) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:RotateKeyOnDemand", key)
        self._rotatable(key)
        now = self._clock.now()

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)
            self._rotatable(current)
            on_demand = sum(
                1
                for version in range(2, current.current_version + 1)
                if (m := tx.get_material(current.key_id, version)) is not None and m.rotation_type == ON_DEMAND
            )
            if on_demand >= MAX_ON_DEMAND_ROTATIONS:
                raise LimitExceededError(
                    f"{current.arn} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations"
                )
            tx.put_key(add_material_version(tx, current, ON_DEMAND, now).evolve(on_demand_rotation_start=None))

        await self._mutate(change)
        return {"key_id": key.arn}

    async def list_key_rotations(
        self,
        *,
        caller: Caller,
        key_id: str,
        include_key_material: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:ListKeyRotations", key)
        if key.key_spec != SYMMETRIC_DEFAULT:
            _require_rotation_support(key)
        if key.origin == ORIGIN_EXTERNAL and include_key_material != "ALL_KEY_MATERIAL":
            raise UnsupportedOperationError(f"{key.arn} has imported key material; kmsgate does not rotate it")
        versions = [
            material
            for (owner, _version), material in self._snapshot.materials.items()
            if owner == key.key_id and (include_key_material == "ALL_KEY_MATERIAL" or material.rotation_type)
        ]
        page, more = paginate(versions, lambda m: f"{m.version:010d}", limit, marker)
        rotations = []
        for material in page:
            entry: dict[str, Any] = {"key_id": key.arn, "key_material_id": material.material_id}
            if material.rotation_type:
                entry["rotation_date"] = material.created
                entry["rotation_type"] = material.rotation_type
            entry["key_material_state"] = "CURRENT" if material.version == key.current_version else "NON_CURRENT"
            rotations.append(entry)
        return {"rotations": rotations, **more}
