"""Value objects for data keys: the encrypted copies a header carries and the materials a message uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

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
