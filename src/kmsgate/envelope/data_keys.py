"""Value objects for data keys: the encrypted copies a header carries and the materials a message uses."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from .context import serialize_context
from .suites import AlgorithmSuite

KMS_PROVIDER_ID = "aws-kms"


@dataclass(frozen=True, slots=True)
class EncryptedDataKey:
    """One wrapped copy of the data key, as the header stores it.

    For KMS: ``provider_id`` is ``aws-kms``, ``provider_info`` the UTF-8 key ARN of
    the CMK and ``ciphertext`` the KMS ``CiphertextBlob``.
    """

    provider_id: str
    provider_info: bytes
    ciphertext: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class EncryptionMaterials:
    """Everything one message needs to be encrypted.

    ``encryption_context`` is the full context the header carries: the caller's
    pairs plus, for signing suites, ``aws-crypto-public-key``. ``data_key`` is the
    plaintext data key (secret; never logged or printed).
    """

    suite: AlgorithmSuite
    data_key: bytes = field(repr=False)
    encrypted_data_keys: tuple[EncryptedDataKey, ...]
    encryption_context: Mapping[str, str]
    signing_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    header_fields: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Serialized once per materials, reused by every message: the header's AAD
        # length, encryption context, EDK count and EDKs (layout in header.py).
        object.__setattr__(self, "header_fields", serialize_header_fields(
            serialize_context(self.encryption_context), self.encrypted_data_keys))


def serialize_header_fields(context_bytes: bytes, encrypted_data_keys: tuple[EncryptedDataKey, ...]) -> bytes:
    """AAD length, encryption context, EDK count and EDKs, as the header lays them out."""
    if not encrypted_data_keys:
        raise ValueError("a message needs at least one encrypted data key")
    out = bytearray(struct.pack(">H", len(context_bytes)) + context_bytes)
    out += struct.pack(">H", len(encrypted_data_keys))
    for edk in encrypted_data_keys:
        for part in (edk.provider_id.encode("utf-8"), edk.provider_info, edk.ciphertext):
            if len(part) > 0xFFFF:
                raise ValueError("encrypted data key field exceeds 65535 bytes")
            out += struct.pack(">H", len(part)) + part
    return bytes(out)
