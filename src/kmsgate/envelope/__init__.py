"""Envelope encryption core: the AWS Encryption SDK message format, streaming, and data-key caching.

No HTTP lives here. The pure, synchronous layer (no I/O, no clock of its own):

- ``Encryptor(materials, *, frame_length=FRAME_LENGTH, on_plaintext=None)``:
  ``update(data) -> bytearray``, ``finalize() -> bytearray``, ``encrypt(data) -> bytearray``
  (update + finalize into one buffer); ``.header`` is the written header;
  ``output_length(n, final=False)`` and ``update_into(data, buffer, final=False) -> int``
  write into a caller's (reusable) buffer instead.
- ``Decryptor(policy=DecryptPolicy())``: ``update(data) -> bytearray``; once
  ``needs_data_key`` is true, ``set_data_key(data_key)``; then ``update``/``finalize()``.
  ``Decryptor.for_header(header, policy)`` starts from a header parsed separately;
  ``update_into(data, buffer) -> int`` with ``len(buffer) >= max_output_length(len(data))``.
  Every failure is a ``DecryptionError`` (report ``DecryptionError.PUBLIC_MESSAGE`` only).
- ``parse_header(data, policy) -> (MessageHeader | None, consumed_or_needed)``.
- ``ranges``: ``plaintext_length(header, message_length)``, ``frame_span(header, message_length, first, last)``
  and ``RangeDecryptor`` for ranged reads of stored messages; ``final_frame_span(header, message_length)``
  (decrypt it to vouch for that length) and ``plan_range(final, header, message_length, first, last)``.
- ``cache``: ``EncryptionMaterialsCache`` / ``DecryptionKeyCache`` with an injected clock.

The async layer (calls the KMS through a ``KmsClient``):

- ``kms_client``: ``KmsClient`` protocol, ``InProcessKmsClient(service, caller)``, ``RemoteKmsClient``.
- ``materials.MaterialsManager(kms, *, limits=CacheLimits(), decrypt_limits=DecryptCacheLimits(),
  clock=time.monotonic, refresh_before_seconds=30.0, caching=True)``:
  ``await encryptor(key_id=, encryption_context=, suite=, frame_length=, plaintext_length=) -> Encryptor``,
  ``await open_decryptor(decryptor)`` (once ``needs_data_key``), ``await data_key(header) -> bytes``,
  ``.stats`` (hits, misses, kms_calls, evictions by reason), ``await aclose()``;
  ``encrypt_message(manager, plaintext, *, key_id, ...)`` / ``decrypt_message(manager, message)``.
- ``pool.CryptoPool``: runs large ``update`` calls in a thread pool, small ones inline
  (threshold measured by ``bench/envelope_threadpool.py``, recorded in pool.py).
"""

from __future__ import annotations

from .data_keys import KMS_PROVIDER_ID, EncryptedDataKey, EncryptionMaterials
from .decryptor import Decryptor
from .encryptor import FRAME_LENGTH, Encryptor
from .errors import (
    CommitmentMismatchError,
    DataKeyUnavailableError,
    DecryptionError,
    EncryptionError,
    EnvelopeError,
    ForbiddenSuiteError,
    FrameAuthenticationError,
    HeaderAuthenticationError,
    HeaderLimitError,
    MalformedFrameError,
    MalformedHeaderError,
    SignatureError,
    TrailingDataError,
    TruncatedMessageError,
    UnsupportedSuiteError,
)
from .header import DecryptPolicy, MessageHeader, parse_header
from .suites import (
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
    DEFAULT_SUITE,
    AlgorithmSuite,
    suite_by_id,
)

__all__ = [
    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
    "DEFAULT_SUITE",
    "FRAME_LENGTH",
    "KMS_PROVIDER_ID",
    "AlgorithmSuite",
    "CommitmentMismatchError",
    "DataKeyUnavailableError",
    "DecryptPolicy",
    "DecryptionError",
    "Decryptor",
    "EncryptedDataKey",
    "EncryptionError",
    "EncryptionMaterials",
    "Encryptor",
    "EnvelopeError",
    "ForbiddenSuiteError",
    "FrameAuthenticationError",
    "HeaderAuthenticationError",
    "HeaderLimitError",
    "MalformedFrameError",
    "MalformedHeaderError",
    "MessageHeader",
    "SignatureError",
    "TrailingDataError",
    "TruncatedMessageError",
    "UnsupportedSuiteError",
    "parse_header",
    "suite_by_id",
]
