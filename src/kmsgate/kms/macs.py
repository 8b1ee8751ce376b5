"""HMAC for GENERATE_VERIFY_MAC keys: GenerateMac and VerifyMac's cryptography (RFC 2104).

Pure. The key is the HMAC key bytes kept for an ``HMAC_*`` key (``kmsgate.kms.keyspecs``);
a MAC is compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac

MAX_MESSAGE_BYTES = 4096
_DIGESTS = {
    "HMAC_SHA_224": hashlib.sha224,
    "HMAC_SHA_256": hashlib.sha256,
    "HMAC_SHA_384": hashlib.sha384,
    "HMAC_SHA_512": hashlib.sha512,
}


def generate_mac(key: bytes, mac_algorithm: str, message: bytes) -> bytes:
    return hmac.digest(key, message, _DIGESTS[mac_algorithm])


def verify_mac(key: bytes, mac_algorithm: str, message: bytes, mac: bytes) -> bool:
    """Whether ``mac`` is the MAC of ``message``; the comparison takes the same time wherever they differ."""
    return hmac.compare_digest(generate_mac(key, mac_algorithm, message), mac)
