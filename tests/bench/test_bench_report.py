"""Report writing (JSON, Markdown, PNG charts), target checks, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from bench.histogram import LatencyHistogram
from bench.measure import SIGV4_FLOOR, Measurement
from bench.report import Machine, Report, now, write_report
from bench.targets import check_targets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rows() -> list[Measurement]:
    h = LatencyHistogram()
    for v in range(500, 5000):
        h.record_us(v)
    lat = h.summary()
    echo = Measurement("stream", "ceiling/echo/1024", "echo 1 KiB", "http-ceiling", "req/s", 10_000.0,
                       payload_bytes=1024, latency=lat, extra={"mb_per_s": 10.2})
    enc = Measurement("stream", "stream/encrypt/1024", "encrypt 1 KiB", "kmsgate", "req/s", 6_000.0,
                      payload_bytes=1024, latency=lat, extra={"mb_per_s": 6.1}).with_ceiling(echo)
    json_ceiling = Measurement("kms", "ceiling/json/GenerateDataKey", "bare JSON GenerateDataKey", "http-ceiling",
                               "req/s", 10_000.0, latency=lat)
    gdk = Measurement("kms", "kms/GenerateDataKey/sigv4", "GenerateDataKey (SigV4)", "kmsgate", "req/s", 7_000.0,
                      latency=lat, extra={"times_moto": 20.0}).with_ceiling(json_ceiling)
    cache = Measurement("cache", "cache/100/64", "PUT 1 KiB, cache 100, 64 clients", "kmsgate", "req/s", 900.0,
                        payload_bytes=1024, concurrency=64, latency=lat,
                        extra={"cache_max_messages": 100, "puts": 10_000, "kms_calls": 100.0,
                               "kms_call_bound": 101, "kms_calls_per_10k": 100.0})
    aes = Measurement("crypto", "crypto/aesgcm/1024", "AESGCM 1 KiB", "aesgcm", "MB/s", 700.0, payload_bytes=1024)
    return [echo, enc, json_ceiling, gdk, cache, aes]


def test_ratio_is_value_over_ceiling() -> None:
    enc = rows()[1]
    assert enc.ratio == 0.6 and enc.ceiling_key == "ceiling/echo/1024"


def test_targets_report_met_missed_and_unmeasured() -> None:
    by_name = {t.name: t for t in check_targets(rows())}
    assert by_name["/v1/encrypt 1 KiB vs echo"].passed is False
    assert by_name["/v1/encrypt 1 KiB vs echo"].shortfall == "missed by 14%"
    assert by_name["KMS GenerateDataKey vs bare JSON"].passed is True
    assert by_name["KMS GenerateDataKey vs moto"].passed is False
    assert by_name["cache 100, 64 clients: KMS calls"].passed is True
    assert by_name["2 workers vs 1 (kms)"].passed is None


def test_write_report_produces_json_markdown_and_pngs(tmp_path: Path) -> None:
    data = rows()
    report = Report(now(), "python -m bench --quick", Machine.detect(), data, check_targets(data),
                    [("moto peer", "not installed")], ["a note"], 1.5)
    paths = write_report(report, str(tmp_path))
    doc = json.loads(Path(paths["json"]).read_text())
    assert Path(paths["json"]).name == f"{report.stem()}.json"
    assert report.stem().startswith(report.started.strftime("%Y-%m-%d-"))
    assert len(doc["measurements"]) == len(data)
    assert doc["measurements"][1]["ratio"] == 0.6
    assert doc["machine"]["cores"] >= 1
    assert any(t["passed"] is False for t in doc["targets"])
    md = Path(paths["markdown"]).read_text()
    assert "| stream | encrypt 1 KiB | kmsgate | 6,000 req/s | echo 1 KiB (http-ceiling) | 10,000 req/s | 0.60 |" in md
    assert "moto peer: not installed" in md and "python -m bench --quick" in md
    for kind in ("chart_throughput", "chart_latency", "chart_cache"):
        assert Path(paths[kind]).read_bytes().startswith(PNG_MAGIC)
    assert not list(tmp_path.glob("*.tmp"))


def test_command_line_lists_scenarios() -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=root, capture_output=True, text=True,
                         timeout=60, check=True)
    for name in ("crypto", "kms", "gateway", "stream", "workers", "cache"):
        assert name in out.stdout


def test_suite_skips_product_scenarios_it_cannot_run_and_still_reports(tmp_path: Path) -> None:
    # A remote target that refuses connections: cache and workers need local servers,
    # so they are skipped with a reason; the report is still written.
    from bench.__main__ import main
    from bench.procs import free_port

    code = main(["--target", f"http://127.0.0.1:{free_port()}", "--quick", "--scenario", "cache",
                 "--scenario", "workers", "--results-dir", str(tmp_path), "--no-progress"])
    assert code == 0
    doc = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert {s["what"] for s in doc["skipped"]} == {"cache", "workers"}


def test_worker_targets_are_checked_for_each_load_generator() -> None:
    one = Measurement("workers", "workers/kms-wrk/1", "kms, 1 worker(s), wrk", "kmsgate", "req/s", 6_000.0)
    two = Measurement("workers", "workers/kms-wrk/2", "kms, 2 worker(s), wrk", "kmsgate", "req/s",
                      10_200.0).with_ceiling(one)
    py_one = Measurement("workers", "workers/kms/1", "kms, 1 worker(s)", "kmsgate", "req/s", 6_000.0)
    py_two = Measurement("workers", "workers/kms/2", "kms, 2 worker(s)", "kmsgate", "req/s",
                         6_600.0).with_ceiling(py_one)
    by_name = {t.name: t for t in check_targets([one, two, py_one, py_two])}
    assert by_name["2 workers vs 1 (kms, wrk)"].value == 1.7
    assert by_name["2 workers vs 1 (kms, wrk)"].passed is True
    assert by_name["2 workers vs 1 (kms)"].passed is False
    assert by_name["2 workers vs 1 (encrypt, wrk)"].passed is None


def test_a_figure_whose_run_had_failed_requests_meets_no_target() -> None:
    data = rows()
    data[3] = replace(data[3], errors=12)  # GenerateDataKey (SigV4): 0.70, above its 0.60 target
    by_name = {t.name: t for t in check_targets(data)}
    assert by_name["KMS GenerateDataKey vs bare JSON"].value is None
    assert by_name["KMS GenerateDataKey vs bare JSON"].passed is None


def test_the_kms_wrk_targets_name_the_verification_floor() -> None:
    ceiling = Measurement("kms", "ceiling/json/GenerateDataKey/wrk", "wrk bare", "http-ceiling", "req/s", 20_000.0)
    floor = Measurement("kms", "floor/sigv4/GenerateDataKey/wrk", "wrk floor", SIGV4_FLOOR, "req/s",
                        8_600.0).with_ceiling(ceiling)
    targets = check_targets([ceiling, floor])
    kms = [t for t in targets if t.name.startswith("KMS") and t.name.endswith("(wrk)")]
    assert len(kms) == 3
    assert all(t.detail == "the bare handler with SigV4 verification alone: 0.43" for t in kms)
    failed = check_targets([ceiling, replace(floor, errors=1)])
    assert all(t.detail == "" for t in failed if t.name.startswith("KMS") and t.name.endswith("(wrk)"))
