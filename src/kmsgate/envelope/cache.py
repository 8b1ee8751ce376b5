"""Data-key caches: encryption materials by partition, unwrapped data keys by encrypted data key.

Pure and synchronous; time comes from an injected ``clock`` (seconds, monotonic).

Encryption side. A partition is (CMK id as requested, encryption context, suite).
An entry is handed out until the first limit is reached:

- ``max_age_seconds = 300``: bounds how long encryption continues under a data key
  after its CMK is disabled or its grants change, and how long one plaintext data key
  lives in memory; 5 minutes keeps a steady partition at one KMS call per 5 minutes.
- ``max_messages = 100_000``: bounds how many messages one leaked data key exposes.
  Each message draws its own random 32-byte message id and so its own HKDF-derived
  key, so reuse never repeats a (key, nonce) pair; the limit is about blast radius,
  not about GCM nonce limits.
- ``max_bytes = 64 GiB``: the same blast-radius bound by volume. Bytes are counted
  as they flow (``record_bytes``), so streams of unknown length use the cache: once an
  entry's count reaches the limit it is no longer handed out, while the streams already
  using it finish under it (each is a separate message with its own derived key).
- ``capacity = 1000`` entries, least recently used evicted first.

Decryption side: unwrapped data keys keyed by (suite, encrypted data keys,
serialized context), bounded by age (300 s) and capacity (1000), so repeated reads of
objects written under one cached key make one KMS call.

Counters (``CacheStats``) record hits, misses, KMS calls and evictions by reason:
``age``, ``messages``, ``bytes``, ``capacity``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

from .context import serialize_context
from .data_keys import EncryptedDataKey, EncryptionMaterials
from .header import MessageHeader

Clock = Callable[[], float]

EVICTION_REASONS = ("age", "messages", "bytes", "capacity")


@dataclass(frozen=True, slots=True)
class CacheLimits:
    """Limits of the encryption-materials cache (see the module docstring for the reasoning)."""

    max_age_seconds: float = 300.0
    max_messages: int = 100_000
    max_bytes: int = 64 * 2**30
    capacity: int = 1000

    def __post_init__(self) -> None:
        if self.max_age_seconds <= 0 or self.max_messages < 1 or self.max_bytes < 1 or self.capacity < 1:
            raise ValueError("cache limits must be positive")


@dataclass(frozen=True, slots=True)
class DecryptCacheLimits:
    max_age_seconds: float = 300.0
    capacity: int = 1000

    def __post_init__(self) -> None:
        if self.max_age_seconds <= 0 or self.capacity < 1:
            raise ValueError("cache limits must be positive")


@dataclass(slots=True)
class CacheStats:
    """Monotonic counters for metrics."""

    hits: int = 0
    misses: int = 0
    kms_calls: int = 0
    evictions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVICTION_REASONS, 0))


@dataclass(frozen=True, slots=True)
class Partition:
    """What an encryption-materials entry may be shared across."""

    key_id: str
    context: tuple[tuple[str, str], ...]
    suite_id: int

    @classmethod
    def of(cls, key_id: str, encryption_context: Mapping[str, str], suite_id: int) -> Partition:
        return cls(key_id, tuple(sorted(encryption_context.items())), suite_id)


@dataclass(slots=True, eq=False)
class CacheEntry:
    """One cached set of encryption materials and its usage so far."""

    materials: EncryptionMaterials
    created: float
    messages: int = 0
    bytes: int = 0
    partition: Partition | None = None


class EncryptionMaterialsCache:
    """LRU cache of encryption materials with age, message and byte limits."""

    def __init__(self, limits: CacheLimits | None = None, *, clock: Clock = time.monotonic,
                 stats: CacheStats | None = None) -> None:
        self.limits = limits or CacheLimits()
        self.clock = clock
        self.stats = stats or CacheStats()
        self._entries: OrderedDict[Partition, CacheEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def acquire(self, partition: Partition, plaintext_length: int | None = None) -> CacheEntry | None:
        """A live entry for one more message (counted now), or ``None`` on a miss."""
        entry = self._entries.get(partition)
        if entry is not None and self.claim(entry, plaintext_length):
            self.stats.hits += 1
            return entry
        self.stats.misses += 1
        return None

    def claim(self, entry: CacheEntry, plaintext_length: int | None = None) -> bool:
        """Count one more message under ``entry`` if its limits allow; retire it when a
        limit is reached. An entry that was never cached (see ``put``) serves one message."""
        partition = entry.partition
        if partition is None or self._entries.get(partition) is not entry:
            if entry.messages == 0 and partition is None:
                entry.messages = 1
                return True
            return False
        limits = self.limits
        if self.clock() - entry.created >= limits.max_age_seconds:
            self._evict(partition, "age")
            return False
        if plaintext_length is not None and entry.bytes + plaintext_length > limits.max_bytes:
            self._evict(partition, "bytes")
            return False
        self._entries.move_to_end(partition)
        entry.messages += 1
        if entry.messages >= limits.max_messages:
            self._evict(partition, "messages")
        return True

    def put(self, partition: Partition, materials: EncryptionMaterials,
            plaintext_length: int | None = None) -> CacheEntry:
        """Cache fresh, not yet used materials (replacing any entry of the partition).
        Materials that one message alone would exhaust are returned uncached, for one use."""
        entry = CacheEntry(materials, created=self.clock(), messages=0)
        limits = self.limits
        if limits.max_messages <= 1 or (plaintext_length is not None and plaintext_length >= limits.max_bytes):
            return entry
        entry.partition = partition
        if partition in self._entries:
            old = self._entries.pop(partition)  # a refresh replaces the entry: not an eviction
            old.partition = None
        self._entries[partition] = entry
        while len(self._entries) > limits.capacity:
            oldest = next(iter(self._entries))
            self._evict(oldest, "capacity")
        return entry

    def record_bytes(self, entry: CacheEntry, count: int) -> None:
        """Count plaintext encrypted under ``entry``; retire it at the byte limit."""
        entry.bytes += count
        partition = entry.partition
        if entry.bytes >= self.limits.max_bytes and partition is not None:
            if self._entries.get(partition) is entry:
                self._evict(partition, "bytes")

    def age(self, entry: CacheEntry) -> float:
        return self.clock() - entry.created

    def _evict(self, partition: Partition, reason: str) -> None:
        entry = self._entries.pop(partition, None)
        if entry is not None:
            entry.partition = None
            self.stats.evictions[reason] += 1


DecryptKey = tuple[int, tuple[tuple[str, bytes, bytes], ...], bytes]


def decrypt_cache_key(suite_id: int, encrypted_data_keys: tuple[EncryptedDataKey, ...],
                      encryption_context: Mapping[str, str]) -> DecryptKey:
    """The decryption-cache key: what must match for a cached data key to be reused."""
    edks = tuple((e.provider_id, e.provider_info, e.ciphertext) for e in encrypted_data_keys)
    return suite_id, edks, serialize_context(encryption_context)


def header_cache_key(header: MessageHeader) -> tuple[int, bytes]:
    """The decryption-cache key of a header: its suite id and the header bytes from the
    AAD length through the last encrypted data key. Those bytes are the canonical
    encoding of exactly what ``decrypt_cache_key`` combines (the parser rejects unsorted
    or duplicated context keys), so two headers share a key exactly when that function
    gives them equal keys; slicing them is cheaper than re-serializing the context."""
    start = 3 + header.suite.message_id_length if header.version == 2 else 4 + header.suite.message_id_length
    trailer = 1 + 4 + header.suite.commitment_length if header.version == 2 else 1 + 4 + 1 + 4
    return header.suite.suite_id, header.header_bytes[start : len(header.header_bytes) - trailer]


class DecryptionKeyCache:
    """LRU cache of unwrapped data keys, bounded by age and capacity."""

    def __init__(self, limits: DecryptCacheLimits | None = None, *, clock: Clock = time.monotonic,
                 stats: CacheStats | None = None) -> None:
        self.limits = limits or DecryptCacheLimits()
        self.clock = clock
        self.stats = stats or CacheStats()
        self._entries: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> bytes | None:
        found = self._entries.get(key)
        if found is not None and self.clock() - found[0] >= self.limits.max_age_seconds:
            del self._entries[key]
            self.stats.evictions["age"] += 1
            found = None
        if found is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        self._entries.move_to_end(key)
        return found[1]

    def put(self, key: Hashable, data_key: bytes) -> None:
        self._entries[key] = (self.clock(), data_key)
        self._entries.move_to_end(key)
        while len(self._entries) > self.limits.capacity:
            self._entries.popitem(last=False)
            self.stats.evictions["capacity"] += 1
