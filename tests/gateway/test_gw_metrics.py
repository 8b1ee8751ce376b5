"""Gateway metrics: values after known updates, bounded labels, and merging across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from kmsgate.gateway.metrics import LATENCY_BUCKETS_SECONDS, GatewayMetrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_known_updates_render_exact_values() -> None:
    m = GatewayMetrics()
    m.observe_request(route="object", method="PUT", status=201, seconds=0.01, bytes_in=100, bytes_out=0)
    m.observe_request(route="object", method="PUT", status=201, seconds=0.02, bytes_in=50, bytes_out=0)
    m.observe_request(route="object", method="GET", status=404, seconds=0.001, bytes_in=0, bytes_out=30)
    m.observe_kms_call(operation="GenerateDataKey", outcome="ok", seconds=0.003)
    m.observe_kms_call(operation="Decrypt", outcome="DisabledException", seconds=0.003)
    m.cache_hit()
    m.cache_miss(3)
    m.cache_eviction("age", 2)
    text, content_type = m.render()
    assert content_type.startswith("text/plain")
    got = samples(text.decode())
    assert got[("kmsgate_gateway_requests_total", (("method", "PUT"), ("route", "object"), ("status", "201")))] == 2
    assert got[("kmsgate_gateway_requests_total", (("method", "GET"), ("route", "object"), ("status", "404")))] == 1
    assert got[("kmsgate_gateway_received_bytes_total", (("route", "object"),))] == 150
    assert got[("kmsgate_gateway_sent_bytes_total", (("route", "object"),))] == 30
    assert got[("kmsgate_gateway_request_duration_seconds_count", (("method", "PUT"), ("route", "object")))] == 2
    assert got[("kmsgate_kms_calls_total", (("operation", "GenerateDataKey"), ("outcome", "ok")))] == 1
    assert got[("kmsgate_kms_calls_total", (("operation", "Decrypt"), ("outcome", "DisabledException")))] == 1
    assert got[("kmsgate_datakey_cache_hits_total", ())] == 1
    assert got[("kmsgate_datakey_cache_misses_total", ())] == 3
    assert got[("kmsgate_datakey_cache_evictions_total", (("reason", "age"),))] == 2


def test_labels_stay_bounded_whatever_callers_pass() -> None:
    m = GatewayMetrics()
    m.observe_request(route="/v1/objects/secret-name", method="BREW", status=999, seconds=0, bytes_in=0, bytes_out=0)
    m.observe_kms_call(operation="arn:aws:kms:us-east-1:1:key/x", outcome="something odd", seconds=0)
    m.cache_eviction("because")
    text = m.render()[0].decode()
    assert "secret-name" not in text and "arn:aws" not in text and "something odd" not in text
    got = samples(text)
    assert got[("kmsgate_gateway_requests_total", (("method", "OTHER"), ("route", "other"), ("status", "other")))] == 1
    assert got[("kmsgate_kms_calls_total", (("operation", "other"), ("outcome", "error")))] == 1
    assert got[("kmsgate_datakey_cache_evictions_total", (("reason", "other"),))] == 1


WORKER = """
import sys
from kmsgate.gateway.metrics import GatewayMetrics
m = GatewayMetrics(multiprocess_dir=sys.argv[1])
for _ in range(int(sys.argv[2])):
    m.observe_request(route="encrypt", method="POST", status=200, seconds=0.01, bytes_in=10, bytes_out=20)
m.flush()  # what the gateway's timer or its next scrape does
m.in_flight.inc(int(sys.argv[3]))
"""


def test_multiprocess_values_sum_across_worker_processes(tmp_path: Path) -> None:
    # Real separate processes write their own files; the merge is what /metrics serves.
    for count, in_flight in [(3, 1), (4, 2)]:
        subprocess.run([sys.executable, "-c", WORKER, str(tmp_path), str(count), str(in_flight)], check=True)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    from prometheus_client import generate_latest

    got = samples(generate_latest(registry).decode())
    assert got[("kmsgate_gateway_requests_total", (("method", "POST"), ("route", "encrypt"), ("status", "200")))] == 7
    assert got[("kmsgate_gateway_received_bytes_total", (("route", "encrypt"),))] == 70
    assert got[("kmsgate_gateway_sent_bytes_total", (("route", "encrypt"),))] == 140
    assert got[("kmsgate_gateway_request_duration_seconds_count", (("method", "POST"), ("route", "encrypt")))] == 7


FLUSHING_WORKER = """
import sys
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from kmsgate.gateway.metrics import GatewayMetrics

def merged():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=sys.argv[1])
    return generate_latest(registry).decode()

m = GatewayMetrics(multiprocess_dir=sys.argv[1])
m.observe_request(route="object", method="PUT", status=201, seconds=0.01, bytes_in=5, bytes_out=0)
sys.stdout.write(merged() + "=====\\n")
m.flush()
sys.stdout.write(merged() + "=====\\n")
m.flush()
sys.stdout.write(merged())
"""


def test_request_counts_reach_the_shared_files_only_when_flushed(tmp_path: Path) -> None:
    # In a process of its own: multi-process mode switches prometheus-client's value class globally.
    out = subprocess.run([sys.executable, "-c", FLUSHING_WORKER, str(tmp_path)], check=True, capture_output=True,
                         text=True).stdout
    before, flushed, again = (samples(part) for part in out.split("=====\n"))
    key = ("kmsgate_gateway_requests_total", (("method", "PUT"), ("route", "object"), ("status", "201")))
    assert before.get(key, 0) == 0  # counted in the process, not yet written
    assert flushed[key] == 1
    assert flushed[("kmsgate_gateway_received_bytes_total", (("route", "object"),))] == 5
    assert again[key] == 1  # nothing pending: flushing again adds nothing
    latency = ("kmsgate_gateway_request_duration_seconds_count", (("method", "PUT"), ("route", "object")))
    assert before.get(latency, 0) == 0
    assert flushed[latency] == 1
    assert again[latency] == 1


# Every bound, either side of every bound, zero and beyond the last bound.
LATENCIES = sorted({0.0, 75.0, *LATENCY_BUCKETS_SECONDS, *(b * 0.999 for b in LATENCY_BUCKETS_SECONDS),
                    *(b * 1.001 for b in LATENCY_BUCKETS_SECONDS)})


def test_request_latencies_folded_at_flush_equal_one_observation_per_request() -> None:
    m = GatewayMetrics()
    registry = CollectorRegistry()
    reference = Histogram("reference_seconds", "", ["route", "method"], registry=registry,
                          buckets=LATENCY_BUCKETS_SECONDS).labels("encrypt", "POST")
    for repeat in range(3):
        for seconds in LATENCIES:
            m.observe_request(route="encrypt", method="POST", status=200, seconds=seconds, bytes_in=1, bytes_out=1)
            reference.observe(seconds)
        if repeat == 1:
            m.flush()  # folding twice adds up like observing throughout
    ours = {(name.removeprefix("kmsgate_gateway_request_duration_seconds"), labels): value
            for (name, labels), value in samples(m.render()[0].decode()).items()
            if name.startswith("kmsgate_gateway_request_duration_seconds") and not name.endswith("_created")}
    expected = {(name.removeprefix("reference_seconds"), labels): value
                for (name, labels), value in samples(generate_latest(registry).decode()).items()
                if not name.endswith("_created")}
    assert ours.keys() == expected.keys()
    for sample, value in expected.items():
        assert ours[sample] == pytest.approx(value), sample
    assert ours[("_count", (("method", "POST"), ("route", "encrypt")))] == 3 * len(LATENCIES)
