"""Ed25519ph (RFC 8032, section 5.1, ``phflag`` = 1, empty context) over a 64-byte SHA-512 prehash.

pyca/cryptography offers only pure Ed25519, so the prehashed variant AWS calls
``ED25519_PH_SHA_512`` comes from PyCryptodome's ``Crypto.Signature.eddsa`` in its
``"rfc8032"`` mode, which is HashEdDSA when handed a ``Crypto.Hash.SHA512`` object. The key is
the 32-byte seed of the same Ed25519 private key that pure Ed25519 signs with.

Timing: nothing secret goes through Python integers here. PyCryptodome expands the seed, multiplies
the base point in C (Ed25519 points) and computes ``s = r + k * a mod L`` with its constant-time C
natural numbers (``Crypto.Math._IntegerNat``); verification handles public values only. Where
PyCryptodome cannot load those C numbers it falls back, silently, to Python integers; signing then
refuses (``KMSInternalException``) rather than let the secret scalar go through variable-time
arithmetic.

PyCryptodome's ``eddsa`` takes the prehash only as a SHA-512 hash object, whose ``digest()`` it
reads once; ``_Prehash`` is such an object carrying a digest computed elsewhere (``MessageType``
``DIGEST``), so both message types sign through the one library call.
"""

from __future__ import annotations

from Crypto.Hash import SHA512
from Crypto.Math.Numbers import Integer
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from kmsgate.core.errors import KmsError

PREHASH_BYTES = 64  # SHA-512 output
SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
_CONSTANT_TIME_INTEGERS = Integer.__module__ == "Crypto.Math._IntegerNat"


class _Prehash(SHA512.SHA512Hash):
    """A finished SHA-512 whose digest is already known: the message representative Ed25519ph signs."""

    def __init__(self, prehash: bytes) -> None:  # no hashing state: nothing is ever fed to it
        if len(prehash) != PREHASH_BYTES:
            raise ValueError(f"An Ed25519ph prehash is {PREHASH_BYTES} bytes")
        self._prehash = bytes(prehash)

    def update(self, data: object) -> None:
        raise TypeError("A prehash is final")

    def digest(self) -> bytes:
        return self._prehash


def _private_key(seed: bytes) -> ECC.EccKey:
    if len(seed) != SEED_BYTES:
        raise ValueError(f"An Ed25519 seed is {SEED_BYTES} bytes")
    return eddsa.import_private_key(seed)


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte Ed25519 seed."""
    return _private_key(seed).public_key().export_key(format="raw")


def sign(seed: bytes, prehash: bytes) -> bytes:
    """The 64-byte Ed25519ph signature of ``prehash`` (SHA-512 of the message)."""
    if not _CONSTANT_TIME_INTEGERS:
        raise KmsError("Ed25519ph signing is unavailable: PyCryptodome has no constant-time integers here")
    return eddsa.new(_private_key(seed), "rfc8032").sign(_Prehash(prehash))


def verify(public: bytes, prehash: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519ph signature of ``prehash`` under ``public``."""
    if len(public) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES or len(prehash) != PREHASH_BYTES:
        return False
    try:
        verifier = eddsa.new(eddsa.import_public_key(public), "rfc8032")
        verifier.verify(_Prehash(prehash), signature)
    except ValueError:  # an invalid point encoding, s out of range, or the equation does not hold
        return False
    return True
