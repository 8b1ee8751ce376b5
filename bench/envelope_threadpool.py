"""Measure where AES-GCM should leave the event loop for a thread pool.

For each size: the inline cost of one ``Encryptor.update`` and ``Decryptor.update``
(median of short rounds), raw AESGCM ``encrypt_into`` on the same bytes, and the cost
of one asyncio ``run_in_executor`` hand-off of a no-op to a 2-thread pool (median of
rounds, measured between the size rows so load drift shows). The threshold printed
is the smallest size whose work is at least ``RATIO`` times the hand-off: below it,
handing off would add more than 1/RATIO to the cost of the work, and the event loop is
blocked for less than a few hand-offs anyway. ``kmsgate.envelope.pool.THRESHOLD_BYTES``
records the result. Short run (~10 s).

    PYTHONPATH=src .venv/bin/python bench/envelope_threadpool.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.envelope import (
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    Decryptor,
    EncryptedDataKey,
    EncryptionMaterials,
    Encryptor,
    parse_header,
)
from kmsgate.envelope.header import DecryptPolicy

SIZES = [4096, 16384, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304]
RATIO = 4.0
FRAME_LENGTH = 64 * 1024


def per_call(fn: Callable[[], object], rounds: int = 7, budget: float = 0.03) -> float:
    """Median over ``rounds`` of the mean seconds per call within ``budget`` seconds."""
    fn()
    results = []
    for _ in range(rounds):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < budget or n < 2:
            fn()
            n += 1
        results.append(elapsed / n)
    return statistics.median(results)


async def handoff_cost(executor: ThreadPoolExecutor, rounds: int = 7, calls: int = 300) -> float:
    loop = asyncio.get_running_loop()
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            await loop.run_in_executor(executor, int)
        results.append((time.perf_counter() - start) / calls)
    return statistics.median(results)


def main() -> None:
    materials = EncryptionMaterials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY, os.urandom(32),
                                    (EncryptedDataKey("aws-kms", b"arn", b"x" * 180),), {})
    aead = AESGCM(os.urandom(32))
    executor = ThreadPoolExecutor(max_workers=2)
    handoffs = []
    threshold = None
    print(f"{'size':>9} {'handoff us':>10} {'enc us':>8} {'dec us':>8} {'raw us':>8} {'work/handoff':>12}")
    for size in SIZES:
        handoff = asyncio.run(handoff_cost(executor))
        handoffs.append(handoff)
        data = os.urandom(size)
        out = bytearray(size + 16)
        raw = per_call(lambda: aead.encrypt_into(b"\0" * 12, data, b"", out))
        encryptor = Encryptor(materials, frame_length=FRAME_LENGTH)
        encryptor.update(b"")  # the header goes out first
        enc = per_call(lambda: encryptor.update(data))
        message = bytes(Encryptor(materials, frame_length=FRAME_LENGTH).encrypt(data))
        header, header_length = parse_header(message, DecryptPolicy())
        assert header is not None  # a whole message always holds its header
        body = memoryview(message)[header_length:]

        def decrypt() -> None:
            decryptor = Decryptor.for_frames(header, materials.data_key, 1)
            decryptor.update(body)

        dec = per_call(decrypt)
        ratio = min(enc, dec) / handoff
        if threshold is None and ratio >= RATIO:
            threshold = size
        print(f"{size:>9} {handoff * 1e6:>10.1f} {enc * 1e6:>8.1f} {dec * 1e6:>8.1f} {raw * 1e6:>8.1f} {ratio:>12.1f}")
    executor.shutdown()
    print(f"hand-off median over the run: {statistics.median(handoffs) * 1e6:.1f} us")
    print(f"threshold (work >= {RATIO:g}x hand-off): {threshold} bytes")


if __name__ == "__main__":
    main()
