"""Latency histograms: HDR recording in microseconds, percentiles, merging and transport.

A ``LatencyHistogram`` wraps an HdrHistogram that records integer microseconds from
1 us to ``MAX_LATENCY_US`` with three significant digits (0.1 % relative error).
Values outside the range are clamped, never dropped, so a stalled request still
counts at the top of the range. Histograms cross process boundaries as the HdrHistogram
compressed encoding (base64 text, ``encode()``/``decode()``), and merge exactly by
adding counts bucket by bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

MIN_LATENCY_US = 1
MAX_LATENCY_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of one run, in milliseconds."""

    count: int
    mean_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float


class LatencyHistogram:
    """An HDR histogram of request latencies recorded in microseconds."""

    __slots__ = ("_hist",)

    def __init__(self, hist: HdrHistogram | None = None) -> None:
        self._hist = hist or HdrHistogram(MIN_LATENCY_US, MAX_LATENCY_US, SIGNIFICANT_DIGITS)

    @property
    def count(self) -> int:
        return int(self._hist.get_total_count())

    def record_us(self, value_us: int) -> None:
        """Record one latency; values outside [1 us, 1 h] are clamped to the range."""
        self._hist.record_value(min(max(int(value_us), MIN_LATENCY_US), MAX_LATENCY_US))

    def record_seconds(self, seconds: float) -> None:
        self.record_us(round(seconds * 1_000_000))

    def percentile_us(self, percentile: float) -> int:
        return int(self._hist.get_value_at_percentile(percentile))

    def merge(self, other: LatencyHistogram) -> None:
        """Add every count of ``other`` into this histogram."""
        if other.count:
            self._hist.add(other._hist)

    def encode(self) -> str:
        encoded: bytes = self._hist.encode()
        return encoded.decode("ascii")

    @classmethod
    def decode(cls, text: str) -> LatencyHistogram:
        if not text:
            return cls()
        return cls(HdrHistogram.decode(text.encode("ascii")))

    def summary(self) -> LatencySummary:
        if not self.count:
            return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        ms = 1000.0
        p50, p90, p99, p999 = (self.percentile_us(p) / ms for p in PERCENTILES)
        return LatencySummary(
            count=self.count,
            mean_ms=float(self._hist.get_mean_value()) / ms,
            min_ms=self._hist.get_min_value() / ms,
            max_ms=self._hist.get_max_value() / ms,
            p50_ms=p50,
            p90_ms=p90,
            p99_ms=p99,
            p999_ms=p999,
        )


def merge_encoded(encoded: list[str]) -> LatencyHistogram:
    """Merge histograms received from several load-generator processes."""
    total = LatencyHistogram()
    for text in encoded:
        total.merge(LatencyHistogram.decode(text))
    return total
