"""Key specs: what each ``KeySpec`` is, which ``KeyUsage`` it allows, and with which algorithms.

One ``KeySpecInfo`` per spec, as AWS's key spec tables list them. Everything that depends on a
key's spec (CreateKey's checks, DescribeKey's algorithm lists, which operation a key answers,
how its material is made and which imported material fits it) reads this table, so a new spec
(SM2, say) is one more entry plus its cryptography (``kmsgate.kms.asymmetric``, ``kmsgate.kms.kem``).

Material, as it is kept (wrapped under the root key, like symmetric material):

- ``SYMMETRIC_DEFAULT``: 32 random bytes (AES-256).
- ``HMAC_*``: the raw HMAC key (random, the digest's output size when generated; AWS's ranges
  when imported).
- asymmetric specs: the private key as PKCS#8 DER (ML-DSA in its 32-byte seed form, ML-KEM in
  its 64-byte seed form, see ``kmsgate.kms.kem``).

Pure: no I/O. Key generation can take long (RSA 4096): callers run it off the event loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from kmsgate.core.errors import IncorrectKeyMaterialError, UnsupportedOperationError, ValidationError
from kmsgate.kms import kem
from kmsgate.kms.model import KEY_MATERIAL_BYTES

ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
SIGN_VERIFY = "SIGN_VERIFY"
GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
KEY_AGREEMENT = "KEY_AGREEMENT"
ENCAPSULATE_DECAPSULATE = "ENCAPSULATE_DECAPSULATE"
SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"

RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
RSA_SIGNING = (
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
)
# The specs AWS documents only for its China Regions: refused, not silently made something else.
UNSUPPORTED_SPECS = frozenset({"SM2"})


@dataclass(frozen=True, slots=True)
class KeySpecInfo:
    """One key spec. ``algorithms`` maps each allowed KeyUsage to the algorithms it offers."""

    name: str
    family: str  # "symmetric", "hmac", "rsa", "ecc", "ed25519", "ml_dsa", "ml_kem"
    algorithms: Mapping[str, tuple[str, ...]]
    rsa_bits: int = 0
    hmac_bytes: tuple[int, int, int] = (0, 0, 0)  # generated length, importable min and max
    customer_master_key_spec: bool = True  # whether the deprecated CustomerMasterKeySpec names it

    @property
    def asymmetric(self) -> bool:
        return self.family not in ("symmetric", "hmac")

    @property
    def usages(self) -> tuple[str, ...]:
        return tuple(self.algorithms)

    def metadata(self, key_usage: str) -> dict[str, list[str]]:
        """DescribeKey's algorithm members for a key of this spec and usage (snake_case)."""
        algorithms = list(self.algorithms.get(key_usage, ()))
        field = {
            ENCRYPT_DECRYPT: "encryption_algorithms",
            SIGN_VERIFY: "signing_algorithms",
            GENERATE_VERIFY_MAC: "mac_algorithms",
            KEY_AGREEMENT: "key_agreement_algorithms",
            ENCAPSULATE_DECAPSULATE: "encapsulation_algorithms",
        }[key_usage]
        return {field: algorithms}


def _ecc(name: str, signing: str, agreement: bool) -> KeySpecInfo:
    algorithms: dict[str, tuple[str, ...]] = {SIGN_VERIFY: (signing,)}
    if agreement:
        algorithms[KEY_AGREEMENT] = ("ECDH",)
    return KeySpecInfo(name, "ecc", algorithms)


def _hmac(name: str, algorithm: str, sizes: tuple[int, int, int]) -> KeySpecInfo:
    return KeySpecInfo(name, "hmac", {GENERATE_VERIFY_MAC: (algorithm,)}, hmac_bytes=sizes)


def _rsa(bits: int) -> KeySpecInfo:
    return KeySpecInfo(f"RSA_{bits}", "rsa", {ENCRYPT_DECRYPT: RSA_ENCRYPTION, SIGN_VERIFY: RSA_SIGNING}, rsa_bits=bits)


def _ml_dsa(level: int) -> KeySpecInfo:
    return KeySpecInfo(
        f"ML_DSA_{level}", "ml_dsa", {SIGN_VERIFY: ("ML_DSA_SHAKE_256",)}, customer_master_key_spec=False
    )


def _ml_kem(level: int) -> KeySpecInfo:
    return KeySpecInfo(
        f"ML_KEM_{level}", "ml_kem", {ENCAPSULATE_DECAPSULATE: (kem.ML_KEM,)}, customer_master_key_spec=False
    )


KEY_SPECS: dict[str, KeySpecInfo] = {
    spec.name: spec
    for spec in (
        KeySpecInfo(SYMMETRIC_DEFAULT, "symmetric", {ENCRYPT_DECRYPT: (SYMMETRIC_DEFAULT,)}),
        _rsa(2048),
        _rsa(3072),
        _rsa(4096),
        _ecc("ECC_NIST_P256", "ECDSA_SHA_256", agreement=True),
        _ecc("ECC_NIST_P384", "ECDSA_SHA_384", agreement=True),
        _ecc("ECC_NIST_P521", "ECDSA_SHA_512", agreement=True),
        _ecc("ECC_SECG_P256K1", "ECDSA_SHA_256", agreement=False),
        KeySpecInfo(
            "ECC_NIST_EDWARDS25519",
            "ed25519",
            {SIGN_VERIFY: ("ED25519_SHA_512", "ED25519_PH_SHA_512")},
            customer_master_key_spec=False,
        ),
        # Generated at the digest's output size; imported from AWS's documented ranges.
        _hmac("HMAC_224", "HMAC_SHA_224", (28, 28, 64)),
        _hmac("HMAC_256", "HMAC_SHA_256", (32, 32, 64)),
        _hmac("HMAC_384", "HMAC_SHA_384", (48, 48, 128)),
        _hmac("HMAC_512", "HMAC_SHA_512", (64, 64, 128)),
        _ml_dsa(44),
        _ml_dsa(65),
        _ml_dsa(87),
        _ml_kem(512),
        _ml_kem(768),
        _ml_kem(1024),
    )
}

_CURVES: dict[str, ec.EllipticCurve] = {
    "ECC_NIST_P256": ec.SECP256R1(),
    "ECC_NIST_P384": ec.SECP384R1(),
    "ECC_NIST_P521": ec.SECP521R1(),
    "ECC_SECG_P256K1": ec.SECP256K1(),
}
_ML_DSA_KEYS: dict[str, type[mldsa.MLDSA44PrivateKey] | type[mldsa.MLDSA65PrivateKey] | type[mldsa.MLDSA87PrivateKey]] = {
    "ML_DSA_44": mldsa.MLDSA44PrivateKey,
    "ML_DSA_65": mldsa.MLDSA65PrivateKey,
    "ML_DSA_87": mldsa.MLDSA87PrivateKey,
}


def key_spec(name: str) -> KeySpecInfo:
    """The spec named ``name``: ``UnsupportedOperationException`` for SM2 (China Regions only)."""
    if name in UNSUPPORTED_SPECS:
        raise UnsupportedOperationError(f"KeySpec {name} is not supported by kmsgate")
    spec = KEY_SPECS.get(name)
    if spec is None:
        raise ValidationError(
            f"1 validation error detected: Value '{name}' at 'keySpec' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(KEY_SPECS)}]"
        )
    return spec


def check_usage(spec: KeySpecInfo, key_usage: str) -> None:
    """``ValidationException`` for a KeyUsage the spec does not allow, worded as AWS words it."""
    if key_usage not in spec.algorithms:
        raise ValidationError(f"KeyUsage {key_usage} is not compatible with KeySpec {spec.name}")


def generate_material(spec: KeySpecInfo) -> bytes:
    """New key material for ``spec`` (see the module docstring for its form). Slow for RSA 4096."""
    if spec.family == "symmetric":
        return os.urandom(KEY_MATERIAL_BYTES)
    if spec.family == "hmac":
        return os.urandom(spec.hmac_bytes[0])
    if spec.family == "ml_kem":
        return kem.generate(spec.name)
    private_key: PrivateKeyTypes
    if spec.family == "rsa":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=spec.rsa_bits)
    elif spec.family == "ecc":
        private_key = ec.generate_private_key(_CURVES[spec.name])
    elif spec.family == "ed25519":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        private_key = _ML_DSA_KEYS[spec.name].generate()
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _looks_like_pkcs8(der: bytes) -> bool:
    """Whether ``der`` opens as PrivateKeyInfo (RFC 5208): SEQUENCE { INTEGER version, SEQUENCE algorithm, ...}.

    The parser also reads the older PKCS #1 and SEC 1 forms, whose version INTEGER is followed by
    an INTEGER or an OCTET STRING instead of the AlgorithmIdentifier SEQUENCE; AWS takes PKCS#8 only.
    """
    if len(der) < 2 or der[0] != 0x30:
        return False
    length_octets = der[1] - 0x80 if der[1] & 0x80 else 0
    offset = 2 + length_octets
    return der[offset : offset + 3] in (b"\x02\x01\x00", b"\x02\x01\x01") and der[offset + 3 : offset + 4] == b"\x30"


# Grant operations a key of each kind supports (besides CreateGrant, RetireGrant, DescribeKey).
_SYMMETRIC_GRANT_OPERATIONS = frozenset({
    "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
})
_GRANT_OPERATIONS_BY_USAGE = {
    ENCRYPT_DECRYPT: frozenset({"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"}),
    SIGN_VERIFY: frozenset({"Sign", "Verify", "GetPublicKey"}),
    GENERATE_VERIFY_MAC: frozenset({"GenerateMac", "VerifyMac"}),
    KEY_AGREEMENT: frozenset({"DeriveSharedSecret", "GetPublicKey"}),
    ENCAPSULATE_DECAPSULATE: frozenset({"Encapsulate", "Decapsulate", "GetPublicKey"}),
}
_ANY_KEY_GRANT_OPERATIONS = frozenset({"CreateGrant", "RetireGrant", "DescribeKey"})


def check_grant(spec: KeySpecInfo, key_usage: str, operations: Iterable[str], *, constrained: bool) -> None:
    """CreateGrant's ValidationException for operations the key does not support, or an encryption
    context constraint on a key whose operations take no encryption context (asymmetric, HMAC)."""
    if spec.family == "symmetric":
        supported = _SYMMETRIC_GRANT_OPERATIONS
    else:
        supported = _GRANT_OPERATIONS_BY_USAGE[key_usage]
    unsupported = sorted(set(operations) - supported - _ANY_KEY_GRANT_OPERATIONS)
    if unsupported:
        raise ValidationError(
            f"Grant operations {unsupported} are not supported by a KMS key with KeySpec {spec.name} "
            f"and KeyUsage {key_usage}"
        )
    if constrained and spec.family != "symmetric":
        raise ValidationError(
            f"Encryption context grant constraints cannot be used with a KMS key with KeySpec {spec.name}"
        )


def check_imported_material(spec: KeySpecInfo, material: bytes) -> bytes:
    """The material to keep for ``spec`` from imported bytes, or ``IncorrectKeyMaterialException``.

    HMAC keys take raw key bytes in AWS's length range; asymmetric keys a PKCS#8 DER private key
    of exactly the spec's type and size (re-encoded, so what is kept is always canonical); ML-KEM
    keys the seed-only PKCS#8 form GenerateDataKeyPair returns, which is canonical already.
    """
    if spec.family == "symmetric":
        if len(material) != KEY_MATERIAL_BYTES:
            raise IncorrectKeyMaterialError(
                f"Key material for a SYMMETRIC_DEFAULT key must be {KEY_MATERIAL_BYTES} bytes"
            )
        return material
    if spec.family == "hmac":
        _, low, high = spec.hmac_bytes
        if not low <= len(material) <= high:
            raise IncorrectKeyMaterialError(
                f"Key material for a {spec.name} key must be {low} to {high} bytes"
            )
        return material
    if spec.family == "ml_kem":
        return kem.check_imported_private_key(spec.name, material)
    wrong = IncorrectKeyMaterialError(f"The key material is not a PKCS#8 DER private key of KeySpec {spec.name}")
    if not _looks_like_pkcs8(material):
        raise wrong
    try:
        private_key = serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError) as exc:
        raise wrong from exc
    if spec.family == "rsa":
        fits = isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == spec.rsa_bits
    elif spec.family == "ecc":
        fits = isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name == _CURVES[spec.name].name
    elif spec.family == "ed25519":
        fits = isinstance(private_key, ed25519.Ed25519PrivateKey)
    else:
        fits = isinstance(private_key, _ML_DSA_KEYS[spec.name])
    if not fits:
        raise wrong
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
