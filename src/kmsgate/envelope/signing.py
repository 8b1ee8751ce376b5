"""ECDSA P-384 message signatures for the signing suites (0x0578, and 0x0378 on read).

The writer generates one key pair per set of encryption materials and puts the
public key in the encryption context under ``aws-crypto-public-key`` as base64 of
the SEC 1 compressed point (49 bytes for P-384), so the context (and thus the KMS
call that wraps the data key) binds it. The footer is a DER ECDSA signature over the
SHA-384 digest of every message byte before the footer. Writers keep the DER length
fixed at 103 bytes, as the format's reference writers do, by negating ``s`` or
re-signing; readers accept any DER length up to ``MAX_SIGNATURE_BYTES``.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import SignatureError

CURVE = ec.SECP384R1()
P384_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973
SIGNATURE_LENGTH = 103
MAX_SIGNATURE_BYTES = 256  # attacker-controlled footer length cap; a P-384 DER signature is <= 104
_ALGORITHM = ec.ECDSA(Prehashed(hashes.SHA384()))


def new_digest() -> hashes.Hash:
    """The running SHA-384 digest of the signed message bytes."""
    return hashes.Hash(hashes.SHA384())


def generate_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE)


def public_key_field(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The ``aws-crypto-public-key`` context value for this key."""
    point = private_key.public_key().public_bytes(
        encoding=serialization.Encoding.X962, format=serialization.PublicFormat.CompressedPoint
    )
    return base64.b64encode(point).decode("ascii")


def load_public_key(field: str) -> ec.EllipticCurvePublicKey:
    """Parse an ``aws-crypto-public-key`` value; raise ``SignatureError`` if invalid."""
    try:
        point = base64.b64decode(field.encode("ascii"), validate=True)
        return ec.EllipticCurvePublicKey.from_encoded_point(CURVE, point)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise SignatureError("invalid public key in encryption context") from exc


def sign(private_key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """A DER signature of exactly ``SIGNATURE_LENGTH`` bytes over a SHA-384 digest."""
    while True:
        signature = private_key.sign(digest, _ALGORITHM)
        if len(signature) == SIGNATURE_LENGTH:
            return signature
        r, s = decode_dss_signature(signature)
        signature = encode_dss_signature(r, P384_ORDER - s)
        if len(signature) == SIGNATURE_LENGTH:
            return signature


def verify(public_key: ec.EllipticCurvePublicKey, digest: bytes, signature: bytes) -> None:
    """Raise ``SignatureError`` unless ``signature`` is valid for ``digest``."""
    try:
        public_key.verify(signature, digest, _ALGORITHM)
    except InvalidSignature as exc:
        raise SignatureError("message signature does not verify") from exc
