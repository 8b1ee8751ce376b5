"""Regenerate tests/vectors/sdk_messages.json with the official aws-encryption-sdk.

Messages are encrypted under a raw AES-256 wrapping key (fixed below, test-only) so
the vectors are about the message format, not about any KMS. Run from the repository
root: ``.venv/bin/python tests/vectors/generate_sdk_vectors.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
    EncryptionKeyType,
    WrappingAlgorithm,
)
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider

WRAPPING_KEY = bytes(range(32))  # test-only key; the vectors are public by design
PROVIDER_ID = "kmsgate-test"
KEY_NAME = b"kat-key-1"


class StaticRawProvider(RawMasterKeyProvider):  # type: ignore[misc]
    provider_id = PROVIDER_ID

    def _get_raw_key(self, key_id: bytes) -> WrappingKey:
        return WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=WRAPPING_KEY,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        )


def plaintext_of(length: int) -> bytes:
    """Deterministic plaintext so the file need not store it."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:length])


CASES = [
    # (name, suite, frame length, plaintext length, context, commitment policy)
    ("0478-empty-ctx-empty-pt", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 4096, 0, {}, None),
    ("0478-ctx-one-frame", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 4096, 4096, {"purpose": "kat"}, None),
    ("0478-ctx-frame-plus-one", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 4096, 4097,
     {"purpose": "kat", "tenant": "t-1", "\u00e9t\u00e9": "\u2603"}, None),
    ("0478-many-frames", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 256, 10_000, {"a": "1"}, None),
    ("0578-empty-ctx-empty-pt", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, 4096, 0, {}, None),
    ("0578-ctx-many-frames", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, 512, 5000,
     {"purpose": "kat"}, None),
    ("0578-one-frame", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, 1024, 1024, {"x": "y"}, None),
    ("0178-noncommitting", Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA256, 1024, 3000, {"legacy": "yes"},
     CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT),
    ("0378-noncommitting-signed", Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384, 1024, 1500,
     {"legacy": "yes"}, CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT),
]


def main() -> None:
    provider = StaticRawProvider()
    provider.add_master_key(KEY_NAME)
    vectors = []
    for name, suite, frame_length, length, context, policy in CASES:
        client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=policy or CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        )
        message, header = client.encrypt(
            source=plaintext_of(length), key_provider=provider, encryption_context=context,
            algorithm=suite, frame_length=frame_length,
        )
        vectors.append({
            "name": name,
            "suite_id": suite.algorithm_id,
            "frame_length": frame_length,
            "plaintext_length": length,
            "plaintext_sha256": hashlib.sha256(plaintext_of(length)).hexdigest(),
            "encryption_context": dict(header.encryption_context),
            "message_id": base64.b64encode(header.message_id).decode(),
            "message": base64.b64encode(message).decode(),
        })
    doc = {
        "generator": f"aws-encryption-sdk {aws_encryption_sdk.__version__}",
        "wrapping": {"provider_id": PROVIDER_ID, "key_name": KEY_NAME.decode(),
                     "key": base64.b64encode(WRAPPING_KEY).decode(), "algorithm": "AES-256-GCM IV12 TAG16"},
        "vectors": vectors,
    }
    Path(__file__).with_name("sdk_messages.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
