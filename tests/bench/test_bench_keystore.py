"""The key-store scenario's pure parts: its database URL, its target, and its place in the plan."""

from __future__ import annotations

from bench.context import Options
from bench.measure import Measurement
from bench.postgres import with_database
from bench.scen_keystore import CEILING_KEY, FIGURE_KEY
from bench.scenarios import SCENARIOS
from bench.targets import check_targets

TARGET_NAME = "KMS GenerateDataKey, PostgreSQL vs SQLite key store"


def _postgres_vs_sqlite(postgres_rps: float, sqlite_rps: float) -> list[Measurement]:
    sqlite = Measurement("keystore", CEILING_KEY, "GenerateDataKey (SigV4, SQLite store)", "kmsgate", "req/s",
                         sqlite_rps)
    postgres = Measurement("keystore", FIGURE_KEY, "GenerateDataKey (SigV4, PostgreSQL store)", "kmsgate", "req/s",
                           postgres_rps).with_ceiling(sqlite)
    return [sqlite, postgres]


def test_the_bench_database_url_keeps_host_credentials_and_parameters() -> None:
    url = "postgresql://bench:pw@db.internal:5433/postgres?sslmode=require&host=/run/pg"
    assert with_database(url, "kmsgate_bench_1") == (
        "postgresql://bench:pw@db.internal:5433/kmsgate_bench_1?sslmode=require&host=/run/pg")


def test_the_postgresql_store_meets_its_target_at_nine_tenths_of_the_sqlite_store() -> None:
    targets = {t.name: t for t in check_targets(_postgres_vs_sqlite(9_000.0, 10_000.0))}
    assert targets[TARGET_NAME].value == 0.9
    assert targets[TARGET_NAME].passed is True


def test_the_postgresql_store_below_nine_tenths_misses_its_target() -> None:
    target = {t.name: t for t in check_targets(_postgres_vs_sqlite(8_000.0, 10_000.0))}[TARGET_NAME]
    assert target.passed is False
    assert target.shortfall == "missed by 11%"


def test_the_target_is_unmeasured_without_the_scenario() -> None:
    assert {t.name: t for t in check_targets([])}[TARGET_NAME].passed is None


def test_the_scenario_plans_alternated_rounds_of_both_stores() -> None:
    scenario = SCENARIOS["keystore"]
    assert scenario.planned_runs(Options(rounds=3)) == 6
    assert scenario.planned_runs(Options(quick=True)) == 2
