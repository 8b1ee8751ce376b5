"""The scenario registry: name, function, planned load runs (for the progress bar and budget)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.context import Context, Options
from bench.scen_asymmetric import run_asymmetric
from bench.scen_crypto import run_crypto
from bench.scen_gateway import run_objects, run_stream
from bench.scen_keystore import run_keystore
from bench.scen_kms import run_kms
from bench.scen_latency import RUNS as LATENCY_RUNS
from bench.scen_latency import run_latency
from bench.scen_s3 import run_s3
from bench.scen_soak import run_soak
from bench.scen_scale import run_cache, run_workers


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    run: Callable[[Context], None]
    runs: int
    runs_quick: int
    targeted_pairs: int = 0
    """Figure-and-ceiling pairs measured in alternated rounds (two more runs a round after the first)."""
    in_default_run: bool = True
    """Run when no ``--scenario`` is named (the soak is not: ``make soak`` runs it)."""

    def planned_runs(self, options: Options) -> int:
        if options.quick:
            return self.runs_quick
        return self.runs + self.targeted_pairs * 2 * (options.target_rounds - 1)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("crypto", "AESGCM in-process and openssl speed (crypto ceilings)", run_crypto, 5, 5),
        Scenario("kms", "KMS GenerateDataKey/Encrypt/Decrypt vs bare JSON handler and moto", run_kms, 20, 20,
                 targeted_pairs=7),
        Scenario("asymmetric", "KMS Sign ECC_NIST_P256 and GenerateMac HMAC_256 vs bare JSON and cryptography; "
                 "GenerateDataKey p99 under RSA_2048 signing", run_asymmetric, 8, 8, targeted_pairs=2),
        Scenario("keystore", "KMS GenerateDataKey on the PostgreSQL key store vs the SQLite store", run_keystore,
                 2, 2, targeted_pairs=1),
        Scenario("gateway", "PUT/GET /v1/objects at 1 KiB..64 MiB vs sink/source ceilings", run_objects, 20, 20,
                 targeted_pairs=2),
        Scenario("stream", "/v1/encrypt and /v1/decrypt streaming vs echo ceiling, peak RSS", run_stream, 17, 14,
                 targeted_pairs=3),
        Scenario("s3", "S3 PutObject/GetObject 64 MiB and 1 KiB (wrk and ours) vs echo and a bare S3 handler, "
                 "multipart upload memory", run_s3, 11, 11, targeted_pairs=5),
        Scenario("workers", "1 vs 2 workers (KMS and encrypt) and the ceiling", run_workers, 12, 12),
        Scenario("cache", "KMS calls per 10,000 PUTs against --cache-max-messages", run_cache, 6, 4),
        Scenario("latency", "open-loop latency at 50% and 80% of the measured rate, vs the bare handler",
                 run_latency, LATENCY_RUNS, LATENCY_RUNS),
        Scenario("soak", "10 minutes (--soak-duration) of mixed KMS, PUT/GET, S3 and stream traffic with 1,000 "
                 "mostly idle keep-alive connections and slow clients: RSS, fds, tasks and p99 over time",
                 run_soak, 1, 1, in_default_run=False),
    )
}
