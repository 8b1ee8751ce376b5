"""CryptoPool: small calls run inline on the event loop's thread, large ones in a worker
thread, and both give the same bytes as calling the encryptor or decryptor directly; the
queue is bounded, its depth reported, and a cancelled caller waits for its job. A lane runs
its blocks in order beside the caller, bounded, and reports what failed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading

import pytest

from kmsgate.envelope import AES_256_GCM_HKDF_SHA512_COMMIT_KEY, Decryptor, Encryptor
from kmsgate.envelope.pool import THRESHOLD_BYTES, CryptoPool, PoolSaturated

from .conftest import raw_aes_materials

MATERIALS = raw_aes_materials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY, {"tenant": "pool"})
MESSAGE_ID = bytes(range(32))
THRESHOLD = 4096


def test_inline_below_threshold_pooled_above_with_identical_results() -> None:
    small, large = bytes(range(256)) * 4, bytes(range(256)) * 64  # 1 KiB, 16 KiB

    async def run() -> None:
        pool = CryptoPool(threshold_bytes=THRESHOLD)
        loop_thread = threading.get_ident()
        seen: list[int] = []
        try:
            for data in (small, large):
                direct = Encryptor(MATERIALS, frame_length=1000, message_id=MESSAGE_ID).encrypt(data)
                encryptor = Encryptor(MATERIALS, frame_length=1000, message_id=MESSAGE_ID)

                def encrypt(chunk, encryptor=encryptor):  # type: ignore[no-untyped-def]
                    seen.append(threading.get_ident())
                    return encryptor.encrypt(chunk)

                message = await pool.run(encrypt, data)
                assert message == direct
                decryptor = Decryptor()
                decryptor.update(bytes(message))
                decryptor.set_data_key(MATERIALS.data_key)
                body_out = await pool.run(decryptor.update, b"")  # the buffered body: inline (empty input)
                assert body_out + decryptor.finalize() == data
        finally:
            pool.close()
        assert seen[0] == loop_thread  # 1 KiB: inline
        assert seen[1] != loop_thread  # 16 KiB: worker thread
        assert (pool.inline_calls, pool.pooled_calls) == (3, 1)

    asyncio.run(run())


def test_pooled_decrypt_equals_inline_decrypt() -> None:
    plaintext = bytes(range(256)) * 100
    message = bytes(Encryptor(MATERIALS, frame_length=1000).encrypt(plaintext))

    async def run() -> tuple[bytes, bytes]:
        outputs = []
        for threshold in (len(message) + 1, 0):  # first inline, then pooled
            pool = CryptoPool(threshold_bytes=threshold)
            try:
                decryptor = Decryptor()
                decryptor.update(message[:300])
                decryptor.set_data_key(MATERIALS.data_key)
                out = await pool.run(decryptor.update, message[300:])
                outputs.append(bytes(out + decryptor.finalize()))
            finally:
                pool.close()
            assert (pool.inline_calls, pool.pooled_calls) == ((1, 0) if threshold else (0, 1))
        return outputs[0], outputs[1]

    inline, pooled = asyncio.run(run())
    assert inline == pooled == plaintext


def test_default_threshold_is_the_measured_one() -> None:
    pool = CryptoPool()
    try:
        assert pool.threshold_bytes == THRESHOLD_BYTES == 2 * 1024 * 1024
    finally:
        pool.close()


def test_a_full_queue_refuses_at_once_and_depth_is_reported() -> None:
    depths: list[int] = []
    release = threading.Event()

    def blocked(chunk: bytes) -> int:
        release.wait(10)
        return len(chunk)

    async def run() -> None:
        pool = CryptoPool(threshold_bytes=0, max_workers=1, max_queued=2, on_depth=depths.append)
        try:
            first = asyncio.ensure_future(pool.run(blocked, b"a"))
            second = asyncio.ensure_future(pool.run(blocked, b"bb"))
            await asyncio.sleep(0.05)
            assert pool.depth == 2
            with pytest.raises(PoolSaturated):
                await pool.run(blocked, b"ccc")
            release.set()
            assert await asyncio.gather(first, second) == [1, 2]
            assert pool.depth == 0
        finally:
            release.set()
            pool.close()

    asyncio.run(run())
    assert depths == [1, 2, 1, 0]


def test_a_cancelled_caller_waits_until_its_job_has_finished() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def job(chunk: bytes) -> None:
        started.set()
        release.wait(10)
        finished.append(True)

    async def run() -> None:
        pool = CryptoPool(threshold_bytes=0)
        try:
            task = asyncio.ensure_future(pool.run(job, b"x"))
            await asyncio.to_thread(started.wait, 10)
            task.cancel()
            await asyncio.sleep(0.05)
            assert not task.done()  # still waiting for the thread: the job uses the caller's objects
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert finished == [True]
        finally:
            release.set()
            pool.close()

    asyncio.run(run())


def test_weight_decides_for_a_call_that_drains_a_buffer() -> None:
    async def run() -> tuple[int, int]:
        pool = CryptoPool(threshold_bytes=1024)
        try:
            await pool.run(len, b"", weight=4096)  # empty input, but 4 KiB of buffered work: pooled
            await pool.run(len, b"x" * 4096, weight=0)
            return pool.inline_calls, pool.pooled_calls
        finally:
            pool.close()

    assert asyncio.run(run()) == (1, 1)


def test_a_lane_runs_its_blocks_in_order_in_a_thread_while_the_caller_goes_on() -> None:
    release = threading.Event()
    seen: list[tuple[bytes, int]] = []

    def record(block: bytes) -> None:
        release.wait(10)
        seen.append((bytes(block), threading.get_ident()))

    async def run() -> None:
        pool = CryptoPool(threshold_bytes=0)
        try:
            lane = pool.lane(record, max_pending_bytes=1 << 20)
            for i in range(6):
                await lane.feed(bytes([i]) * 100)  # returns at once: the first block is still held in the thread
            assert seen == [] and pool.depth == 1
            release.set()
            await lane.finish()
            assert pool.depth == 0
        finally:
            release.set()
            pool.close()

    asyncio.run(run())
    assert [block[0] for block, _ in seen] == [0, 1, 2, 3, 4, 5]
    assert threading.get_ident() not in {thread for _, thread in seen}


def test_a_lane_with_max_pending_bytes_waiting_holds_the_caller_back() -> None:
    started, release = threading.Event(), threading.Event()

    def slow(block: bytes) -> None:
        started.set()
        release.wait(10)

    async def run() -> None:
        pool = CryptoPool(threshold_bytes=0)
        try:
            lane = pool.lane(slow, max_pending_bytes=250)
            await lane.feed(b"a" * 100)  # taken by the thread at once
            await asyncio.to_thread(started.wait, 10)
            await lane.feed(b"b" * 100)
            await lane.feed(b"c" * 100)  # 200 waiting: still room
            fourth = asyncio.ensure_future(lane.feed(b"d" * 100))  # 300 waiting: over the bound
            done, _ = await asyncio.wait({fourth}, timeout=0.1)
            assert not done
            release.set()
            await fourth
            await lane.finish()
        finally:
            release.set()
            pool.close()

    asyncio.run(run())


def test_a_lane_gives_the_same_digest_as_hashing_directly_and_small_blocks_stay_inline() -> None:
    blocks = [os.urandom(n) for n in (10, 5000, 20, 70_000, 3)]

    async def run(threshold: int) -> tuple[bytes, int, int]:
        pool = CryptoPool(threshold_bytes=threshold)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            lane = pool.lane(digest.update, weight=16, max_pending_bytes=1 << 20)
            for block in blocks:
                await lane.feed(block)
            await lane.finish()
            return digest.digest(), pool.inline_calls, pool.pooled_calls
        finally:
            pool.close()

    expected = hashlib.md5(b"".join(blocks), usedforsecurity=False).digest()
    assert asyncio.run(run(threshold=1 << 30)) == (expected, 5, 0)  # every block below the threshold
    digest, inline, pooled = asyncio.run(run(threshold=1000))
    assert digest == expected and inline >= 1 and pooled >= 1  # 10 x 16 < 1000: inline; 5000 x 16: pooled


def test_a_lane_raises_what_its_function_raised_and_frees_its_place() -> None:
    def failing(block: bytes) -> None:
        raise ValueError("bad block")

    async def run() -> None:
        pool = CryptoPool(threshold_bytes=0)
        try:
            lane = pool.lane(failing, max_pending_bytes=1 << 20)
            await lane.feed(b"x")
            with pytest.raises(ValueError, match="bad block"):
                await lane.finish()
            with pytest.raises(ValueError, match="bad block"):
                await lane.feed(b"y")
            assert pool.depth == 0
        finally:
            pool.close()

    asyncio.run(run())


def test_a_lane_takes_a_place_of_the_queue_and_is_refused_when_it_is_full() -> None:
    release = threading.Event()

    async def run() -> None:
        pool = CryptoPool(threshold_bytes=0, max_workers=1, max_queued=1)
        try:
            busy = asyncio.ensure_future(pool.run(lambda chunk: release.wait(10), b"a"))
            await asyncio.sleep(0)
            assert pool.depth == 1
            lane = pool.lane(len, max_pending_bytes=1 << 20)
            with pytest.raises(PoolSaturated):
                await lane.feed(b"b")
            release.set()
            await busy
            await lane.feed(b"c")
            await lane.finish()
            assert pool.depth == 0
        finally:
            release.set()
            pool.close()

    asyncio.run(run())
