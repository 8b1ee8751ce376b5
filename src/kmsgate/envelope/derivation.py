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

import hmac

from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import CommitmentMismatchError
from .suites import AlgorithmSuite

DERIVE_LABEL = b"DERIVEKEY"
COMMIT_LABEL = b"COMMITKEY"


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


def check_commitment(suite: AlgorithmSuite, data_key: bytes, message_id: bytes, expected: bytes) -> None:
    """Raise ``CommitmentMismatchError`` unless ``expected`` matches, compared in constant time."""
    if not suite.committing:
        return
    if not hmac.compare_digest(commitment_key(suite, data_key, message_id), expected):
        raise CommitmentMismatchError("commitment key mismatch")
