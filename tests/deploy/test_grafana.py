"""deploy/grafana: the dashboard is valid JSON that Grafana can provision, and every metric its
queries name is exported by a live kmsgate's /metrics after a workload."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import DEPLOY, Workload

DASHBOARD = DEPLOY / "grafana" / "kmsgate.json"
METRIC_NAME = re.compile(r"\bkmsgate_[a-z0-9_]+")


def dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text())
    assert isinstance(document, dict)
    return document


def queries(document: dict[str, Any]) -> list[str]:
    """Every PromQL text of the dashboard: panel targets and templating variables."""
    texts = [target["expr"] for panel in document["panels"] for target in panel["targets"]]
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            texts.append(variable["definition"])
    return texts


def test_the_dashboard_is_a_grafana_dashboard_with_unique_panels() -> None:
    document = dashboard()
    assert document["uid"] == "kmsgate" and document["title"]
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        assert panel["targets"], panel["title"]
        assert {target["refId"] for target in panel["targets"]} == {
            chr(ord("A") + i) for i in range(len(panel["targets"]))
        }
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_the_dashboard_shows_what_an_operator_watches() -> None:
    names = {name for text in queries(dashboard()) for name in METRIC_NAME.findall(text)}
    for wanted in (
        "kmsgate_gateway_requests_total",  # requests
        "kmsgate_gateway_request_duration_seconds_bucket",  # latency percentiles
        "kmsgate_gateway_received_bytes_total", "kmsgate_gateway_sent_bytes_total",  # bytes
        "kmsgate_datakey_cache_hits_total", "kmsgate_datakey_cache_misses_total",  # cache
        "kmsgate_kms_calls_total",  # KMS calls
        "kmsgate_gateway_crypto_pool_queue_depth",  # pool depth
        "kmsgate_gateway_in_flight_requests",  # in flight
    ):
        assert wanted in names
    assert any("histogram_quantile(0.99" in text for text in queries(dashboard()))


def test_every_metric_the_dashboard_queries_is_exported_by_a_live_kmsgate(worked_server: Workload) -> None:
    exported = {
        sample.name for family in text_string_to_metric_families(worked_server.metrics_text) for sample in family.samples
    }
    named = {name for text in queries(dashboard()) for name in METRIC_NAME.findall(text)}
    assert len(named) >= 10
    assert sorted(named - exported) == []


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert [(d["type"], d["url"]) for d in datasources] == [("prometheus", "http://prometheus:9090")]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "kmsgate.yaml").read_text())["providers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    mounted_dashboard = mounts["./grafana/kmsgate.json"]
    assert Path(mounted_dashboard).parent == Path(provider["options"]["path"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
