"""The load generator against the bare ceiling server on loopback, with tiny counts."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from bench.loadgen import LoadPlan, RequestTemplate, child_plans, run_load
from bench.procs import ServerProcess, process_tree

KIB, MIB = 1024, 1024 * 1024


def test_closed_loop_stops_at_request_bound_and_counts_bytes(ceiling_server: ServerProcess) -> None:
    plan = LoadPlan(ceiling_server.url, (RequestTemplate("PUT", "/echo", body_size=KIB),),
                    concurrency=4, warmup_s=0.0, duration_s=30.0, max_requests=50)
    r = run_load(plan)
    assert (r.requests, r.errors) == (50, 0)
    assert r.bytes_sent == r.bytes_received == 50 * KIB
    assert r.latency.count == 50 and r.latency.p50_ms > 0


def test_open_loop_sends_exactly_the_scheduled_requests(ceiling_server: ServerProcess) -> None:
    # 200 req/s for 0.5 s is 100 intended send times; each is sent once and measured.
    plan = LoadPlan(ceiling_server.url, (RequestTemplate("POST", "/json?reply_bytes=100", body=b"{}"),),
                    mode="open", rate=200.0, concurrency=16, warmup_s=0.0, duration_s=0.5)
    r = run_load(plan)
    assert (r.requests, r.errors) == (100, 0)
    assert r.bytes_received == 100 * 100


def test_warmup_requests_are_not_recorded(ceiling_server: ServerProcess) -> None:
    # Due times are every 10 ms: 0.00..0.40 s fall in the warm-up (41 sent, not measured),
    # 0.41..0.60 s in the 0.2 s window (20 measured).
    plan = LoadPlan(ceiling_server.url, (RequestTemplate("POST", "/json", body=b"{}"),),
                    mode="open", rate=100.0, warmup_s=0.405, duration_s=0.2)
    r = run_load(plan)
    assert r.requests == r.latency.count == 20


def test_two_processes_split_and_merge(ceiling_server: ServerProcess) -> None:
    plan = LoadPlan(ceiling_server.url, (RequestTemplate("GET", "/source/2048"),),
                    concurrency=4, warmup_s=0.0, duration_s=30.0, max_requests=31, processes=2)
    r = run_load(plan)
    assert (r.processes, r.requests, r.errors) == (2, 31, 0)
    assert r.bytes_received == 31 * 2048 and r.latency.count == 31


def test_streamed_synthetic_and_file_bodies(ceiling_server: ServerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "body"
    path.write_bytes(os.urandom(3 * MIB))
    for tmpl in (RequestTemplate("POST", "/echo", body_size=2 * MIB),
                 RequestTemplate("POST", "/echo", body_size=3 * MIB, body_file=str(path))):
        plan = LoadPlan(ceiling_server.url, (tmpl,), concurrency=1, warmup_s=0.0, duration_s=30.0, max_requests=2)
        r = run_load(plan)
        assert (r.requests, r.errors) == (2, 0)
        assert r.bytes_received == 2 * tmpl.payload_bytes


def test_unexpected_status_and_body_are_errors_not_successes(ceiling_server: ServerProcess) -> None:
    base = LoadPlan(ceiling_server.url, (RequestTemplate("GET", "/no-such-route"),),
                    warmup_s=0.0, duration_s=30.0, max_requests=5)
    r = run_load(base)
    assert (r.requests, r.errors) == (0, 5)
    assert r.error_kinds == {"HTTP 404": 5}
    wrong_body = replace(base, requests=(RequestTemplate("POST", "/json", body=b"{}"),), expect_contains=b"Plaintext")
    assert run_load(wrong_body).errors == 5


def test_connection_refused_is_counted_and_bounded() -> None:
    from bench.procs import free_port

    plan = LoadPlan(f"http://127.0.0.1:{free_port()}", (RequestTemplate("GET", "/"),),
                    warmup_s=0.0, duration_s=30.0, max_requests=3)
    r = run_load(plan)
    assert r.requests == 0 and r.errors == 3


def test_child_plans_divide_concurrency_rate_and_count() -> None:
    plan = LoadPlan("http://127.0.0.1:1", (RequestTemplate("GET", "/"),), mode="open", rate=300.0,
                    concurrency=5, max_requests=10, processes=3)
    parts = child_plans(plan)
    assert [p.concurrency for p, _ in parts] == [2, 2, 1]
    assert [p.max_requests for p, _ in parts] == [4, 3, 3]
    assert all(p.rate == pytest.approx(100.0) for p, _ in parts)
    assert len({phase for _, phase in parts}) == 3


def test_plan_json_round_trip() -> None:
    plan = LoadPlan("http://h", (RequestTemplate("POST", "/", (("A", "b"),), b"\x00\xff", 0, ""),),
                    expect_contains=b'"x"', expect_status=(200, 201))
    assert LoadPlan.from_json(plan.to_json()) == plan


def test_ceiling_workers_are_stopped_with_the_server() -> None:
    from bench.ceilings import start_http_ceiling
    from bench.procs import free_port

    server = start_http_ceiling(free_port(), workers=2)
    # The port answers once one process listens; the second may still be starting: wait, bounded.
    deadline = time.monotonic() + 10
    pids = process_tree(server.pid)
    while len(pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = process_tree(server.pid)
    assert len(pids) >= 2
    server.stop()
    # Killed processes may take a moment to be reaped by their new parent; wait, bounded.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
