"""CryptoPool: small calls run inline on the event loop's thread, large ones in a worker
thread, and both give the same bytes as calling the encryptor or decryptor directly; the
queue is bounded, its depth reported, and a cancelled caller waits for its job."""

from __future__ import annotations

import asyncio
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
