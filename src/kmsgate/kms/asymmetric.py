"""The cryptography of asymmetric KMS keys: public keys, Sign/Verify, RSA-OAEP Encrypt/Decrypt.

Pure: takes a key spec, the private key (PKCS#8 DER, as ``kmsgate.kms.keyspecs`` keeps it) and
bytes; returns bytes. Signatures are what AWS KMS returns: DER-encoded ECDSA ``(r, s)``; RSA
PSS with a salt as long as the digest, or PKCS #1 v1.5; 64-byte Ed25519 and Ed25519ph; ML-DSA
(FIPS 204, empty context).

``MessageType``:

- ``RAW``: the message (at most ``MAX_RAW_MESSAGE_BYTES``) is hashed by the algorithm.
- ``DIGEST``: the message is the digest of the algorithm's hash and must be exactly its length
  (SHA-512's 64 bytes for Ed25519ph); pure Ed25519 and ML-DSA take no digest.
- ``EXTERNAL_MU``: ML-DSA only, the 64-byte representative μ of FIPS 204 section 6.2.

Loaded private keys are kept in a bounded cache keyed by their DER bytes, which live in memory
anyway; they were authenticated by the root key when unwrapped, so RSA's slow key check is
skipped on load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from kmsgate.core.errors import InvalidCiphertextError, InvalidKeyUsageError, ValidationError
from kmsgate.kms import ed25519ph, kem
from kmsgate.kms.keyspecs import KeySpecInfo

MAX_RAW_MESSAGE_BYTES = 4096
EXTERNAL_MU_BYTES = 64
INVALID_CIPHERTEXT_MESSAGE = "The ciphertext is invalid, or was not made under this key"
_CACHED_KEYS = 1024

RAW = "RAW"
DIGEST = "DIGEST"
EXTERNAL_MU = "EXTERNAL_MU"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"SHA_1": hashes.SHA1, "SHA_256": hashes.SHA256,
                                                  "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}


@dataclass(frozen=True, slots=True)
class _Algorithm:
    """How one signing algorithm signs: ``kind`` and its hash (``None`` for ML-DSA)."""

    kind: str  # "pss", "pkcs1", "ecdsa", "ed25519", "ed25519ph", "ml_dsa"
    hash_name: str | None

    def hash(self) -> hashes.HashAlgorithm:
        return _HASHES[self.hash_name or "SHA_512"]()


def _algorithm(name: str) -> _Algorithm:
    if name.startswith("RSASSA_PSS_"):
        return _Algorithm("pss", name.removeprefix("RSASSA_PSS_"))
    if name.startswith("RSASSA_PKCS1_V1_5_"):
        return _Algorithm("pkcs1", name.removeprefix("RSASSA_PKCS1_V1_5_"))
    if name.startswith("ECDSA_"):
        return _Algorithm("ecdsa", name.removeprefix("ECDSA_"))
    if name == "ED25519_SHA_512":
        return _Algorithm("ed25519", "SHA_512")
    if name == "ED25519_PH_SHA_512":
        return _Algorithm("ed25519ph", "SHA_512")
    return _Algorithm("ml_dsa", None)


@lru_cache(maxsize=_CACHED_KEYS)
def load_private_key(private_der: bytes) -> Any:
    """The private key object of kept material (cached)."""
    return serialization.load_der_private_key(private_der, password=None, unsafe_skip_rsa_key_validation=True)


@lru_cache(maxsize=_CACHED_KEYS)
def public_key_der(private_der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a private key, as GetPublicKey returns it (cached)."""
    if kem.spec_of_private_key(private_der) is not None:
        return kem.public_key_der(private_der)
    public = load_private_key(private_der).public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[no-any-return]


def slow_private_operation(spec: KeySpecInfo) -> bool:
    """Whether a private-key operation of this spec is slow enough to run off the event loop.

    An RSA private-key operation takes about 0.3 ms (RSA_2048) to several ms (RSA_4096) of CPU:
    run inline, a burst of them holds every other request behind it. ECDSA, EdDSA, ML-DSA and
    HMAC take tens of microseconds, less than handing work to a helper process costs.
    """
    return spec.family == "rsa"


def check_signing_algorithm(spec: KeySpecInfo, key_usage: str, signing_algorithm: str) -> None:
    """``InvalidKeyUsageException`` unless the key signs and offers ``signing_algorithm``."""
    if signing_algorithm not in spec.algorithms.get(key_usage, ()) or key_usage != "SIGN_VERIFY":
        raise InvalidKeyUsageError(
            f"The signing algorithm {signing_algorithm} is not valid for this key. "
            f"Supported algorithms: {list(spec.algorithms.get('SIGN_VERIFY', ()))}"
        )


def _message_input(algorithm: _Algorithm, signing_algorithm: str, message: bytes, message_type: str) -> bytes:
    """Check the message against its type; returns what the primitive signs (digest or message)."""
    if message_type == RAW:
        if len(message) > MAX_RAW_MESSAGE_BYTES:
            raise ValidationError(
                f"Message of MessageType RAW must be at most {MAX_RAW_MESSAGE_BYTES} bytes; sign a digest instead"
            )
        return message
    if message_type == EXTERNAL_MU:
        if algorithm.kind != "ml_dsa":
            raise ValidationError(f"MessageType EXTERNAL_MU is not valid for signing algorithm {signing_algorithm}")
        if len(message) != EXTERNAL_MU_BYTES:
            raise ValidationError(f"Message of MessageType EXTERNAL_MU must be {EXTERNAL_MU_BYTES} bytes")
        return message
    if algorithm.kind in ("ed25519", "ml_dsa"):
        raise ValidationError(f"MessageType DIGEST is not valid for signing algorithm {signing_algorithm}")
    if len(message) != algorithm.hash().digest_size:
        raise ValidationError(f"Digest is invalid length for algorithm {signing_algorithm}.")
    return message


def sign(private_der: bytes, signing_algorithm: str, message: bytes, message_type: str) -> bytes:
    """Sign ``message`` (of ``message_type``) with ``signing_algorithm``; the algorithm fits the key."""
    algorithm = _algorithm(signing_algorithm)
    data = _message_input(algorithm, signing_algorithm, message, message_type)
    key = load_private_key(private_der)
    prehashed = message_type == DIGEST
    if algorithm.kind in ("pss", "pkcs1"):
        return key.sign(data, _rsa_padding(algorithm), _hash_arg(algorithm, prehashed))  # type: ignore[no-any-return]
    if algorithm.kind == "ecdsa":
        return key.sign(data, ec.ECDSA(_hash_arg(algorithm, prehashed)))  # type: ignore[no-any-return]
    if algorithm.kind == "ed25519":
        return key.sign(data)  # type: ignore[no-any-return]
    if algorithm.kind == "ed25519ph":
        prehash = data if prehashed else hashlib.sha512(data).digest()
        return ed25519ph.sign(key.private_bytes_raw(), prehash)
    if message_type == EXTERNAL_MU:
        return key.sign_mu(data)  # type: ignore[no-any-return]
    return key.sign(data)  # type: ignore[no-any-return]


def verify(private_der: bytes, signing_algorithm: str, message: bytes, message_type: str, signature: bytes) -> bool:
    """Whether ``signature`` is valid for ``message`` under the key's public half."""
    algorithm = _algorithm(signing_algorithm)
    data = _message_input(algorithm, signing_algorithm, message, message_type)
    public = load_private_key(private_der).public_key()
    prehashed = message_type == DIGEST
    try:
        if algorithm.kind in ("pss", "pkcs1"):
            public.verify(signature, data, _rsa_padding(algorithm), _hash_arg(algorithm, prehashed))
        elif algorithm.kind == "ecdsa":
            public.verify(signature, data, ec.ECDSA(_hash_arg(algorithm, prehashed)))
        elif algorithm.kind == "ed25519":
            public.verify(signature, data)
        elif algorithm.kind == "ed25519ph":
            prehash = data if prehashed else hashlib.sha512(data).digest()
            return ed25519ph.verify(public.public_bytes_raw(), prehash, signature)
        elif message_type == EXTERNAL_MU:
            public.verify_mu(signature, data)
        else:
            public.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _rsa_padding(algorithm: _Algorithm) -> padding.AsymmetricPadding:
    if algorithm.kind == "pss":
        digest = algorithm.hash()
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def _hash_arg(algorithm: _Algorithm, prehashed: bool) -> Any:
    digest = algorithm.hash()
    return utils.Prehashed(digest) if prehashed else digest


# -- RSAES-OAEP ----------------------------------------------------------------------------


def _oaep(encryption_algorithm: str) -> tuple[padding.OAEP, int]:
    digest = _HASHES[encryption_algorithm.removeprefix("RSAES_OAEP_")]()
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None), digest.digest_size


def check_encryption_algorithm(spec: KeySpecInfo, key_usage: str, encryption_algorithm: str | None) -> str:
    """The algorithm an asymmetric Encrypt/Decrypt uses, or ``InvalidKeyUsageException``."""
    offered = spec.algorithms.get("ENCRYPT_DECRYPT", ()) if key_usage == "ENCRYPT_DECRYPT" else ()
    if encryption_algorithm not in offered:
        raise InvalidKeyUsageError(
            f"The encryption algorithm {encryption_algorithm or 'SYMMETRIC_DEFAULT'} is not valid for this key. "
            f"Supported algorithms: {list(offered)}"
        )
    return encryption_algorithm


def max_plaintext_bytes(spec: KeySpecInfo, encryption_algorithm: str) -> int:
    """RSAES-OAEP's limit, ``k - 2 * hLen - 2`` (RFC 8017): 190 bytes for RSA_2048 with SHA-256."""
    _, digest_bytes = _oaep(encryption_algorithm)
    return spec.rsa_bits // 8 - 2 * digest_bytes - 2


def encrypt(private_der: bytes, spec: KeySpecInfo, encryption_algorithm: str, plaintext: bytes) -> bytes:
    limit = max_plaintext_bytes(spec, encryption_algorithm)
    if len(plaintext) > limit:
        raise ValidationError(
            f"Plaintext is too long for {encryption_algorithm} with a {spec.name} key (at most {limit} bytes)"
        )
    public: rsa.RSAPublicKey = load_private_key(private_der).public_key()
    return public.encrypt(plaintext, _oaep(encryption_algorithm)[0])


def decrypt(private_der: bytes, encryption_algorithm: str, ciphertext: bytes) -> bytes:
    """RSAES-OAEP decryption; every failure is the one ``InvalidCiphertextException``."""
    key: rsa.RSAPrivateKey = load_private_key(private_der)
    try:
        return key.decrypt(ciphertext, _oaep(encryption_algorithm)[0])
    except ValueError as exc:
        raise InvalidCiphertextError(INVALID_CIPHERTEXT_MESSAGE) from exc

