"""The soak scenario in a short run against a real kmsgate on loopback: the machinery, not a figure."""

from __future__ import annotations

import json
from pathlib import Path

from bench.context import Context, Options
from bench.scen_soak import WORKERS, soak

SLOW_CLIENTS = ("trickled body", "stalled body", "endless headers", "silent connection", "slow reader")


def test_a_short_soak_samples_every_server_process_and_writes_its_verdict(tmp_path: Path) -> None:
    options = Options(progress=False, scenarios=("soak",), soak_duration_s=20.0, soak_connections=20,
                      results_dir=str(tmp_path), budget_s=300.0)
    ctx = Context(options, planned_runs=1)
    try:
        result = soak(ctx)
    finally:
        ctx.close()
    tally = result.tally

    assert tally.steady_errors == 0, tally.error_examples
    assert not tally.slow_errors, tally.error_examples
    kinds = result.requests_by_kind()
    for kind in ("kms GenerateDataKey", "kms Encrypt", "kms Decrypt", "object PUT", "object GET", "s3 PUT",
                 "s3 GET", "stream encrypt", "stream decrypt", "idle GET"):
        assert kinds.get(kind, 0) > 0, kind
    assert tally.idle_opened == 20
    for client in SLOW_CLIENTS:
        assert any(outcome.startswith(client + ":") for outcome in tally.slow_outcomes), (client, tally.slow_outcomes)

    assert len(result.samples) >= 10
    for sample in result.samples:
        roles = sorted(p.role for p in sample.processes)
        assert roles == ["supervisor"] + ["worker"] * WORKERS
        assert all(p.rss_bytes > 0 and p.fds > 0 and p.threads > 0 for p in sample.processes)
    # Each worker's event-loop tasks came from /metrics once the traffic ran (20 idle connections among them).
    assert all(sample.tasks is not None for sample in result.samples[len(result.samples) // 2:])
    assert max(s.tasks or 0 for s in result.samples) >= 20

    assert len(result.windows) == 5
    assert sum(w.requests for w in result.windows) == len(tally.completions)
    assert [t.name for t in result.trends] == ["RSS", "open file descriptors", "asyncio tasks", "threads"]
    assert result.verdict.zero_errors

    stem = tmp_path / result.stem()
    written = json.loads(stem.with_suffix(".json").read_text())
    assert written["verdict"]["passed"] == result.verdict.passed
    assert len(written["windows"]) == 5
    assert "## Verdict" in stem.with_suffix(".md").read_text()
    assert stem.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert any(note.startswith("soak (20 s, 20 idle connections)") for note in ctx.notes)


def test_the_soak_runs_only_when_named_with_its_duration_and_connections() -> None:
    from bench.__main__ import parse_args

    default, _ = parse_args([])
    assert "soak" not in default.scenarios and "kms" in default.scenarios
    named, _ = parse_args(["--scenario", "soak", "--soak-duration", "20", "--soak-connections", "10"])
    assert named.scenarios == ("soak",)
    assert (named.soak_duration_s, named.soak_connections) == (20.0, 10)
    assert parse_args(["--scenario", "soak"])[0].soak_duration_s == 600.0
