"""ML-KEM (FIPS 203) for ENCAPSULATE_DECAPSULATE keys: key forms, Encapsulate and Decapsulate.

Pure: takes a key spec (``ML_KEM_512``, ``ML_KEM_768``, ``ML_KEM_1024``) and bytes, returns bytes.

Forms, DER as the IETF LAMPS profile for ML-KEM in X.509 (draft-ietf-lamps-kyber-certificates)
writes them, byte for byte:

- Private key, as kmsgate keeps it (wrapped under the root key) and as GenerateDataKeyPair
  returns it: PKCS #8 ``PrivateKeyInfo`` in the seed-only form, 86 bytes for every parameter set::

      30 54                          SEQUENCE, 84 bytes
         02 01 00                    INTEGER 0 (version)
         30 0b 06 09 <OID>           AlgorithmIdentifier: id-alg-ml-kem-512/768/1024, no parameters
         04 42 80 40 <seed>          OCTET STRING { [0] IMPLICIT OCTET STRING (64 bytes) }

  The 64-byte seed is FIPS 203's ``d || z`` (section 7.1): it fixes the whole key pair, so it is
  the smallest form and the one both libraries below derive the same keys from.
- Public key, as GetPublicKey returns it: X.509 ``SubjectPublicKeyInfo`` with the encapsulation
  key (800, 1184 or 1568 bytes) in the BIT STRING; 822, 1206 or 1590 bytes in all.

The OIDs are 2.16.840.1.101.3.4.4.{1,2,3} (NIST's ``kems`` arc).

The shared secret is 32 bytes; the encapsulated form (``SharedSecretCiphertextBlob``) is 768,
1088 or 1568 bytes. Decapsulate refuses a blob of any other length with the one
``InvalidCiphertextException``; a blob of the right length always yields 32 bytes: FIPS 203's
implicit rejection answers a tampered or foreign ciphertext with a pseudo-random secret, never an
error, so a caller learns nothing from the answer and must confirm the secret with its peer.

ML-KEM-768 and ML-KEM-1024 are computed by ``cryptography`` (OpenSSL). ``cryptography`` has no
ML-KEM-512, so that parameter set is computed by ``kyber-py``, a pure-Python FIPS 203
implementation checked against NIST's ACVP vectors (``tests/vectors/mlkem``). It is not
constant-time: see README, "Key specs". Expanding a seed there takes milliseconds, so the
expanded ML-KEM-512 keys are kept in a bounded cache keyed by the DER bytes (which live in
memory anyway, unwrapped when the key was loaded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem
from kyber_py.ml_kem import ML_KEM_512 as _KYBER_PY_ML_KEM_512

from kmsgate.core.errors import IncorrectKeyMaterialError, InvalidCiphertextError

ML_KEM = "ML_KEM"  # the one EncapsulationAlgorithmSpec
SEED_BYTES = 64
SHARED_SECRET_BYTES = 32
INVALID_CIPHERTEXT_MESSAGE = "The ciphertext is invalid, or was not made under this key"
_CACHED_KEYS = 1024


@dataclass(frozen=True, slots=True)
class _ParameterSet:
    oid_arc: int  # the last arc of id-alg-ml-kem-*
    encapsulation_key_bytes: int
    ciphertext_bytes: int

    def oid_der(self) -> bytes:
        return bytes.fromhex("06096086480165030404") + bytes([self.oid_arc])


PARAMETER_SETS: dict[str, _ParameterSet] = {
    "ML_KEM_512": _ParameterSet(1, 800, 768),
    "ML_KEM_768": _ParameterSet(2, 1184, 1088),
    "ML_KEM_1024": _ParameterSet(3, 1568, 1568),
}
_CRYPTOGRAPHY_KEYS: dict[str, type[mlkem.MLKEM768PrivateKey] | type[mlkem.MLKEM1024PrivateKey]] = {
    "ML_KEM_768": mlkem.MLKEM768PrivateKey,
    "ML_KEM_1024": mlkem.MLKEM1024PrivateKey,
}


def _private_key_prefix(key_spec: str) -> bytes:
    # SEQUENCE(84) { INTEGER 0, SEQUENCE(11) { OID }, OCTET STRING(66) { [0](64) ... } }
    return b"\x30\x54\x02\x01\x00\x30\x0b" + PARAMETER_SETS[key_spec].oid_der() + b"\x04\x42\x80\x40"


def private_key_der(key_spec: str, seed: bytes) -> bytes:
    """The PKCS #8 seed-only private key of ``key_spec`` for the 64-byte ``seed``."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"An ML-KEM seed is {SEED_BYTES} bytes")
    return _private_key_prefix(key_spec) + seed


def generate(key_spec: str) -> bytes:
    """A new private key of ``key_spec`` (PKCS #8 seed-only DER) from 64 fresh random bytes."""
    return private_key_der(key_spec, os.urandom(SEED_BYTES))


def spec_of_private_key(der: bytes) -> str | None:
    """The ML-KEM key spec whose seed-only PKCS #8 form ``der`` is, or ``None``."""
    if len(der) != len(_private_key_prefix("ML_KEM_768")) + SEED_BYTES:
        return None
    for key_spec in PARAMETER_SETS:
        if der.startswith(_private_key_prefix(key_spec)):
            return key_spec
    return None


def check_imported_private_key(key_spec: str, der: bytes) -> bytes:
    """Imported ML-KEM material: the seed-only PKCS #8 form of ``key_spec``, or ``IncorrectKeyMaterialException``."""
    if spec_of_private_key(der) != key_spec:
        raise IncorrectKeyMaterialError(
            f"The key material is not a PKCS#8 DER private key of KeySpec {key_spec} in the seed-only form"
        )
    return der


def _seed(key_spec: str, der: bytes) -> bytes:
    if spec_of_private_key(der) != key_spec:
        raise ValueError(f"not a {key_spec} private key")
    return der[-SEED_BYTES:]


@lru_cache(maxsize=_CACHED_KEYS)
def _kyber_py_keys(der: bytes) -> tuple[bytes, bytes]:
    """ML-KEM-512's (encapsulation key, expanded decapsulation key) of a kept private key (cached)."""
    encapsulation, decapsulation = _KYBER_PY_ML_KEM_512.key_derive(_seed("ML_KEM_512", der))
    return bytes(encapsulation), bytes(decapsulation)


@lru_cache(maxsize=_CACHED_KEYS)
def _cryptography_key(key_spec: str, der: bytes) -> mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey:
    return _CRYPTOGRAPHY_KEYS[key_spec].from_seed_bytes(_seed(key_spec, der))


def encapsulation_key(key_spec: str, der: bytes) -> bytes:
    """The raw FIPS 203 encapsulation key of a private key."""
    if key_spec == "ML_KEM_512":
        return _kyber_py_keys(der)[0]
    return _cryptography_key(key_spec, der).public_key().public_bytes_raw()


@lru_cache(maxsize=_CACHED_KEYS)
def public_key_der(der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a kept ML-KEM private key, as GetPublicKey returns it (cached)."""
    key_spec = spec_of_private_key(der)
    if key_spec is None:
        raise ValueError("not an ML-KEM private key")
    if key_spec != "ML_KEM_512":
        public = _cryptography_key(key_spec, der).public_key()
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return subject_public_key_info(key_spec, encapsulation_key(key_spec, der))


def subject_public_key_info(key_spec: str, key: bytes) -> bytes:
    """SEQUENCE { SEQUENCE { OID }, BIT STRING { 0 unused bits, the encapsulation key } }."""
    algorithm = b"\x30\x0b" + PARAMETER_SETS[key_spec].oid_der()
    bit_string = b"\x03" + _der_length(len(key) + 1) + b"\x00" + key
    body = algorithm + bit_string
    return b"\x30" + _der_length(len(body)) + body


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def encapsulate(key_spec: str, der: bytes) -> tuple[bytes, bytes]:
    """A fresh 32-byte shared secret and its encapsulation under the key's public half."""
    if key_spec == "ML_KEM_512":
        secret, ciphertext = _KYBER_PY_ML_KEM_512.encaps(_kyber_py_keys(der)[0])
        return bytes(secret), bytes(ciphertext)
    return _cryptography_key(key_spec, der).public_key().encapsulate()


def decapsulate(key_spec: str, der: bytes, ciphertext: bytes) -> bytes:
    """The shared secret in ``ciphertext``; ``InvalidCiphertextException`` only for a wrong length."""
    if len(ciphertext) != PARAMETER_SETS[key_spec].ciphertext_bytes:
        raise InvalidCiphertextError(INVALID_CIPHERTEXT_MESSAGE)
    if key_spec == "ML_KEM_512":
        return bytes(_KYBER_PY_ML_KEM_512.decaps(_kyber_py_keys(der)[1], ciphertext))
    return _cryptography_key(key_spec, der).decapsulate(ciphertext)


def slow(key_spec: str) -> bool:
    """Whether operations of this parameter set are slow enough to run off the event loop:
    pure-Python ML-KEM-512 takes milliseconds; OpenSSL's ML-KEM tens of microseconds."""
    return key_spec == "ML_KEM_512"
