"""A figure with a target and its ceiling are run in alternated rounds; each is reported by its
median run, and the rounds are kept for the report."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bench.context import Context, Options
from bench.measure import Measurement
from bench.report import Machine, Report, markdown, now
from bench.scenarios import SCENARIOS


def _runs(values: list[float], key: str, system: str, calls: list[str]) -> Callable[[], Measurement]:
    """A stand-in for a load run: returns the next of ``values`` and notes the call in ``calls``."""
    left = list(values)

    def run() -> Measurement:
        calls.append(key)
        return Measurement("kms", key, key, system, "req/s", left.pop(0))

    return run


@pytest.fixture
def ctx() -> Iterator[Context]:
    context = Context(Options(progress=False, rounds=3), planned_runs=6)
    yield context
    context.close()


def test_rounds_alternate_and_report_the_median_run_of_each_side(ctx: Context) -> None:
    calls: list[str] = []
    figure = _runs([7_000.0, 5_000.0, 6_000.0], "figure", "kmsgate", calls)
    ceiling = _runs([12_000.0, 10_000.0, 11_000.0], "ceiling", "http-ceiling", calls)
    fig, ceil = ctx.alternated(figure, ceiling)
    assert calls == ["figure", "ceiling", "ceiling", "figure", "figure", "ceiling"]
    assert (fig.value, ceil.value) == (6_000.0, 11_000.0)
    assert fig.ratio == 6_000.0 / 11_000.0
    assert fig.extra["round_values"] == [7_000.0, 5_000.0, 6_000.0]
    assert fig.extra["ceiling_round_values"] == [12_000.0, 10_000.0, 11_000.0]
    assert ctx.measurements == [ceil, fig]  # one row each, not one per round


def test_a_quick_run_measures_each_side_once() -> None:
    ctx = Context(Options(progress=False, quick=True, rounds=3), planned_runs=2)
    ctx.close()  # nothing started; the runs below are stand-ins
    calls: list[str] = []
    fig, ceil = ctx.alternated(_runs([5.0], "figure", "kmsgate", calls),
                               _runs([10.0], "ceiling", "http-ceiling", calls))
    assert calls == ["figure", "ceiling"]
    assert fig.ratio == 0.5 and "round_values" not in fig.extra


def test_the_rounds_count_in_the_planned_runs() -> None:
    kms = SCENARIOS["kms"]
    assert kms.planned_runs(Options(rounds=3)) == kms.runs + kms.targeted_pairs * 2 * 2
    assert kms.planned_runs(Options(rounds=1)) == kms.runs
    assert kms.planned_runs(Options(quick=True, rounds=5)) == kms.runs_quick


def test_the_report_lists_every_round(ctx: Context) -> None:
    calls: list[str] = []
    ctx.alternated(_runs([6_000.0, 5_000.0, 7_000.0], "figure", "kmsgate", calls),
                   _runs([10_000.0, 10_000.0, 10_000.0], "ceiling", "http-ceiling", calls))
    report = Report(now(), "python -m bench", Machine.detect(), ctx.measurements, [], [], [], 1.0)
    assert ("| figure | rounds (figure / ceiling, ratio): 6,000 req/s / 10,000 req/s, 0.60, "
            "5,000 req/s / 10,000 req/s, 0.50, 7,000 req/s / 10,000 req/s, 0.70 |") in markdown(report)
