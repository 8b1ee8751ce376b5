"""Data-key cache limits, driven by an injected clock (no event loop, no KMS)."""

from __future__ import annotations

import pytest

from kmsgate.envelope import AES_256_GCM_HKDF_SHA512_COMMIT_KEY
from kmsgate.envelope.cache import (
    CacheLimits,
    DecryptCacheLimits,
    DecryptionKeyCache,
    EncryptionMaterialsCache,
    Partition,
    decrypt_cache_key,
)

from .conftest import FakeClock, raw_aes_materials

SUITE = AES_256_GCM_HKDF_SHA512_COMMIT_KEY
MATERIALS = raw_aes_materials(SUITE, {"a": "1"})
P = Partition.of("alias/x", {"a": "1"}, SUITE.suite_id)


def test_partition_ignores_context_order_but_not_content() -> None:
    assert Partition.of("k", {"a": "1", "b": "2"}, 1) == Partition.of("k", {"b": "2", "a": "1"}, 1)
    assert Partition.of("k", {"a": "1"}, 1) != Partition.of("k", {"a": "2"}, 1)
    assert Partition.of("k", {}, 0x0478) != Partition.of("k", {}, 0x0578)


def test_entry_expires_at_max_age(clock: FakeClock) -> None:
    cache = EncryptionMaterialsCache(CacheLimits(max_age_seconds=10), clock=clock)
    assert cache.acquire(P) is None
    entry = cache.put(P, MATERIALS)
    assert cache.claim(entry)
    clock.advance(9.9)
    assert cache.acquire(P) is entry
    clock.advance(0.1)
    assert cache.acquire(P) is None
    assert cache.stats.evictions["age"] == 1
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)


def test_entry_retires_after_max_messages(clock: FakeClock) -> None:
    cache = EncryptionMaterialsCache(CacheLimits(max_messages=3), clock=clock)
    entry = cache.put(P, MATERIALS)
    assert cache.claim(entry)  # message 1
    assert cache.acquire(P) is entry  # message 2
    assert cache.acquire(P) is entry  # message 3: served, then retired
    assert cache.acquire(P) is None
    assert entry.messages == 3
    assert cache.stats.evictions["messages"] == 1


def test_known_length_message_that_would_exceed_bytes_misses(clock: FakeClock) -> None:
    cache = EncryptionMaterialsCache(CacheLimits(max_bytes=1000), clock=clock)
    entry = cache.put(P, MATERIALS, plaintext_length=600)
    assert cache.claim(entry, 600)
    cache.record_bytes(entry, 600)
    assert cache.acquire(P, plaintext_length=300) is entry
    cache.record_bytes(entry, 300)
    assert cache.acquire(P, plaintext_length=101) is None
    assert cache.stats.evictions["bytes"] == 1


def test_stream_of_unknown_length_retires_entry_when_bytes_flow_past_limit(clock: FakeClock) -> None:
    cache = EncryptionMaterialsCache(CacheLimits(max_bytes=1000), clock=clock)
    entry = cache.put(P, MATERIALS)
    assert cache.claim(entry)
    for _ in range(9):
        cache.record_bytes(entry, 100)
    assert cache.acquire(P) is entry  # 900 bytes so far: still handed out
    cache.record_bytes(entry, 100)  # reaches 1000 while streaming
    assert cache.acquire(P) is None
    assert cache.stats.evictions["bytes"] == 1


def test_single_message_larger_than_byte_limit_is_not_cached(clock: FakeClock) -> None:
    cache = EncryptionMaterialsCache(CacheLimits(max_bytes=1000), clock=clock)
    entry = cache.put(P, MATERIALS, plaintext_length=5000)
    assert len(cache) == 0
    assert cache.claim(entry) and not cache.claim(entry)  # one message only


def test_capacity_evicts_least_recently_used(clock: FakeClock) -> None:
    cache = EncryptionMaterialsCache(CacheLimits(capacity=2), clock=clock)
    parts = [Partition.of(f"k{i}", {}, SUITE.suite_id) for i in range(3)]
    cache.put(parts[0], MATERIALS)
    cache.put(parts[1], MATERIALS)
    assert cache.acquire(parts[0]) is not None  # parts[1] is now least recently used
    cache.put(parts[2], MATERIALS)
    assert cache.acquire(parts[1]) is None
    assert cache.acquire(parts[0]) is not None and cache.acquire(parts[2]) is not None
    assert cache.stats.evictions["capacity"] == 1


def test_decryption_cache_age_and_capacity(clock: FakeClock) -> None:
    cache = DecryptionKeyCache(DecryptCacheLimits(max_age_seconds=5, capacity=2), clock=clock)
    keys = [decrypt_cache_key(SUITE.suite_id, MATERIALS.encrypted_data_keys, {"n": str(i)}) for i in range(3)]
    assert len(set(keys)) == 3
    cache.put(keys[0], b"k" * 32)
    assert cache.get(keys[0]) == b"k" * 32
    clock.advance(5)
    assert cache.get(keys[0]) is None
    for key in keys:
        cache.put(key, b"x" * 32)
    assert cache.get(keys[0]) is None and cache.get(keys[2]) == b"x" * 32
    assert cache.stats.evictions == {"age": 1, "messages": 0, "bytes": 0, "capacity": 1}


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CacheLimits(max_messages=0)
