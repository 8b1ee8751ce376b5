"""Algorithm suites of the AWS Encryption SDK message format that kmsgate reads and writes.

A suite fixes the message format version, the data-key length, the AES-GCM
parameters, the key-derivation hash, key commitment and the optional ECDSA
signature. kmsgate writes 0x0478 (default) and 0x0578; it also reads the
non-committing message-format-1 suites 0x0178 and 0x0378, but only when the
decrypt policy explicitly allows non-committing suites, because without key
commitment one ciphertext can be made to decrypt to two plaintexts under two
data keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes


@dataclass(frozen=True, slots=True)
class AlgorithmSuite:
    """One algorithm suite; all lengths in bytes."""

    suite_id: int
    message_format_version: int
    kdf_hash: type[hashes.HashAlgorithm]
    committing: bool
    signed: bool
    data_key_length: int = 32
    iv_length: int = 12
    tag_length: int = 16
    commitment_length: int = 32  # 0 for non-committing suites
    signature_length: int = 103  # the fixed DER length writers aim for (P-384)

    @property
    def id_bytes(self) -> bytes:
        return self.suite_id.to_bytes(2, "big")

    @property
    def message_id_length(self) -> int:
        return 32 if self.message_format_version == 2 else 16


# AES-256-GCM, HKDF-SHA512 key derivation and key commitment, no signature.
AES_256_GCM_HKDF_SHA512_COMMIT_KEY = AlgorithmSuite(0x0478, 2, hashes.SHA512, committing=True, signed=False)
# As above plus an ECDSA P-384 / SHA-384 signature footer.
AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 = AlgorithmSuite(
    0x0578, 2, hashes.SHA512, committing=True, signed=True
)
# Message format 1, no key commitment: read only when explicitly allowed.
AES_256_GCM_IV12_TAG16_HKDF_SHA256 = AlgorithmSuite(
    0x0178, 1, hashes.SHA256, committing=False, signed=False, commitment_length=0
)
AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384 = AlgorithmSuite(
    0x0378, 1, hashes.SHA384, committing=False, signed=True, commitment_length=0
)

DEFAULT_SUITE = AES_256_GCM_HKDF_SHA512_COMMIT_KEY

SUITES: dict[int, AlgorithmSuite] = {
    s.suite_id: s
    for s in (
        AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
        AES_256_GCM_IV12_TAG16_HKDF_SHA256,
        AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
    )
}

# Suites kmsgate writes; the rest are read-only.
ENCRYPT_SUITES = frozenset({0x0478, 0x0578})


def suite_by_id(suite_id: int) -> AlgorithmSuite | None:
    """The suite with this id, or ``None`` when kmsgate does not know it."""
    return SUITES.get(suite_id)
