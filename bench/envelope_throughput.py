"""Throughput of the envelope library alone (warm data-key cache) against raw AES-GCM.

For 1 KiB, 64 KiB, 1 MiB and 64 MiB messages: whole-message encrypt and decrypt
through ``MaterialsManager`` (warm caches, so no KMS call is timed; the KMS here is an
in-memory stand-in that only runs at warm-up), and, in the same run, pyca
``AESGCM.encrypt``/``decrypt`` over the same bytes as one call (the ceiling). Prints
MB/s, messages/s and the ratio library/raw. One core (no thread pool). Short run.

    .venv/bin/python bench/envelope_throughput.py [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.envelope.kms_client import GeneratedDataKey, UnwrappedKey, WrappedKey
from kmsgate.envelope.materials import MaterialsManager, decrypt_message, encrypt_message

SIZES = [("1 KiB", 1024), ("64 KiB", 64 * 1024), ("1 MiB", 1 << 20), ("64 MiB", 64 << 20)]
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/bench"


class MemoryKms:
    """Stand-in KMS for the warm-up only: wraps data keys with one AES-GCM key."""

    def __init__(self) -> None:
        self._aead = AESGCM(os.urandom(32))

    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None,
                                number_of_bytes: int) -> GeneratedDataKey:
        plaintext = os.urandom(number_of_bytes)
        nonce = os.urandom(12)
        return GeneratedDataKey(KEY_ARN, plaintext, nonce + self._aead.encrypt(nonce, plaintext, None))

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None,
                      key_id: str | None) -> UnwrappedKey:
        return UnwrappedKey(KEY_ARN, self._aead.decrypt(ciphertext_blob[:12], ciphertext_blob[12:], None))

    async def encrypt(self, *, key_id: str, plaintext: bytes,
                      encryption_context: Mapping[str, str] | None) -> WrappedKey:
        raise NotImplementedError


async def rate(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Calls per second of an async callable."""
    await fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or n < 3:
        await fn()
        n += 1
    return n / elapsed


async def main(seconds: float) -> None:
    manager = MaterialsManager(MemoryKms())
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    context = {"tenant": "bench"}
    print(f"{'size':>7} | {'enc MB/s':>9} {'raw MB/s':>9} {'ratio':>6} | {'dec MB/s':>9} {'raw MB/s':>9} "
          f"{'ratio':>6} | {'enc msg/s':>10} {'dec msg/s':>10}")
    for label, size in SIZES:
        plaintext = os.urandom(size)
        message = await encrypt_message(manager, plaintext, key_id=KEY_ARN, encryption_context=context)
        raw_ct = aead.encrypt(nonce, plaintext, None)

        async def enc() -> None:
            await encrypt_message(manager, plaintext, key_id=KEY_ARN, encryption_context=context)

        async def dec() -> None:
            await decrypt_message(manager, message)

        async def raw_enc() -> None:
            aead.encrypt(nonce, plaintext, None)

        async def raw_dec() -> None:
            aead.decrypt(nonce, raw_ct, None)

        budget = seconds * (2 if size >= 1 << 26 else 1)
        e, re_, d, rd = [await rate(f, budget) for f in (enc, raw_enc, dec, raw_dec)]
        mb = size / 1e6
        print(f"{label:>7} | {e * mb:>9.0f} {re_ * mb:>9.0f} {e / re_:>6.2f} | {d * mb:>9.0f} {rd * mb:>9.0f} "
              f"{d / rd:>6.2f} | {e:>10.0f} {d:>10.0f}")
    print(f"KMS calls during the run: {manager.stats.kms_calls} (warm-up only)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    asyncio.run(main(parser.parse_args().seconds))
