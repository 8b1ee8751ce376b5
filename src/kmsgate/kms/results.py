"""Results of the data-plane operations, as the service returns them (snake_case, bytes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DataKeyResult:
    """A data key: ``plaintext`` is ``None`` for GenerateDataKeyWithoutPlaintext."""

    key_id: str  # the CMK's key ARN
    plaintext: bytes | None
    ciphertext_blob: bytes
    key_material_id: str

    def __repr__(self) -> str:  # never print the data key
        return f"DataKeyResult(key_id={self.key_id!r}, key_material_id={self.key_material_id!r})"


@dataclass(frozen=True, slots=True)
class DataKeyPairResult:
    """A data key pair: ``private_key_plaintext`` is ``None`` for GenerateDataKeyPairWithoutPlaintext."""

    key_id: str
    key_pair_spec: str
    public_key: bytes  # DER SubjectPublicKeyInfo
    private_key_plaintext: bytes | None  # PKCS#8 DER
    private_key_ciphertext_blob: bytes
    key_material_id: str

    def __repr__(self) -> str:  # never print the private key
        return f"DataKeyPairResult(key_id={self.key_id!r}, key_pair_spec={self.key_pair_spec!r})"


@dataclass(frozen=True, slots=True)
class EncryptResult:
    key_id: str
    ciphertext_blob: bytes
    encryption_algorithm: str
    key_material_id: str


@dataclass(frozen=True, slots=True)
class DecryptResult:
    key_id: str
    plaintext: bytes
    encryption_algorithm: str
    key_material_id: str

    def __repr__(self) -> str:
        return f"DecryptResult(key_id={self.key_id!r}, key_material_id={self.key_material_id!r})"


@dataclass(frozen=True, slots=True)
class ReEncryptResult:
    key_id: str
    ciphertext_blob: bytes
    source_key_id: str
    source_encryption_algorithm: str
    destination_encryption_algorithm: str
    source_key_material_id: str
    destination_key_material_id: str


@dataclass(frozen=True, slots=True)
class PublicKeyResult:
    """GetPublicKey: the DER SubjectPublicKeyInfo and what the key may do with it."""

    key_id: str
    public_key: bytes
    key_spec: str
    customer_master_key_spec: str | None
    key_usage: str
    encryption_algorithms: list[str] | None
    signing_algorithms: list[str] | None
    key_agreement_algorithms: list[str] | None
    encapsulation_algorithms: list[str] | None = None


@dataclass(frozen=True, slots=True)
class SignResult:
    key_id: str
    signature: bytes
    signing_algorithm: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    key_id: str
    signature_valid: bool
    signing_algorithm: str


@dataclass(frozen=True, slots=True)
class MacResult:
    key_id: str
    mac: bytes
    mac_algorithm: str


@dataclass(frozen=True, slots=True)
class VerifyMacResult:
    key_id: str
    mac_valid: bool
    mac_algorithm: str


@dataclass(frozen=True, slots=True)
class SharedSecretResult:
    """DeriveSharedSecret: the raw ECDH shared secret."""

    key_id: str
    shared_secret: bytes
    key_agreement_algorithm: str
    key_origin: str

    def __repr__(self) -> str:  # never print the shared secret
        return f"SharedSecretResult(key_id={self.key_id!r}, key_agreement_algorithm={self.key_agreement_algorithm!r})"


@dataclass(frozen=True, slots=True)
class EncapsulateResult:
    """Encapsulate: a fresh ML-KEM shared secret and its encapsulated form."""

    key_id: str
    shared_secret: bytes
    shared_secret_ciphertext_blob: bytes
    encapsulation_algorithm: str

    def __repr__(self) -> str:  # never print the shared secret
        return f"EncapsulateResult(key_id={self.key_id!r}, encapsulation_algorithm={self.encapsulation_algorithm!r})"


@dataclass(frozen=True, slots=True)
class DecapsulateResult:
    """Decapsulate: the ML-KEM shared secret recovered from its encapsulated form."""

    key_id: str
    shared_secret: bytes
    encapsulation_algorithm: str

    def __repr__(self) -> str:  # never print the shared secret
        return f"DecapsulateResult(key_id={self.key_id!r}, encapsulation_algorithm={self.encapsulation_algorithm!r})"
