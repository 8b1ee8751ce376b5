"""The asymmetric scenario in tiny mode against a real kmsgate and the bare handler on loopback:
it produces every row it promises, each beside its ceiling, without errors (no timing asserted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.context import Context, Options
from bench.scen_asymmetric import run_asymmetric
from bench.scenarios import SCENARIOS


@pytest.fixture
def ctx() -> Iterator[Context]:
    context = Context(Options(progress=False, quick=True, use_wrk=False), planned_runs=SCENARIOS["asymmetric"].runs_quick)
    yield context
    context.close()


def test_the_asymmetric_scenario_reports_each_figure_beside_its_ceilings(ctx: Context) -> None:
    run_asymmetric(ctx)
    assert ctx.skipped == []
    rows = {(m.key, m.system): m for m in ctx.measurements}
    for operation in ("Sign", "GenerateMac"):
        ours = rows[(f"asymmetric/{operation}/sigv4", "kmsgate")]
        assert ours.errors == 0 and ours.requests > 0
        assert ours.ceiling_key == f"asymmetric/{operation}/ceiling" and ours.ratio is not None
        assert rows[(f"asymmetric/{operation}/cryptography", "cryptography")].value > 0
        assert ours.extra["ratio_to_cryptography"] > 0
    loaded = rows[("asymmetric/GenerateDataKey/under-rsa-signing", "kmsgate")]
    alone = rows[("asymmetric/GenerateDataKey/alone", "kmsgate")]
    signing = rows[("asymmetric/RSASign/sigv4", "kmsgate")]
    assert loaded.errors == 0 and alone.errors == 0 and signing.errors == 0 and signing.requests > 0
    assert loaded.extra["p99_alone_ms"] == alone.extra["p99_ms"] > 0 and loaded.extra["p99_ms"] > 0
    assert loaded.ceiling_key == alone.key and loaded.ratio is not None


def test_the_scenario_plans_alternated_rounds_of_both_pairs() -> None:
    scenario = SCENARIOS["asymmetric"]
    assert scenario.planned_runs(Options(rounds=3)) == scenario.runs + 2 * 2 * 2
    assert scenario.planned_runs(Options(quick=True)) == scenario.runs_quick
