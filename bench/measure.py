"""Measurement records: one figure of one system in one scenario, with its ceiling and ratio."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.histogram import LatencySummary
from bench.loadgen import LoadResult


SIGV4_FLOOR = "sigv4-floor"
"""The system of a verification floor's figures: the bare handler that also verifies the request's
SigV4 signature with kmsgate's verifier (``bench.ceilings``)."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One row of the report.

    ``key`` identifies the figure (``"gateway/PUT/1024"``); ``system`` says what served it
    (``kmsgate``, ``http-ceiling``, ``SIGV4_FLOOR``, ``moto``, ``aesgcm``, ``openssl``, ``wrk``).
    ``ratio`` is ``value / ceiling_value`` of the ``unit`` figure, filled in by ``with_ceiling``.
    """

    scenario: str
    key: str
    label: str
    system: str
    unit: str  # "req/s" or "MB/s"
    value: float
    payload_bytes: int = 0
    concurrency: int = 0
    requests: int = 0
    errors: int = 0
    latency: LatencySummary | None = None
    client_cores: float = 0.0
    ceiling_key: str = ""
    ceiling_label: str = ""
    ceiling_value: float = 0.0
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def with_ceiling(self, ceiling: Measurement | None) -> Measurement:
        if ceiling is None or ceiling.value <= 0:
            return self
        return _replace(
            self,
            ceiling_key=ceiling.key,
            ceiling_label=f"{ceiling.label} ({ceiling.system})",
            ceiling_value=ceiling.value,
            ratio=self.value / ceiling.value,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _replace(m: Measurement, **changes: Any) -> Measurement:
    from dataclasses import replace

    return replace(m, **changes)


def from_load(
    scenario: str,
    key: str,
    label: str,
    system: str,
    result: LoadResult,
    unit: str = "req/s",
    payload_bytes: int = 0,
    extra: dict[str, Any] | None = None,
    note: str = "",
) -> Measurement:
    """A measurement from a load-generator result: req/s or payload MB/s."""
    value = result.rps if unit == "req/s" else result.mb_per_s
    info = {"rps": result.rps, "mb_per_s": result.mb_per_s, "processes": result.processes,
            "mode": result.mode, "elapsed_s": result.elapsed_s}
    if result.error_kinds:
        info["error_kinds"] = result.error_kinds
    info.update(extra or {})
    return Measurement(
        scenario=scenario,
        key=key,
        label=label,
        system=system,
        unit=unit,
        value=value,
        payload_bytes=payload_bytes,
        concurrency=result.concurrency,
        requests=result.requests,
        errors=result.errors,
        latency=result.latency,
        client_cores=result.client_cores,
        extra=info,
        note=note,
    )


def size_label(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"
