"""The KMS event loop's lag while RSA_2048 Sign requests are in flight: ``python -m bench.loop_lag``.

One process, no HTTP and no load generator: a ``KmsService`` on a fresh data directory and uvloop,
as a worker runs it. A probe task sleeps ``PROBE_SLEEP_S`` and records how late it wakes up, first
with nothing else to do, then while ``SIGNERS`` tasks each keep one RSA_2048 Sign in flight. A
late wake-up is time any other request on that loop (a GenerateDataKey) would wait. The two
conditions alternate for ``--rounds`` rounds; the medians over rounds are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop

from kmsgate.core.principal import account_root
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service

ACCOUNT_ID = "111122223333"
SIGNERS = 32
PROBE_SLEEP_S = 0.001


@dataclass(frozen=True, slots=True)
class Lag:
    mean_ms: float
    p99_ms: float
    max_ms: float
    signs_per_s: float


async def _probe(service: KmsService, key_id: str, signers: int, seconds: float) -> Lag:
    caller = account_root(ACCOUNT_ID)
    stop = False
    signs = 0

    async def sign_forever() -> None:
        nonlocal signs
        while not stop:
            await service.sign(caller=caller, key_id=key_id, message=b"m" * 64, signing_algorithm="RSASSA_PSS_SHA_256")
            signs += 1

    tasks = [asyncio.create_task(sign_forever()) for _ in range(signers)]
    await asyncio.sleep(0.2)  # the signers reach their steady state before the probe starts
    lags: list[float] = []
    start = time.perf_counter()
    signs_at_start = signs
    while time.perf_counter() - start < seconds:
        before = time.perf_counter()
        await asyncio.sleep(PROBE_SLEEP_S)
        lags.append((time.perf_counter() - before - PROBE_SLEEP_S) * 1000)
    elapsed = time.perf_counter() - start
    stop = True
    await asyncio.gather(*tasks)
    lags.sort()
    return Lag(statistics.fmean(lags), lags[int(0.99 * (len(lags) - 1))], lags[-1], (signs - signs_at_start) / elapsed)


async def _measure(data_dir: Path, rounds: int, seconds: float) -> dict[str, list[Lag]]:
    service = open_service(data_dir, RootKey(os.urandom(32)), region="us-east-1", account_id=ACCOUNT_ID)
    try:
        created = await service.create_key(caller=account_root(ACCOUNT_ID), key_spec="RSA_2048", key_usage="SIGN_VERIFY")
        key_id = str(created["key_metadata"]["key_id"])
        await _probe(service, key_id, 1, 0.2)  # warm: the first sign starts whatever runs signs
        results: dict[str, list[Lag]] = {"alone": [], "signing": []}
        for _ in range(rounds):
            results["alone"].append(await _probe(service, key_id, 0, seconds))
            results["signing"].append(await _probe(service, key_id, SIGNERS, seconds))
        return results
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="probe time per condition and round")
    options = parser.parse_args()
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs, {options.rounds} rounds of {options.seconds:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="kmsgate-loop-lag-") as directory:
        results = uvloop.run(_measure(Path(directory), options.rounds, options.seconds))
    for condition, lags in results.items():
        def median(field: str) -> float:
            return float(statistics.median(getattr(lag, field) for lag in lags))
        label = "alone" if condition == "alone" else f"{SIGNERS} RSA_2048 signs in flight"
        print(f"loop lag, {label:28}: mean {median('mean_ms'):5.2f} ms, p99 {median('p99_ms'):5.2f} ms, "
              f"max {median('max_ms'):5.1f} ms; {median('signs_per_s'):5.0f} signs/s")


if __name__ == "__main__":
    main()
