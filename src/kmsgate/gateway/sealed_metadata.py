"""An object's metadata sealed under its own message's data key, so storage keeps it only encrypted.

A stored object is an AWS Encryption SDK message; what a front keeps beside it (S3's
Content-Type, Content-Disposition, ``x-amz-meta-*``, the plaintext's MD5, ...) is an opaque
byte string that the storage backend stores next to the message. It is sealed here, with no
KMS call of its own: the key is derived from the message's data key, which only a caller the
KMS lets decrypt the object can obtain.

Sealed form (all lengths fixed)::

    version        1 byte    0x01
    nonce         12 bytes   from the OS random source
    ciphertext     n bytes   AES-256-GCM of the metadata
    tag           16 bytes

    key = HKDF-SHA256(ikm = data key, salt = message id,
                      info = b"kmsgate object metadata v1")                  (32 bytes)
    associated data = b"kmsgate object metadata v1" || u16 len(arn) || arn || message id

Why this is sound: the key is bound to this message (its data key and random message id) and
separated from the Encryption SDK's own derivations by its ``info``; the associated data binds
the blob to the object's ARN and message id, so metadata moved to another object, or kept
beside a replaced message, does not open (``MetadataError``, which callers report as the
object failing authentication). A random 96-bit nonce under a per-message key is used once per
metadata write.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
INFO = b"kmsgate object metadata v1"
OVERHEAD_BYTES = 1 + NONCE_BYTES + TAG_BYTES


class MetadataError(Exception):
    """Sealed metadata that does not open under this message and object."""


def _key(data_key: bytes, message_id: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=message_id, info=INFO).derive(data_key)


def _associated_data(arn: str, message_id: bytes) -> bytes:
    encoded = arn.encode("utf-8")
    return INFO + struct.pack(">H", len(encoded)) + encoded + message_id


def seal(metadata: bytes, *, data_key: bytes, message_id: bytes, arn: str) -> bytes:
    """``metadata`` sealed for the object ``arn`` whose message has ``data_key`` and ``message_id``."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_key(data_key, message_id)).encrypt(nonce, metadata, _associated_data(arn, message_id))
    return bytes([VERSION]) + nonce + sealed


def open_sealed(blob: bytes, *, data_key: bytes, message_id: bytes, arn: str) -> bytes:
    """The metadata sealed in ``blob``, or ``MetadataError``; an empty blob is empty metadata."""
    if not blob:
        return b""
    if len(blob) < OVERHEAD_BYTES or blob[0] != VERSION:
        raise MetadataError("sealed metadata has an unknown form")
    nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(_key(data_key, message_id)).decrypt(nonce, sealed, _associated_data(arn, message_id))
    except InvalidTag:
        raise MetadataError("sealed metadata failed authentication") from None
