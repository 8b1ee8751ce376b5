"""Helpers shared by the KMS tests: wrapping key material for import the way AWS documents it."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

REGION = "us-east-1"
ACCOUNT_ID = "111122223333"
WRAPPING_ALGORITHMS = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256")


def _oaep(digest: hashes.HashAlgorithm) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)


def wrap_key_material(public_key_der: bytes, material: bytes, wrapping_algorithm: str) -> bytes:
    """Encrypt ``material`` under the wrapping public key as a customer does before ImportKeyMaterial.

    RSAES_OAEP_SHA_1/256 encrypt the material directly; RSA_AES_KEY_WRAP_SHA_256 encrypts a fresh
    AES-256 key with RSA-OAEP-SHA-256 and appends the material wrapped under it (RFC 5649).
    """
    public_key = serialization.load_der_public_key(public_key_der)
    assert isinstance(public_key, rsa.RSAPublicKey)
    if wrapping_algorithm == "RSAES_OAEP_SHA_1":
        return public_key.encrypt(material, _oaep(hashes.SHA1()))
    if wrapping_algorithm == "RSAES_OAEP_SHA_256":
        return public_key.encrypt(material, _oaep(hashes.SHA256()))
    if wrapping_algorithm == "RSA_AES_KEY_WRAP_SHA_256":
        aes_key = os.urandom(32)
        return public_key.encrypt(aes_key, _oaep(hashes.SHA256())) + aes_key_wrap_with_padding(aes_key, material)
    raise ValueError(wrapping_algorithm)


def tampered(blob: bytes):  # type: ignore[no-untyped-def]
    """Every single-byte change, every truncation and one extension of ``blob``."""
    for index in range(len(blob)):
        for mask in (0x01, 0x80):
            changed = bytearray(blob)
            changed[index] ^= mask
            yield f"flip byte {index} mask {mask:#x}", bytes(changed)
    for length in range(len(blob)):
        yield f"truncate to {length}", blob[:length]
    yield "extend by one byte", blob + b"\x00"
