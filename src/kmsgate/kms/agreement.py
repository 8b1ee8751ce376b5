"""Key agreement for KEY_AGREEMENT keys: ECDH (DeriveSharedSecret) between a KMS key and a peer's public key.

Pure: takes the KMS key's private key (PKCS#8 DER, as ``kmsgate.kms.keyspecs`` keeps it) and the
peer's public key as DER SubjectPublicKeyInfo (RFC 5280), returns the raw shared secret: the
x-coordinate of the shared point, as long as the curve's field (32 bytes for P-256, 48 for P-384,
66 for P-521), as SP 800-56A's ECC CDH primitive gives it and AWS KMS returns it (no KDF: the
caller derives its keys from it).

The peer's key is checked before use: it must parse as an SPKI (a point on its curve, which the
parser checks), be an elliptic-curve key, and be on the KMS key's curve. The message names what
is wrong without echoing the bytes sent.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kmsgate.core.errors import ValidationError
from kmsgate.kms.asymmetric import load_private_key

ECDH = "ECDH"


def peer_public_key(key_spec: str, public_key_der: bytes, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    """The peer's public key from its DER SPKI, or ``ValidationException`` saying what is wrong."""
    try:
        public = serialization.load_der_public_key(public_key_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValidationError(
            "PublicKey is not a valid DER-encoded X.509 SubjectPublicKeyInfo on a supported elliptic curve"
        ) from exc
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValidationError(f"PublicKey is not an elliptic curve public key; the KMS key's KeySpec is {key_spec}")
    if public.curve.name != curve.name:
        raise ValidationError(
            f"PublicKey is on curve {public.curve.name}, which does not match the KMS key's KeySpec {key_spec}"
        )
    return public


def derive_shared_secret(private_der: bytes, key_spec: str, public_key_der: bytes) -> bytes:
    """ECDH between the KMS key's private key and the peer's public key: the raw shared secret."""
    private: ec.EllipticCurvePrivateKey = load_private_key(private_der)
    public = peer_public_key(key_spec, public_key_der, private.curve)
    return private.exchange(ec.ECDH(), public)
