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

Per-blob work is kept small: the HMAC's keyed inner and outer SHA-256 states are computed once
per material (RFC 2104; a bounded cache keyed by the material, which lives in memory anyway)
and copied per blob, and the 21-byte prefix is built once per (key id, material version).
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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


_SHA256_BLOCK_BYTES = 64
_CACHED_MATERIALS = 1024
_CACHED_PREFIXES = 4096


@lru_cache(maxsize=_CACHED_MATERIALS)
def _hmac_states(material: bytes) -> tuple[Any, Any]:
    """SHA-256 states after absorbing ``K xor ipad`` and ``K xor opad`` (RFC 2104)."""
    key = hashlib.sha256(material).digest() if len(material) > _SHA256_BLOCK_BYTES else material
    key = key.ljust(_SHA256_BLOCK_BYTES, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _derive(material: bytes, salt: bytes) -> bytes:
    """``HMAC-SHA256(material, "kmsgate-blob-v1" || salt)``."""
    inner_state, outer_state = _hmac_states(material)
    inner = inner_state.copy()
    inner.update(_DERIVE_LABEL + salt)
    outer = outer_state.copy()
    outer.update(inner.digest())
    return outer.digest()  # type: ignore[no-any-return]


@lru_cache(maxsize=_CACHED_PREFIXES)
def _prefix(key_id: str, version: int) -> bytes:
    return bytes([FORMAT_VERSION]) + uuid.UUID(key_id).bytes + struct.pack(">I", version)


def seal(
    material: bytes, key_id: str, version: int, plaintext: bytes, encoded_context: bytes
) -> bytes:
    """Encrypt ``plaintext`` under one version of a CMK's material into a blob."""
    prefix = _prefix(key_id, version)
    salt_and_nonce = os.urandom(SALT_BYTES + NONCE_BYTES)  # one read from the OS for both
    salt, nonce = salt_and_nonce[:SALT_BYTES], salt_and_nonce[SALT_BYTES:]
    sealed = AESGCM(_derive(material, salt)).encrypt(nonce, plaintext, prefix + encoded_context)
    return b"".join((prefix, salt_and_nonce, sealed))


def read_header(blob: bytes) -> BlobHeader:
    """Parse the unauthenticated prefix; raise ``InvalidCiphertextError`` if it is malformed."""
    if len(blob) < OVERHEAD_BYTES or len(blob) > MAX_BLOB_BYTES or blob[0] != FORMAT_VERSION:
        raise InvalidCiphertextError(INVALID_CIPHERTEXT_MESSAGE)
    digits = bytes(blob[1:17]).hex()  # the canonical UUID text, as str(uuid.UUID(bytes=...)) gives
    key_id = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
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
