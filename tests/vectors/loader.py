"""The one loader for the known-answer vectors kept in this directory.

``sdk_messages.json`` holds messages written by the official aws-encryption-sdk under
a raw AES-256 wrapping key (see generate_sdk_vectors.py). ``unwrap_data_key`` opens
such an encrypted data key: provider info = key name || tag length in bits (4 bytes)
|| IV length (4 bytes) || IV; ciphertext = wrapped key || tag; AAD = the serialized
encryption context of the message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.envelope.context import serialize_context
from kmsgate.envelope.data_keys import EncryptedDataKey

HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class SdkVector:
    name: str
    suite_id: int
    frame_length: int
    plaintext_length: int
    plaintext_sha256: str
    encryption_context: dict[str, str]
    message_id: bytes
    message: bytes


@dataclass(frozen=True, slots=True)
class RawWrapping:
    provider_id: str
    key_name: bytes
    key: bytes

    def unwrap_data_key(self, edk: EncryptedDataKey, encryption_context: dict[str, str]) -> bytes:
        info = edk.provider_info
        if edk.provider_id != self.provider_id or not info.startswith(self.key_name):
            raise ValueError("not wrapped by this key")
        tag_bits, iv_len = struct.unpack_from(">II", info, len(self.key_name))
        if tag_bits != 128 or iv_len != 12:
            raise ValueError("unexpected wrapping parameters")
        iv = info[len(self.key_name) + 8 :]
        return AESGCM(self.key).decrypt(iv, edk.ciphertext, serialize_context(encryption_context))


def load_sdk_vectors() -> tuple[RawWrapping, list[SdkVector]]:
    doc: dict[str, Any] = json.loads((HERE / "sdk_messages.json").read_text())
    wrap = doc["wrapping"]
    wrapping = RawWrapping(wrap["provider_id"], wrap["key_name"].encode(), base64.b64decode(wrap["key"]))
    vectors = [
        SdkVector(
            name=v["name"], suite_id=v["suite_id"], frame_length=v["frame_length"],
            plaintext_length=v["plaintext_length"], plaintext_sha256=v["plaintext_sha256"],
            encryption_context=v["encryption_context"], message_id=base64.b64decode(v["message_id"]),
            message=base64.b64decode(v["message"]),
        )
        for v in doc["vectors"]
    ]
    return wrapping, vectors


def plaintext_of(length: int) -> bytes:
    """The deterministic plaintext the generator encrypted (must match it)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:length])
