"""HDR histogram wrapper: percentiles, clamping, merging and transport between processes."""

from __future__ import annotations

from bench.histogram import MAX_LATENCY_US, LatencyHistogram, merge_encoded


def filled(values: range) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record_us(v)
    return h


def test_percentiles_of_uniform_values_within_hdr_precision() -> None:
    s = filled(range(1, 10_001)).summary()
    assert s.count == 10_000
    for got, want in ((s.p50_ms, 5.0), (s.p90_ms, 9.0), (s.p99_ms, 9.9), (s.p999_ms, 9.99)):
        assert abs(got - want) <= want * 0.001 + 0.001
    assert abs(s.mean_ms - 5.0005) < 0.01


def test_out_of_range_values_are_clamped_not_dropped() -> None:
    h = LatencyHistogram()
    h.record_us(0)
    h.record_us(MAX_LATENCY_US * 10)
    assert h.count == 2
    assert h.summary().max_ms >= MAX_LATENCY_US / 1000 * 0.999


def test_encode_decode_round_trip_keeps_counts_and_percentiles() -> None:
    h = filled(range(100, 5000, 7))
    back = LatencyHistogram.decode(h.encode())
    assert back.count == h.count
    assert back.summary() == h.summary()


def test_merge_adds_counts_of_every_process() -> None:
    low, high = filled(range(1, 1001)), filled(range(9001, 10_001))
    merged = merge_encoded([low.encode(), high.encode(), LatencyHistogram().encode()])
    assert merged.count == 2000
    assert merged.summary().p50_ms <= 1.001
    assert merged.summary().p90_ms >= 9.0


def test_empty_histogram_summary_is_zero() -> None:
    s = LatencyHistogram().summary()
    assert s.count == 0 and s.p99_ms == 0.0
