"""A bucket's default-encryption document is kept briefly: a change made through the same service
is followed at once, one made elsewhere (another worker) within ENCRYPTION_CACHE_SECONDS."""

from __future__ import annotations

from typing import Any

import pytest
from gateway_harness import ROOT, RunningGateway

from kmsgate.gateway.bucket_service import ENCRYPTION_CACHE_SECONDS, BucketService
from kmsgate.gateway.storage.base import NoSuchBucket

BUCKET = "cached-encryption"
KEY_A = b'{"key": "a"}'
KEY_B = b'{"key": "b"}'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count_config_reads(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    storage = gateway.storage
    original = storage.get_bucket_config

    async def counted(bucket: str, name: str) -> bytes | None:
        reads.append(bucket)
        result: bytes | None = await original(bucket, name)
        return result

    monkeypatch.setattr(storage, "get_bucket_config", counted)
    return reads


async def test_a_kept_document_is_not_read_again_until_it_is_old(running_gateway: RunningGateway,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = running_gateway.gateway
    clock = Clock()
    buckets = BucketService(gateway, clock=clock)
    await buckets.create_bucket(ROOT, BUCKET)
    await buckets.put_encryption(ROOT, BUCKET, KEY_A)
    reads = count_config_reads(gateway, monkeypatch)
    assert [await buckets.default_encryption(BUCKET) for _ in range(3)] == [KEY_A] * 3
    assert reads == [BUCKET]
    clock.now += ENCRYPTION_CACHE_SECONDS
    assert await buckets.default_encryption(BUCKET) == KEY_A
    assert reads == [BUCKET, BUCKET]


async def test_a_change_through_the_same_service_is_followed_at_once(running_gateway: RunningGateway) -> None:
    gateway = running_gateway.gateway
    buckets = BucketService(gateway, clock=Clock())  # the clock never moves: only the change can refresh
    await buckets.create_bucket(ROOT, BUCKET)
    assert await buckets.default_encryption(BUCKET) is None
    await buckets.put_encryption(ROOT, BUCKET, KEY_A)
    assert await buckets.default_encryption(BUCKET) == KEY_A
    await buckets.put_encryption(ROOT, BUCKET, KEY_B)
    assert await buckets.default_encryption(BUCKET) == KEY_B
    await buckets.delete_encryption(ROOT, BUCKET)
    assert await buckets.default_encryption(BUCKET) is None
    await buckets.delete_bucket(ROOT, BUCKET)
    with pytest.raises(NoSuchBucket):
        await buckets.default_encryption(BUCKET)


async def test_a_change_made_elsewhere_is_followed_within_the_cache_time(running_gateway: RunningGateway) -> None:
    gateway = running_gateway.gateway
    clock = Clock()
    this_worker, other_worker = BucketService(gateway, clock=clock), BucketService(gateway, clock=clock)
    await this_worker.create_bucket(ROOT, BUCKET)
    await this_worker.put_encryption(ROOT, BUCKET, KEY_A)
    assert await other_worker.default_encryption(BUCKET) == KEY_A
    await this_worker.put_encryption(ROOT, BUCKET, KEY_B)
    clock.now += ENCRYPTION_CACHE_SECONDS / 2
    assert await other_worker.default_encryption(BUCKET) == KEY_A  # still within the cache time
    clock.now += ENCRYPTION_CACHE_SECONDS / 2
    assert await other_worker.default_encryption(BUCKET) == KEY_B


async def test_a_read_overtaken_by_a_change_is_not_kept(running_gateway: RunningGateway,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = running_gateway.gateway
    buckets = BucketService(gateway, clock=Clock())
    await buckets.create_bucket(ROOT, BUCKET)
    await buckets.put_encryption(ROOT, BUCKET, KEY_A)
    storage = gateway.storage
    original = storage.get_bucket_config

    async def read_then_changed(bucket: str, name: str) -> bytes | None:
        document: bytes | None = await original(bucket, name)  # reads KEY_A ...
        await buckets.put_encryption(ROOT, BUCKET, KEY_B)  # ... and a change lands before it returns
        return document

    monkeypatch.setattr(storage, "get_bucket_config", read_then_changed)
    assert await buckets.default_encryption(BUCKET) == KEY_A
    monkeypatch.setattr(storage, "get_bucket_config", original)
    assert await buckets.default_encryption(BUCKET) == KEY_B
