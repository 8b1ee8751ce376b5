"""Where a PUT that keeps the body's MD5 (the S3 API's) does its hashing: large blocks off the event loop."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

from gateway_harness import ROOT, RunningGateway

from kmsgate.gateway.encryption import MD5_WEIGHT

BLOCK_BYTES = 256 * 1024  # the gateway's io_block_bytes: the blocks an S3 PUT's body arrives in


async def blocks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_the_md5_of_a_large_s3_put_is_computed_off_the_event_loop(running_gateway: RunningGateway) -> None:
    gateway = running_gateway.gateway
    data = os.urandom(4 * BLOCK_BYTES)
    seen: list[bytes] = []
    pooled, inline = gateway.pool.pooled_calls, gateway.pool.inline_calls
    result = await gateway.objects.put(ROOT, gateway.settings.default_bucket, "hashed", blocks(data, BLOCK_BYTES),
                                       key_id=None, encryption_context={}, length=len(data),
                                       describe=lambda md5: seen.append(md5) or b"")
    assert seen == [hashlib.md5(data).digest()] and result.md5 == seen[0]
    # Each 256 KiB block's MD5 runs in a thread (one job may take several blocks); only the
    # four encryptions of 256 KiB run inline.
    assert 1 <= gateway.pool.pooled_calls - pooled <= 4
    assert gateway.pool.inline_calls - inline == 4


async def test_a_small_s3_put_is_hashed_inline(running_gateway: RunningGateway) -> None:
    gateway = running_gateway.gateway
    data = os.urandom(1024)
    assert len(data) * MD5_WEIGHT < gateway.pool.threshold_bytes
    pooled = gateway.pool.pooled_calls
    result = await gateway.objects.put(ROOT, gateway.settings.default_bucket, "small", blocks(data, len(data)),
                                       key_id=None, encryption_context={}, length=len(data), describe=lambda md5: b"")
    assert result.md5 == hashlib.md5(data).digest()
    assert gateway.pool.pooled_calls == pooled  # a hand-off would cost more than hashing 1 KiB
