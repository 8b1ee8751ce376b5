"""Throughput of the envelope library alone (warm data-key cache) against raw AES-GCM.

For 1 KiB, 64 KiB, 1 MiB and 64 MiB messages: whole-message encrypt and decrypt
through ``MaterialsManager`` (warm caches, so no KMS call is timed; the KMS here is an
in-memory stand-in that only runs at warm-up), and, in the same run, pyca
``AESGCM.encrypt``/``decrypt`` over the same bytes as one call (the ceiling). Prints
MB/s, messages/s and the ratio library/raw. One core (no thread pool). Short run.

The machine is shared, so library and ceiling are measured in alternating short
rounds; each figure is the median over the rounds, and the ratio is the median of the
per-round ratios (so load that comes and goes hits both sides of a ratio alike).

    PYTHONPATH=src .venv/bin/python bench/envelope_throughput.py [--seconds 0.5] [--rounds 5]
        [--frame-length BYTES]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.envelope.encryptor import FRAME_LENGTH
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


async def main(seconds: float, rounds: int, frame_length: int) -> None:
    manager = MaterialsManager(MemoryKms())
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    context = {"tenant": "bench"}
    print(f"frame length {frame_length} bytes; {rounds} alternating rounds per size, medians")
    print(f"{'size':>7} | {'enc MB/s':>9} {'raw MB/s':>9} {'ratio':>6} | {'dec MB/s':>9} {'raw MB/s':>9} "
          f"{'ratio':>6} | {'enc msg/s':>10} {'dec msg/s':>10}")
    for label, size in SIZES:
        plaintext = os.urandom(size)
        message = await encrypt_message(manager, plaintext, key_id=KEY_ARN, encryption_context=context,
                                        frame_length=frame_length)
        raw_ct = aead.encrypt(nonce, plaintext, None)

        async def enc() -> None:
            await encrypt_message(manager, plaintext, key_id=KEY_ARN, encryption_context=context,
                                  frame_length=frame_length)

        async def dec() -> None:
            await decrypt_message(manager, message)

        async def raw_enc() -> None:
            aead.encrypt(nonce, plaintext, None)

        async def raw_dec() -> None:
            aead.decrypt(nonce, raw_ct, None)

        budget = seconds * (2 if size >= 1 << 26 else 1) / rounds
        samples: list[list[float]] = [[], [], [], []]
        for _ in range(rounds):
            for series, fn in zip(samples, (enc, raw_enc, dec, raw_dec)):
                series.append(await rate(fn, budget))
        e, re_, d, rd = (statistics.median(series) for series in samples)
        enc_ratio = statistics.median(a / b for a, b in zip(samples[0], samples[1]))
        dec_ratio = statistics.median(a / b for a, b in zip(samples[2], samples[3]))
        mb = size / 1e6
        print(f"{label:>7} | {e * mb:>9.0f} {re_ * mb:>9.0f} {enc_ratio:>6.2f} | {d * mb:>9.0f} {rd * mb:>9.0f} "
              f"{dec_ratio:>6.2f} | {e:>10.0f} {d:>10.0f}")
    print(f"KMS calls during the run: {manager.stats.kms_calls} (warm-up only)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement, over all rounds")
    parser.add_argument("--rounds", type=int, default=5, help="alternating library/ceiling rounds")
    parser.add_argument("--frame-length", type=int, default=FRAME_LENGTH, help="frame length of the messages")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds, args.frame_length))
