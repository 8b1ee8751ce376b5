"""The ciphertext blob that Encrypt, GenerateDataKey and ReEncrypt return, and Decrypt reads.

Format version 1, byte by byte (integers big-endian)::

    offset  size  field
    0       1     format version, 0x01
    1       16    key id: the CMK's UUID as 16 raw bytes
    17      4     key material version (uint32), which material of the CMK encrypted this
    21      16    salt: random, from the OS
    37      12    nonce: random, from the OS
    49      n     AES-256-GCM ciphertext of the plaintext (n = plaintext length, 0..4096)
    49+n    16    AES-GCM tag

The blob carries the key id and material version so Decrypt needs no KeyId and still finds the
right material after any number of rotations.

Security reasoning:
- Each blob is encrypted under its own key, ``HMAC-SHA256(material, "kmsgate-blob-v1" || salt)``,
  so no single AES key ever sees more than one message and the random 96-bit GCM nonce
  never has to carry the birthday bound of billions of messages under one key.
- The associated data is the 21-byte prefix (version, key id, material version) followed by
  the canonical encoding of the encryption context (see ``kmsgate.kms.context``). Changing the
  header, the context, or any ciphertext byte fails tag verification.
- Every parse error and every failed tag is the same ``InvalidCiphertextError`` with the same
  message, so a caller learns nothing about which check failed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.core.errors import InvalidCiphertextError

FORMAT_VERSION = 1
PREFIX_BYTES = 21
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD_BYTES = PREFIX_BYTES + SALT_BYTES + NONCE_BYTES + TAG_BYTES  # 65
MAX_BLOB_BYTES = 6144  # the API's CiphertextBlob limit
_DERIVE_LABEL = b"kmsgate-blob-v1"
INVALID_CIPHERTEXT_MESSAGE = "The ciphertext is invalid, or was not made under this key or encryption context"


@dataclass(frozen=True, slots=True)
class BlobHeader:
    """What can be read from a blob before decrypting it."""

    key_id: str
    version: int


def _derive(material: bytes, salt: bytes) -> bytes:
    return hmac.digest(material, _DERIVE_LABEL + salt, hashlib.sha256)


def _prefix(key_id: str, version: int) -> bytes:
    return bytes([FORMAT_VERSION]) + uuid.UUID(key_id).bytes + struct.pack(">I", version)


def seal(
    material: bytes, key_id: str, version: int, plaintext: bytes, encoded_context: bytes
) -> bytes:
    """Encrypt ``plaintext`` under one version of a CMK's material into a blob."""
    prefix = _prefix(key_id, version)
    salt = os.urandom(SALT_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_derive(material, salt)).encrypt(nonce, plaintext, prefix + encoded_context)
    return b"".join((prefix, salt, nonce, sealed))


def read_header(blob: bytes) -> BlobHeader:
    """Parse the unauthenticated prefix; raise ``InvalidCiphertextError`` if it is malformed."""
    if len(blob) < OVERHEAD_BYTES or len(blob) > MAX_BLOB_BYTES or blob[0] != FORMAT_VERSION:
        raise InvalidCiphertextError(INVALID_CIPHERTEXT_MESSAGE)
    key_id = str(uuid.UUID(bytes=bytes(blob[1:17])))
    (version,) = struct.unpack(">I", blob[17:21])
    return BlobHeader(key_id=key_id, version=version)


def open_blob(material: bytes, blob: bytes, encoded_context: bytes) -> bytes:
    """Decrypt a blob whose header was read with ``read_header``. Authenticated or nothing."""
    if len(blob) < OVERHEAD_BYTES:
        raise InvalidCiphertextError(INVALID_CIPHERTEXT_MESSAGE)
    salt = blob[PREFIX_BYTES : PREFIX_BYTES + SALT_BYTES]
    nonce = blob[PREFIX_BYTES + SALT_BYTES : PREFIX_BYTES + SALT_BYTES + NONCE_BYTES]
    sealed = blob[PREFIX_BYTES + SALT_BYTES + NONCE_BYTES :]
    try:
        return AESGCM(_derive(material, salt)).decrypt(
            nonce, sealed, bytes(blob[:PREFIX_BYTES]) + encoded_context
        )
    except InvalidTag as exc:
        raise InvalidCiphertextError(INVALID_CIPHERTEXT_MESSAGE) from exc
