"""KMS resources as value objects: ``KmsKey`` (metadata) and ``KeyMaterial`` (secret bytes, versioned)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any


class KeyState(str, enum.Enum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_IMPORT = "PendingImport"


ORIGIN_AWS_KMS = "AWS_KMS"
ORIGIN_EXTERNAL = "EXTERNAL"
SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
KEY_MATERIAL_EXPIRES = "KEY_MATERIAL_EXPIRES"
KEY_MATERIAL_DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"
KEY_MATERIAL_BYTES = 32  # AES-256


@dataclass(frozen=True, slots=True)
class KmsKey:
    """A customer master key's metadata. Times are POSIX seconds (float)."""

    key_id: str
    arn: str
    account_id: str
    creation_date: float
    description: str = ""
    key_usage: str = "ENCRYPT_DECRYPT"
    key_spec: str = SYMMETRIC_DEFAULT
    origin: str = ORIGIN_AWS_KMS
    state: KeyState = KeyState.ENABLED
    # The state to return to when a pending deletion is cancelled is always Disabled (as AWS does);
    # ``enabled_before_import`` remembers whether a key that lost imported material was enabled.
    deletion_date: float | None = None
    pending_window_days: int | None = None
    valid_to: float | None = None
    expiration_model: str | None = None
    rotation_enabled: bool = False
    rotation_period_days: int | None = None
    next_rotation_date: float | None = None
    on_demand_rotation_start: float | None = None
    current_version: int = 0  # 0: no material yet (EXTERNAL keys before import)
    # An EXTERNAL key is bound for life to the first material imported into it, even after that
    # material is deleted or expires: its KeyMaterialId and a one-way commitment to the bytes,
    # HMAC-SHA256(key=material, "kmsgate-import-commitment-v1"), which reveals nothing about them.
    imported_material_id: str | None = None
    imported_commitment: str | None = None
    policy: str = ""
    last_used_date: float | None = None
    last_used_operation: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.state is KeyState.ENABLED

    def evolve(self, **changes: Any) -> KmsKey:
        return replace(self, **changes)

    def to_record(self) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["state"] = self.state.value
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> KmsKey:
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        known["state"] = KeyState(known["state"])
        return cls(**known)


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """One version of a key's secret material, clear in memory only: ``secret`` is the 32-byte AES key, the
    HMAC key, or the PKCS#8 DER private key, as the key's spec has it (``kmsgate.kms.keyspecs``)."""

    key_id: str
    version: int
    material_id: str  # 64 lowercase hex digits, as AWS reports KeyMaterialId
    secret: bytes = field(repr=False)
    created: float
    rotation_type: str | None  # None for the first material, else AUTOMATIC or ON_DEMAND
    origin: str = ORIGIN_AWS_KMS
