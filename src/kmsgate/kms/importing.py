"""Customer-provided key material: wrapping key pairs, import tokens, and unwrapping.

An import token is self-contained and sealed by the root key (``RootKey.seal_token``), so the
service keeps no state between GetParametersForImport and ImportKeyMaterial. Sealed payload::

    JSON {"k": key id, "a": wrapping algorithm, "s": wrapping key spec,
          "e": expiry (POSIX seconds), "p": base64 PKCS#8 DER of the RSA private key}

with associated data ``"kmsgate-import-token-v1" || key id``: a token minted for one key fails
authentication when presented for another, and a forged or altered token never opens.

Wrapping algorithms (as AWS documents them):
- ``RSAES_OAEP_SHA_1`` / ``RSAES_OAEP_SHA_256``: the material is RSA-OAEP encrypted directly.
- ``RSA_AES_KEY_WRAP_SHA_256``: an ephemeral AES-256 key RSA-OAEP(SHA-256) encrypted, followed by
  the material wrapped under that key with AES Key Wrap with Padding (RFC 5649).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from kmsgate.core.errors import (
    ExpiredImportTokenError,
    InvalidCiphertextError,
    InvalidImportTokenError,
    ValidationError,
)
from kmsgate.kms.rootkey import RootKey, RootKeyError

IMPORT_TOKEN_LIFETIME_SECONDS = 24 * 3600
WRAPPING_KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
WRAPPING_ALGORITHMS = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256")
_TOKEN_AD = b"kmsgate-import-token-v1"


@dataclass(frozen=True, slots=True)
class ImportParameters:
    public_key_der: bytes
    import_token: bytes
    valid_to: float


def create_parameters(
    root_key: RootKey, key_id: str, wrapping_algorithm: str, wrapping_key_spec: str, now: float
) -> ImportParameters:
    """Generate a wrapping key pair and seal its private half into an import token (slow: RSA keygen)."""
    if wrapping_algorithm not in WRAPPING_ALGORITHMS:
        raise ValidationError(f"Unsupported wrapping algorithm {wrapping_algorithm}")
    if wrapping_key_spec not in WRAPPING_KEY_BITS:
        raise ValidationError(f"Unsupported wrapping key spec {wrapping_key_spec}")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=WRAPPING_KEY_BITS[wrapping_key_spec])
    private_der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    valid_to = now + IMPORT_TOKEN_LIFETIME_SECONDS
    payload = orjson.dumps(
        {
            "k": key_id,
            "a": wrapping_algorithm,
            "s": wrapping_key_spec,
            "e": valid_to,
            "p": base64.b64encode(private_der).decode("ascii"),
        }
    )
    token = root_key.seal_token(payload, _TOKEN_AD + key_id.encode("ascii"))
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ImportParameters(public_key_der=public_der, import_token=token, valid_to=valid_to)


def unwrap_material(root_key: RootKey, key_id: str, import_token: bytes, encrypted_material: bytes, now: float) -> bytes:
    """Open the token, check it is for ``key_id`` and unexpired, and unwrap the key material."""
    try:
        payload = orjson.loads(root_key.open_token(import_token, _TOKEN_AD + key_id.encode("ascii")))
        algorithm = payload["a"]
        expires = float(payload["e"])
        private_key = serialization.load_der_private_key(base64.b64decode(payload["p"]), password=None)
    except (RootKeyError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidImportTokenError("The import token is invalid for this key") from exc
    if payload.get("k") != key_id or not isinstance(private_key, rsa.RSAPrivateKey):
        raise InvalidImportTokenError("The import token is invalid for this key")
    if now > expires:
        raise ExpiredImportTokenError("The import token has expired; call GetParametersForImport again")
    try:
        return _unwrap(private_key, algorithm, encrypted_material)
    except (ValueError, InvalidUnwrap) as exc:
        raise InvalidCiphertextError(
            "The encrypted key material could not be decrypted with the wrapping key of this import token"
        ) from exc


def _oaep(digest: hashes.HashAlgorithm) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)


def _unwrap(private_key: rsa.RSAPrivateKey, algorithm: str, encrypted: bytes) -> bytes:
    if algorithm == "RSAES_OAEP_SHA_1":
        return private_key.decrypt(encrypted, _oaep(hashes.SHA1()))
    if algorithm == "RSAES_OAEP_SHA_256":
        return private_key.decrypt(encrypted, _oaep(hashes.SHA256()))
    modulus_bytes = private_key.key_size // 8
    if len(encrypted) <= modulus_bytes:
        raise ValueError("wrapped material too short")
    aes_key = private_key.decrypt(encrypted[:modulus_bytes], _oaep(hashes.SHA256()))
    return aes_key_unwrap_with_padding(aes_key, encrypted[modulus_bytes:])
