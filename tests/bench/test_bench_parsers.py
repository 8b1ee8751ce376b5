"""Pure parsers and helpers: openssl speed, wrk, Prometheus totals, JSON sizing, cache bound."""

from __future__ import annotations

import json

import pytest

from bench.ceilings import json_of_size, parse_openssl_speed
from bench.product import parse_metric_total
from bench.scen_scale import kms_call_bound
from bench.wrkcheck import parse_wrk

OPENSSL = """\
version: 3.0.19
built on: ...
The 'numbers' are in 1000s of bytes per second processed.
type             16 bytes     64 bytes    256 bytes   1024 bytes   8192 bytes  16384 bytes
AES-256-GCM      44229.26k   160971.84k   629304.83k  1746287.62k  3732234.24k  4178102.04k
"""

WRK = """\
Running 1s test @ http://127.0.0.1:5000/json
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.10ms    1.02ms  12.00ms   80.00%
  Latency Distribution
     50%    2.97ms
     75%  850.00us
     90%   65.00ms
     99%    1.20s
  15458 requests in 1.00s, 6.84MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  15398.70
Transfer/sec:      6.82MB
"""


def test_openssl_speed_table_is_parsed_per_size() -> None:
    rates = parse_openssl_speed(OPENSSL)
    assert [r.size_bytes for r in rates] == [16, 64, 256, 1024, 8192, 16384]
    assert rates[3].mb_per_s == pytest.approx(1746.28762)
    assert rates[0].ops_per_s == pytest.approx(44229260 / 16)


def test_openssl_garbage_gives_no_rates() -> None:
    assert parse_openssl_speed("Error: unknown cipher") == []


def test_wrk_report_is_parsed_with_units() -> None:
    r = parse_wrk(WRK)
    assert (r.requests, r.rps, r.non_2xx, r.socket_errors) == (15458, 15398.70, 4, 3)
    assert (r.p50_ms, r.p90_ms, r.p99_ms) == (2.97, 65.0, 1200.0)


def test_wrk_without_rate_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


@pytest.mark.parametrize("size", [11, 12, 300, 4096])
def test_json_of_size_is_valid_json_of_that_size(size: int) -> None:
    body = json_of_size(size)
    assert len(body) == size
    assert isinstance(json.loads(body), dict)


def test_metric_total_sums_every_labelled_sample_of_that_metric_only() -> None:
    text = """# HELP kmsgate_kms_calls_total KMS calls
# TYPE kmsgate_kms_calls_total counter
kmsgate_kms_calls_total{operation="GenerateDataKey",outcome="ok"} 7.0
kmsgate_kms_calls_total{operation="Decrypt",outcome="ok"} 3.0
kmsgate_kms_calls_created{operation="Decrypt",outcome="ok"} 1.7e9
kmsgate_kms_calls_total_other 99
"""
    assert parse_metric_total(text) == 10.0
    assert parse_metric_total("# nothing here\n") is None


@pytest.mark.parametrize(("puts", "limit", "bound"), [(10_000, 1, 10_001), (10_000, 100, 101), (10_000, 10_000, 2),
                                                      (9_999, 100, 101), (1, 10_000, 2)])
def test_kms_call_bound(puts: int, limit: int, bound: int) -> None:
    assert kms_call_bound(puts, limit) == bound
