"""deploy/prometheus: promtool accepts the configuration and rules, the rule unit tests prove each
alert fires on the series that should fire it and not on a healthy one, and a real Prometheus
running the shipped configuration scrapes a running kmsgate."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port
from tests.deploy.conftest import DEPLOY, Workload, require_tool

PROMETHEUS_DIR = DEPLOY / "prometheus"
HOW = "Debian's prometheus package brings it; `make tools` installs it as root"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool", HOW)


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_accepts_the_scrape_configuration_and_its_rules(promtool: str, config: str) -> None:
    result = run(promtool, "check", "config", str(PROMETHEUS_DIR / config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def alert_names() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"]]


def test_the_rule_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", "alerts.test.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_the_brief_asks_for_is_tested() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == set(alert_names())
    for test in tests:  # each test fires its alert for "bad" and only for it
        firing = [alert for case in test["alert_rule_test"] for alert in case["exp_alerts"]]
        assert firing and all(alert["exp_labels"]["instance"] == "bad" for alert in firing), test["name"]
        assert any(series["series"].count('instance="good"') for series in test["input_series"]), test["name"]


def rules_with(tmp_path: Path, alert: str, expr: str) -> Path:
    """A copy of deploy/prometheus with ``alert``'s expression replaced."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    rules = yaml.safe_load((copy / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                rule["expr"] = expr
    (copy / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    return copy


@pytest.mark.parametrize("alert", alert_names())
def test_the_unit_tests_fail_for_an_alert_that_never_fires(promtool: str, tmp_path: Path, alert: str) -> None:
    copy = rules_with(tmp_path, alert, "vector(1) > 2")
    result = run(promtool, "test", "rules", "alerts.test.yml", cwd=copy)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


@pytest.mark.parametrize("alert", alert_names())
def test_the_unit_tests_fail_for_an_alert_that_fires_on_healthy_series(
    promtool: str, tmp_path: Path, alert: str
) -> None:
    # Fires for every instance of any kmsgate series, the healthy ones included.
    copy = rules_with(tmp_path, alert, 'count by (instance) ({__name__=~"up|kmsgate_.+"}) > 0')
    result = run(promtool, "test", "rules", "alerts.test.yml", cwd=copy)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


# -- a real Prometheus scraping a real kmsgate ---------------------------------------------------

def adapted_config(directory: Path, target: str) -> Path:
    """The shipped prometheus.yml and alerts.yml in ``directory``, with only the target changed."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    static["targets"] = [target]
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", directory / "alerts.yml")
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        document = json.load(response)
    assert document["status"] == "success", document
    return document["data"]


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def prometheus(worked_server: Workload, tmp_path: Path) -> Iterator[int]:
    binary = require_tool("prometheus", HOW)
    config = adapted_config(tmp_path, f"127.0.0.1:{worked_server.server.port}")
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=log,
    )
    try:
        wait_for(lambda: process.poll() is None and api(port, "status/config"), 30, "Prometheus to start")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_prometheus_with_the_shipped_configuration_scrapes_kmsgate_and_loads_its_alerts(
    worked_server: Workload, prometheus: int
) -> None:
    # The first scrape comes within one scrape_interval (15 s as shipped) of the start.
    targets = wait_for(
        lambda: [t for t in api(prometheus, "targets")["activeTargets"] if t["health"] == "up"], 60, "a healthy target"
    )
    assert [t["labels"]["job"] for t in targets] == ["kmsgate"]

    requests = api(prometheus, "query", query='kmsgate_gateway_requests_total{route="object"}')["result"]
    by_method_status = {(r["metric"]["method"], r["metric"]["status"]): float(r["value"][1]) for r in requests}
    assert by_method_status[("PUT", "201")] == 3
    assert by_method_status[("GET", "200")] == 4
    kms = api(prometheus, "query", query='kmsgate_kms_calls_total{operation="GenerateDataKey", outcome="ok"}')
    assert float(kms["result"][0]["value"][1]) > 0
    for name in ("kmsgate_datakey_cache_hits_total", "kmsgate_datakey_cache_misses_total"):
        (sample,) = api(prometheus, "query", query=name)["result"]
        assert float(sample["value"][1]) > 0, name
    evictions = api(prometheus, "query", query='kmsgate_datakey_cache_evictions_total{reason="capacity"}')["result"]
    assert float(evictions[0]["value"][1]) > 0

    groups = api(prometheus, "rules", type="alert")["groups"]
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert set(loaded) == set(alert_names())
    # Every alert evaluates without error on real series, and none fires on this healthy server.
    wait_for(lambda: all(h == "ok" for h in _rule_health(prometheus).values()), 30, "the rules to evaluate")
    assert api(prometheus, "alerts")["alerts"] == []


def _rule_health(port: int) -> dict[str, str]:
    groups = api(port, "rules", type="alert")["groups"]
    return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
