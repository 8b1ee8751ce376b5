"""The open-loop latency scenario against a real kmsgate and the bare handler on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.context import Context, Options
from bench.measure import Measurement
from bench.scen_latency import FRACTIONS, run_latency

CLOSED_LOOP_RPS = 400.0  # stands for the closed-loop figures of the same run: low rates, a quick test


@pytest.fixture
def ctx() -> Iterator[Context]:
    context = Context(Options(progress=False, quick=True), planned_runs=8)
    for key in ("kms/GenerateDataKey/sigv4", "stream/encrypt/1024"):
        context.add(Measurement("kms", key, key, "kmsgate", "req/s", CLOSED_LOOP_RPS))
    yield context
    context.close()


def test_each_shape_runs_at_the_set_fractions_of_its_closed_loop_rate_beside_the_ceiling(ctx: Context) -> None:
    run_latency(ctx)
    rows = [m for m in ctx.measurements if m.scenario == "latency"]
    ours = [m for m in rows if m.system == "kmsgate"]
    assert len(ours) == 2 * len(FRACTIONS) and len(rows) == 2 * len(ours)
    rates = sorted(m.extra["offered_rate"] for m in ours)
    assert rates == sorted([round(CLOSED_LOOP_RPS * f) for f in FRACTIONS] * 2)
    for m in ours:
        assert m.errors == 0
        assert m.value == pytest.approx(m.extra["offered_rate"], rel=0.15)  # kept up with the schedule
        assert m.ceiling_key == f"{m.key}/ceiling" and m.ratio is not None
        assert m.latency is not None and m.latency.count == m.requests
