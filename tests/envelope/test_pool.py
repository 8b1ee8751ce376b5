"""CryptoPool: small calls run inline on the event loop's thread, large ones in a worker
thread, and both give the same bytes as calling the encryptor or decryptor directly."""

from __future__ import annotations

import asyncio
import threading

from kmsgate.envelope import AES_256_GCM_HKDF_SHA512_COMMIT_KEY, Decryptor, Encryptor
from kmsgate.envelope.pool import THRESHOLD_BYTES, CryptoPool

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
