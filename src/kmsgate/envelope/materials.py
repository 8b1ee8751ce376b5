"""Encryption and decryption materials from the KMS, through the data-key caches.

``MaterialsManager`` turns (CMK, encryption context, suite) into encryption
materials, making a KMS ``GenerateDataKey`` call only on a cache miss; concurrent
misses for one partition share a single call (single flight), and an entry close to
its age limit is refreshed in the background so steady traffic never waits on the
KMS. On the read side it unwraps a header's encrypted data key with KMS ``Decrypt``
(again single-flight and cached). ``encrypt_message``/``decrypt_message`` are the
whole-message conveniences; streams use ``encryptor()`` and ``open_decryptor()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from kmsgate.core.errors import AccessDeniedError, ClientError

from . import signing
from .cache import (
    CacheEntry,
    CacheLimits,
    CacheStats,
    Clock,
    DecryptCacheLimits,
    DecryptionKeyCache,
    EncryptionMaterialsCache,
    Partition,
    header_cache_key,
)
from .context import PUBLIC_KEY_FIELD, check_user_context
from .data_keys import KMS_PROVIDER_ID, EncryptedDataKey, EncryptionMaterials
from .decryptor import Decryptor
from .encryptor import FRAME_LENGTH, Encryptor
from .errors import DataKeyUnavailableError, EncryptionError, TruncatedMessageError
from .header import DecryptPolicy, MessageHeader, parse_header
from .kms_client import KmsClient
from .singleflight import SingleFlight
from .suites import DEFAULT_SUITE, ENCRYPT_SUITES, AlgorithmSuite

REFRESH_BEFORE_SECONDS = 30.0  # refresh an entry this long before its max age
MAX_MISS_ROUNDS = 8  # shared-miss rounds before one waiter fetches materials of its own
_DEFAULT_POLICY = DecryptPolicy()


@dataclass(frozen=True, slots=True)
class DecryptedMessage:
    plaintext: bytearray
    header: MessageHeader


class MaterialsManager:
    """Caching source of encryption materials and data keys. One per event loop."""

    def __init__(
        self,
        kms: KmsClient,
        *,
        limits: CacheLimits | None = None,
        decrypt_limits: DecryptCacheLimits | None = None,
        clock: Clock = time.monotonic,
        refresh_before_seconds: float | None = REFRESH_BEFORE_SECONDS,
        caching: bool = True,
    ) -> None:
        self.kms = kms
        self.stats = CacheStats()
        self.cache = EncryptionMaterialsCache(limits, clock=clock, stats=self.stats)
        self.decrypt_cache = DecryptionKeyCache(decrypt_limits, clock=clock, stats=self.stats)
        self.refresh_before_seconds = refresh_before_seconds
        self.caching = caching
        self._generate: SingleFlight[CacheEntry] = SingleFlight()
        self._unwrap: SingleFlight[bytes] = SingleFlight()
        self._refreshes: set[asyncio.Task[CacheEntry]] = set()

    async def aclose(self) -> None:
        """Cancel and await background refreshes."""
        tasks = list(self._refreshes)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- encryption ------------------------------------------------------------------------

    async def encryption_materials(
        self, *, key_id: str, encryption_context: Mapping[str, str] | None = None,
        suite: AlgorithmSuite = DEFAULT_SUITE, plaintext_length: int | None = None,
    ) -> CacheEntry:
        """Materials for one message, as a cache entry whose usage the caller reports
        through ``self.cache.record_bytes`` (``encryptor()`` does this)."""
        context = dict(encryption_context or {})
        check_user_context(context)
        if suite.suite_id not in ENCRYPT_SUITES:
            raise EncryptionError("kmsgate encrypts with suites 0x0478 and 0x0578 only")
        if plaintext_length is not None and plaintext_length < 0:
            raise EncryptionError("plaintext length must not be negative")
        partition = Partition.of(key_id, context, suite.suite_id)
        if not self.caching:
            self.stats.misses += 1
            materials = await self._generate_materials(key_id, context, suite)
            return CacheEntry(materials, created=0.0, messages=1)
        entry = self.cache.acquire(partition, plaintext_length)
        if entry is not None:
            self._maybe_refresh(partition, entry, key_id, context, suite, plaintext_length)
            return entry
        for _ in range(MAX_MISS_ROUNDS):
            # Concurrent misses share one GenerateDataKey; each waiter then claims a use,
            # so the message and byte limits hold for every waiter too.
            entry = await self._generate.do(partition, self._fill(partition, key_id, context, suite, plaintext_length))
            if self.cache.claim(entry, plaintext_length):
                return entry
            entry = self.cache.acquire(partition, plaintext_length)
            if entry is not None:
                return entry
        # Limits so tight that shared materials are always used up first: one call per message.
        materials = await self._generate_materials(key_id, context, suite)
        return CacheEntry(materials, created=0.0, messages=1)

    def _fill(self, partition: Partition, key_id: str, context: dict[str, str], suite: AlgorithmSuite,
              plaintext_length: int | None) -> Callable[[], Awaitable[CacheEntry]]:
        async def fill() -> CacheEntry:
            materials = await self._generate_materials(key_id, context, suite)
            return self.cache.put(partition, materials, plaintext_length)

        return fill

    async def encryptor(
        self, *, key_id: str, encryption_context: Mapping[str, str] | None = None,
        suite: AlgorithmSuite = DEFAULT_SUITE, frame_length: int = FRAME_LENGTH,
        plaintext_length: int | None = None,
    ) -> Encryptor:
        """A streaming encryptor whose plaintext bytes are counted against its cache entry."""
        entry = await self.encryption_materials(
            key_id=key_id, encryption_context=encryption_context, suite=suite, plaintext_length=plaintext_length
        )
        cache = self.cache

        def count(n: int) -> None:
            cache.record_bytes(entry, n)

        return Encryptor(entry.materials, frame_length=frame_length, on_plaintext=count)

    async def _generate_materials(self, key_id: str, context: dict[str, str],
                                  suite: AlgorithmSuite) -> EncryptionMaterials:
        signing_key = None
        full_context = dict(context)
        if suite.signed:
            signing_key = signing.generate_signing_key()
            full_context[PUBLIC_KEY_FIELD] = signing.public_key_field(signing_key)
        self.stats.kms_calls += 1
        result = await self.kms.generate_data_key(
            key_id=key_id, encryption_context=full_context, number_of_bytes=suite.data_key_length
        )
        if len(result.plaintext) != suite.data_key_length:
            raise EncryptionError("KMS returned a data key of the wrong length")
        edk = EncryptedDataKey(KMS_PROVIDER_ID, result.key_id.encode("utf-8"), result.ciphertext_blob)
        return EncryptionMaterials(suite, result.plaintext, (edk,), full_context, signing_key)

    def _maybe_refresh(self, partition: Partition, entry: CacheEntry, key_id: str,
                       context: dict[str, str], suite: AlgorithmSuite, plaintext_length: int | None) -> None:
        """Start a background GenerateDataKey for an entry near its max age, so that
        steady traffic keeps hitting the cache instead of waiting on the KMS."""
        window = self.refresh_before_seconds
        if window is None or entry.partition is None or self._generate.in_flight(partition):
            return
        if self.cache.age(entry) < self.cache.limits.max_age_seconds - window:
            return
        task = self._generate.start(partition, self._fill(partition, key_id, context, suite, None))
        self._refreshes.add(task)
        task.add_done_callback(self._refresh_done)

    def _refresh_done(self, task: asyncio.Task[CacheEntry]) -> None:
        self._refreshes.discard(task)
        if not task.cancelled():
            task.exception()  # a failed refresh is retried by the next miss; nothing cached

    # -- decryption ------------------------------------------------------------------------

    async def data_key(self, header: MessageHeader) -> bytes:
        """Unwrap the data key of ``header`` via KMS (cached); raise ``DataKeyUnavailableError``
        when no encrypted data key can be decrypted. KMS availability errors and
        ``AccessDeniedError`` propagate as ``KmsError``."""
        key = header_cache_key(header)
        if self.caching:
            cached = self.decrypt_cache.get(key)
            if cached is not None:
                return cached
        data_key = await self._unwrap.do(key, lambda: self._unwrap_data_key(header))
        if self.caching:
            self.decrypt_cache.put(key, data_key)
        return data_key

    async def _unwrap_data_key(self, header: MessageHeader) -> bytes:
        context = dict(header.encryption_context)
        last: Exception | None = None
        for edk in header.encrypted_data_keys:
            if edk.provider_id != KMS_PROVIDER_ID:
                continue
            try:
                key_arn = edk.provider_info.decode("utf-8")
            except UnicodeDecodeError:
                continue
            self.stats.kms_calls += 1
            try:
                result = await self.kms.decrypt(ciphertext_blob=edk.ciphertext, encryption_context=context,
                                                key_id=key_arn)
            except AccessDeniedError:
                raise
            except ClientError as exc:
                last = exc
                continue
            if result.key_id != key_arn or len(result.plaintext) != header.suite.data_key_length:
                continue
            return result.plaintext
        raise DataKeyUnavailableError("no encrypted data key could be decrypted") from last

    async def open_decryptor(self, decryptor: Decryptor) -> None:
        """Supply the data key to a decryptor whose header has been parsed."""
        if decryptor.header is None or not decryptor.needs_data_key:
            raise ValueError("decryptor is not waiting for a data key")
        decryptor.set_data_key(await self.data_key(decryptor.header))


async def encrypt_message(
    manager: MaterialsManager, plaintext: bytes, *, key_id: str,
    encryption_context: Mapping[str, str] | None = None, suite: AlgorithmSuite = DEFAULT_SUITE,
    frame_length: int = FRAME_LENGTH,
) -> bytearray:
    """Encrypt a whole message in memory."""
    encryptor = await manager.encryptor(key_id=key_id, encryption_context=encryption_context, suite=suite,
                                        frame_length=frame_length, plaintext_length=len(plaintext))
    return encryptor.encrypt(plaintext)


async def decrypt_message(
    manager: MaterialsManager, message: bytes | bytearray | memoryview, *, policy: DecryptPolicy | None = None,
) -> DecryptedMessage:
    """Decrypt a whole message in memory; every failure is a ``DecryptionError``
    (or a ``KmsError`` when the KMS itself is unavailable or denies access). The body
    is decrypted straight from ``message``, which is not copied."""
    policy = policy or _DEFAULT_POLICY
    with memoryview(message) as view:
        header, consumed = parse_header(view, policy)
        if header is None:
            raise TruncatedMessageError("message ended inside its header")
        decryptor = Decryptor.for_header(header, policy)
        await manager.open_decryptor(decryptor)
        out = decryptor.update(view[consumed:])
    if not decryptor.done:
        decryptor.finalize()  # raises: the message ended early (a whole message leaves nothing buffered)
    return DecryptedMessage(out, header)
