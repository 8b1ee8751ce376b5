"""Measure where AES-GCM should leave the event loop for a thread pool.

Prints, per message size, the inline cost of one ``Encryptor.update`` and the cost of
handing a no-op to a ``ThreadPoolExecutor`` from asyncio, and the size at which the
AES-GCM work is at least 4x the hand-off (the threshold kmsgate.envelope.pool uses).
Also reports raw AESGCM ``encrypt_into`` throughput for the ratio. Short run (~10 s).

    .venv/bin/python bench/envelope_threadpool.py
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.envelope import AES_256_GCM_HKDF_SHA512_COMMIT_KEY, EncryptedDataKey, EncryptionMaterials, Encryptor

SIZES = [1024, 4096, 16384, 65536, 262144, 1048576]


def per_call(fn, budget: float = 0.4) -> float:  # type: ignore[no-untyped-def]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


async def handoff_cost(executor: ThreadPoolExecutor, rounds: int = 3000) -> float:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for _ in range(rounds):
        await loop.run_in_executor(executor, int)
    return (time.perf_counter() - start) / rounds


def main() -> None:
    materials = EncryptionMaterials(AES_256_GCM_HKDF_SHA512_COMMIT_KEY, os.urandom(32),
                                    (EncryptedDataKey("aws-kms", b"arn", b"x" * 180),), {})
    with ThreadPoolExecutor(max_workers=2) as executor:
        handoff = asyncio.run(handoff_cost(executor))
    print(f"thread-pool hand-off: {handoff * 1e6:.1f} us")
    aead = AESGCM(os.urandom(32))
    threshold = None
    print(f"{'size':>9} {'update us':>10} {'raw us':>8} {'work/handoff':>12}")
    for size in SIZES:
        data = os.urandom(size)
        out = bytearray(size + 16)
        raw = per_call(lambda: aead.encrypt_into(b"\0" * 12, data, b"", out))
        encryptor = Encryptor(materials)
        update = per_call(lambda: encryptor.update(data))
        ratio = update / handoff
        if threshold is None and ratio >= 4:
            threshold = size
        print(f"{size:>9} {update * 1e6:>10.1f} {raw * 1e6:>8.1f} {ratio:>12.1f}")
    print(f"threshold (work >= 4x hand-off): {threshold} bytes")


if __name__ == "__main__":
    main()
