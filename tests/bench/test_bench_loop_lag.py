"""The loop-lag probe in tiny mode: it measures both conditions, and the signing one signs (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from bench.loop_lag import _measure


async def test_the_loop_lag_probe_measures_the_loop_alone_and_under_rsa_signing(tmp_path: Path) -> None:
    results = await _measure(tmp_path, rounds=1, seconds=0.3)
    assert set(results) == {"alone", "signing"}
    (alone,), (signing,) = results["alone"], results["signing"]
    assert alone.signs_per_s == 0 and signing.signs_per_s > 0
    for lag in (alone, signing):
        assert lag.mean_ms <= lag.max_ms and lag.p99_ms <= lag.max_ms
