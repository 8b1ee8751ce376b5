"""Key derivation and key commitment for the message format.

For committing suites (message format 2), with the 32-byte message id as salt::

    derived key    = HKDF-SHA512(ikm=data key, salt=message id, info=suite id (2 bytes) || "DERIVEKEY", L=32)
    commitment key = HKDF-SHA512(ikm=data key, salt=message id, info="COMMITKEY", L=32)

For the non-committing message-format-1 suites, without salt::

    derived key    = HKDF-<suite hash>(ikm=data key, salt=none, info=suite id || message id (16 bytes), L=32)

Every message draws a fresh random message id, so one cached data key yields a
different derived key per message and no (key, nonce) pair ever repeats even
though frame IVs are deterministic sequence numbers.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import CommitmentMismatchError
from .suites import AlgorithmSuite

DERIVE_LABEL = b"DERIVEKEY"
COMMIT_LABEL = b"COMMITKEY"


def derive_committed_keys(suite: AlgorithmSuite, data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """(derived key, commitment key) of a committing suite, sharing one HKDF extract.

    HKDF (RFC 5869) with SHA-512: PRK = HMAC(salt=message id, data key); each output
    here is 32 bytes, within the first 64-byte expand block T(1) = HMAC(PRK, info || 0x01).
    Computed with plain SHA-512 HMAC because the message path runs it for every
    message and the object-based HKDF costs several times more.
    """
    if (not suite.committing or suite.kdf_hash is not hashes.SHA512 or suite.data_key_length > 64
            or suite.commitment_length > 64 or len(message_id) > 128):
        return derive_data_key(suite, data_key, message_id), commitment_key(suite, data_key, message_id)
    # HMAC (RFC 2104) written out: key blocks padded to 128 bytes and XORed with the
    # pads; the PRK's two padded blocks serve both expand steps.
    sha512 = hashlib.sha512
    salt = message_id.ljust(128, b"\x00")
    prk = sha512(salt.translate(_OPAD) + sha512(salt.translate(_IPAD) + data_key).digest()).digest()
    block = prk + _PRK_PAD
    inner, outer = block.translate(_IPAD), block.translate(_OPAD)
    info = _DERIVE_INFO.get(suite.suite_id) or suite.id_bytes + DERIVE_LABEL + b"\x01"
    derived = sha512(outer + sha512(inner + info).digest()).digest()[: suite.data_key_length]
    commit = sha512(outer + sha512(inner + _COMMIT_INFO).digest()).digest()[: suite.commitment_length]
    return derived, commit


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_PRK_PAD = bytes(128 - 64)  # a SHA-512 PRK is 64 bytes; HMAC pads its key to the 128-byte block
_DERIVE_INFO = {suite_id: suite_id.to_bytes(2, "big") + DERIVE_LABEL + b"\x01" for suite_id in (0x0478, 0x0578)}
_COMMIT_INFO = COMMIT_LABEL + b"\x01"


def _hmac_sha512(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA512 (RFC 2104) for keys of at most one 128-byte block, as used above
    (32-byte message ids and 64-byte PRKs); equal to ``hmac.digest`` but cheaper per call."""
    if len(key) > 128:
        return hmac.digest(key, message, hashlib.sha512)
    block = key.ljust(128, b"\x00")
    inner = hashlib.sha512(block.translate(_IPAD) + message).digest()
    return hashlib.sha512(block.translate(_OPAD) + inner).digest()


def derive_data_key(suite: AlgorithmSuite, data_key: bytes, message_id: bytes) -> bytes:
    """The per-message AES-GCM key."""
    if suite.committing:
        hkdf = HKDF(suite.kdf_hash(), suite.data_key_length, salt=message_id, info=suite.id_bytes + DERIVE_LABEL)
    else:
        hkdf = HKDF(suite.kdf_hash(), suite.data_key_length, salt=None, info=suite.id_bytes + message_id)
    return hkdf.derive(data_key)


def commitment_key(suite: AlgorithmSuite, data_key: bytes, message_id: bytes) -> bytes:
    """The value a committing header carries to bind the message to one data key."""
    return HKDF(suite.kdf_hash(), suite.commitment_length, salt=message_id, info=COMMIT_LABEL).derive(data_key)


def derive_checked_key(suite: AlgorithmSuite, data_key: bytes, message_id: bytes, expected: bytes) -> bytes:
    """The per-message AES-GCM key, after checking a committing header's commitment key
    (compared in constant time); one HKDF extract serves both."""
    if not suite.committing:
        return derive_data_key(suite, data_key, message_id)
    derived, commit = derive_committed_keys(suite, data_key, message_id)
    if not hmac.compare_digest(commit, expected):
        raise CommitmentMismatchError("commitment key mismatch")
    return derived


def check_commitment(suite: AlgorithmSuite, data_key: bytes, message_id: bytes, expected: bytes) -> None:
    """Raise ``CommitmentMismatchError`` unless ``expected`` matches, compared in constant time."""
    if not suite.committing:
        return
    if not hmac.compare_digest(derive_committed_keys(suite, data_key, message_id)[1], expected):
        raise CommitmentMismatchError("commitment key mismatch")
