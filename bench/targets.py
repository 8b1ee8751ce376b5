"""The issue's performance targets, checked against a run's measurements (never as timed tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.measure import SIGV4_FLOOR, Measurement

MIB = 1024 * 1024
FRAMES_PER_REQUEST_LIMIT_BYTES = 16 * MIB  # "a few frames", far below a 64 MiB body
MULTIPART_LIMIT_PARTS = 4.0  # "a few parts" of server memory for a whole multipart upload


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    value: float | None
    threshold: float
    higher_is_better: bool = True
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    @property
    def shortfall(self) -> str:
        if self.passed is not False or self.value is None:
            return ""
        if self.higher_is_better:
            return f"missed by {(self.threshold - self.value) / self.threshold:.0%}"
        return f"over by {(self.value - self.threshold) / self.threshold:.0%}"


def _find(rows: Sequence[Measurement], key: str, system: str = "kmsgate") -> Measurement | None:
    for m in reversed(rows):
        if m.key == key and m.system == system:
            return m
    return None


def _floor_note(floor: Measurement | None) -> str:
    """What the bare handler reached with SigV4 verification alone (a ratio no signed request can pass)."""
    if floor is None or floor.ratio is None or floor.errors:
        return ""
    return f"the bare handler with SigV4 verification alone: {floor.ratio:.2f}"


def check_targets(rows: Sequence[Measurement]) -> list[Target]:
    out: list[Target] = []

    def ratio(key: str) -> float | None:
        """A figure's ratio; none for a figure whose run had failed requests (they were not the work measured)."""
        m = _find(rows, key)
        return m.ratio if m is not None and m.errors == 0 else None

    # The small-request targets measured with wrk, the primary client (same run, alternated rounds).
    floor_note = _floor_note(_find(rows, "floor/sigv4/GenerateDataKey/wrk", SIGV4_FLOOR))
    for op in ("GenerateDataKey", "Encrypt", "Decrypt"):
        out.append(Target(f"KMS {op} (SigV4) vs bare JSON (wrk)", ">= 0.50 of bare handler",
                          ratio(f"kms/{op}/sigv4/wrk"), 0.50, detail=floor_note))
    out.append(Target("/v1/encrypt 1 KiB vs echo (wrk)", ">= 0.60 of echo req/s", ratio("stream/encrypt/1024/wrk"),
                      0.60))
    out.append(Target("GET /v1/objects 1 KiB vs source (wrk)", ">= 0.50 of source req/s",
                      ratio("gateway/GET/1024/wrk"), 0.50))
    out.append(Target("/v1/encrypt 1 KiB vs echo", ">= 0.70 of echo req/s", ratio("stream/encrypt/1024"), 0.70))
    for key, name in (("stream/encrypt/67108864", "/v1/encrypt 64 MiB"), ("gateway/PUT/67108864", "PUT 64 MiB")):
        out.append(Target(f"{name} vs ceiling", ">= 0.60 of ceiling MB/s", ratio(key), 0.60))
        m = _find(rows, key)
        per = m.extra.get("server_rss_growth_per_request_bytes") if m is not None else None
        out.append(Target(f"{name} server memory per request", "<= 16 MiB (a few frames)",
                          None if per is None else per / MIB, FRAMES_PER_REQUEST_LIMIT_BYTES / MIB,
                          higher_is_better=False, detail="MiB of peak RSS growth per request in flight"))
    out.append(Target("KMS GenerateDataKey vs bare JSON", ">= 0.60 of bare handler",
                      ratio("kms/GenerateDataKey/sigv4"), 0.60))
    gdk = _find(rows, "kms/GenerateDataKey/sigv4")
    out.append(Target("KMS GenerateDataKey vs moto", ">= 25x moto",
                      gdk.extra.get("times_moto") if gdk is not None else None, 25.0))
    out.append(Target("KMS GenerateDataKey, PostgreSQL vs SQLite key store", ">= 0.90 of the SQLite store",
                      ratio("keystore/GenerateDataKey/postgresql"), 0.90, detail="same run, alternated rounds"))
    for op in ("Encrypt", "Decrypt"):
        out.append(Target(f"KMS {op} vs bare JSON", ">= 0.60 of bare handler", ratio(f"kms/{op}/sigv4"), 0.60))
    for op, verb in (("PUT", "PutObject"), ("GET", "GetObject")):
        key = f"s3/{op}/{64 * MIB}"
        out.append(Target(f"S3 {verb} 64 MiB vs echo", ">= 0.60 of echo MB/s", ratio(key), 0.60))
        m = _find(rows, key)
        per = m.extra.get("server_rss_growth_per_request_bytes") if m is not None else None
        out.append(Target(f"S3 {verb} 64 MiB server memory per request", "<= 16 MiB (a few frames)",
                          None if per is None else per / MIB, FRAMES_PER_REQUEST_LIMIT_BYTES / MIB,
                          higher_is_better=False, detail="MiB of peak RSS growth per request in flight"))
    s3_floor = _find(rows, "s3/floor/PUT/1024/wrk", SIGV4_FLOOR)
    out.append(Target("S3 PutObject 1 KiB vs bare S3 handler (wrk)", ">= 0.50 of bare handler",
                      ratio("s3/PUT/1024/wrk"), 0.50, detail=_floor_note(s3_floor)))
    out.append(Target("S3 PutObject 1 KiB vs bare S3 handler (Python load generator)", ">= 0.50 of bare handler",
                      ratio("s3/PUT/1024"), 0.50))
    for m in rows:
        if m.scenario == "s3" and m.key.startswith("s3/multipart/") and "server_rss_growth_parts" in m.extra:
            out.append(Target(f"S3 {m.label}: server memory", f"<= {MULTIPART_LIMIT_PARTS:g} parts",
                              float(m.extra["server_rss_growth_parts"]), MULTIPART_LIMIT_PARTS,
                              higher_is_better=False,
                              detail=f"peak minus idle RSS in parts of {m.extra['part_bytes'] // MIB} MiB"))
    cache_rows = [m for m in rows if m.scenario == "cache" and "kms_calls" in m.extra]
    for m in cache_rows:
        out.append(Target(f"cache {m.extra['cache_max_messages']}, {m.concurrency} clients: KMS calls",
                          f"<= ceil(N / limit) + 1 = {m.extra['kms_call_bound']}", float(m.extra["kms_calls"]),
                          float(m.extra["kms_call_bound"]), higher_is_better=False,
                          detail=f"N = {m.extra['puts']} PUTs"))
    for what in ("kms", "encrypt"):
        out.append(Target(f"2 workers vs 1 ({what})", ">= 1.6x", ratio(f"workers/{what}/2"), 1.6,
                          detail="Python load generator, two processes"))
        out.append(Target(f"2 workers vs 1 ({what}, wrk)", ">= 1.6x", ratio(f"workers/{what}-wrk/2"), 1.6,
                          detail="wrk, one thread"))
    return out
