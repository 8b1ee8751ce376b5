"""The soak's arithmetic: trend slopes and drift, windows, and the three rules of the verdict."""

from __future__ import annotations

import pytest

from bench.soakstats import (
    Completion,
    ProcessSample,
    Sample,
    count_tolerance,
    least_squares_slope,
    percentile,
    trends,
    verdict,
    windows,
)


def sample(t: float, rss: int, fds: int, tasks: int | None) -> Sample:
    return Sample(t, (ProcessSample(1, "supervisor", 1000, 5, 1, None),
                      ProcessSample(2, "worker", rss, fds, 4, tasks)))


def test_least_squares_slope_of_a_straight_line_is_its_slope() -> None:
    assert least_squares_slope([(t, 3.0 + 2.5 * t) for t in range(10)]) == pytest.approx(2.5)
    assert least_squares_slope([(0.0, 7.0)]) == 0.0


def test_a_steady_series_is_flat_and_a_growing_one_is_not() -> None:
    steady = [sample(t, 100_000 + (t % 3) * 100, 1020 + t % 2, 1010) for t in range(0, 100, 5)]
    growing = [sample(t, 100_000 + 200 * t, 1020 + t, 1010 + t) for t in range(0, 100, 5)]
    flat = {t.name: t for t in trends(steady, 20.0, 1000)}
    assert flat["RSS"].flat and flat["open file descriptors"].flat and flat["asyncio tasks"].flat
    grown = {t.name: t for t in trends(growing, 20.0, 1000)}
    assert not grown["RSS"].flat  # 200 bytes/s over 75 s: 15,000 bytes against 5% of about 110,000
    assert grown["open file descriptors"].drift == pytest.approx(75.0)
    assert not grown["open file descriptors"].flat and not grown["asyncio tasks"].flat
    assert grown["RSS"].samples == 16  # the warm-up's samples are left out
    assert count_tolerance(1000) == 36


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0 and percentile(values, 50) == 50.0 and percentile([], 99) == 0.0


def test_windows_and_the_p99_rule() -> None:
    completions = [Completion(t / 10, 0.010, "kms") for t in range(0, 400)]
    completions += [Completion(35.0, 0.500, "kms") for _ in range(5)]  # a slow moment in the last window
    samples = [sample(t, 100_000, 100, 50) for t in range(0, 40, 2)]
    rows = windows(completions, [], samples, 40.0, 10.0, 8.0)
    assert [w.requests for w in rows] == [100, 100, 100, 105]
    assert [w.after_warmup for w in rows] == [False, True, True, True]
    assert rows[3].p99_ms == pytest.approx(500.0) and rows[1].p99_ms == pytest.approx(10.0)
    judged = verdict(trends(samples, 8.0, 10), 0, 0, rows)
    assert judged.flat and judged.zero_errors and not judged.p99_stable and not judged.passed
    calm = windows(completions[:400], [], samples, 40.0, 10.0, 8.0)
    assert verdict(trends(samples, 8.0, 10), 0, 0, calm).passed
    assert not verdict(trends(samples, 8.0, 10), 1, 0, calm).zero_errors
