"""A worker of a real ``kmsgate serve --workers 2`` killed (SIGKILL) or frozen (SIGSTOP, until
the liveness timeout replaces it): the supervisor starts a new worker, and a steady client on
keep-alive connections served by the other worker sees no error at all while it happens.

What is asserted exactly: every request on a connection the surviving worker accepted answers
201/200 with the right body, before, during and after the fault; connections the victim had
accepted are not used after the fault (their requests are lost with the victim); once the victim
is replaced, two workers run, the victim's PID is not among them, and new connections are served."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT_TOKEN, start_server

from .conftest import wait_until

LIVENESS_TIMEOUT_S = "2"
MOST_CONNECTIONS = 32
STEADY_ROUNDS = 2000  # at most, and for at most STEADY_SECONDS
STEADY_SECONDS = 60.0


def workers_of(server: Any) -> set[int]:
    pid = server.process.pid
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:["):-1])
    return found


def server_side_inode(client_port: int, server_port: int) -> str | None:
    """The inode of the server's socket of the loopback connection from ``client_port``."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[9]
    return None


def round_trip(connection: http.client.HTTPConnection, name: str) -> None:
    body = os.urandom(512)
    headers = {"Authorization": f"Bearer {ROOT_TOKEN}"}
    connection.request("PUT", f"/v1/objects/{name}", body=body, headers=headers)
    put = connection.getresponse()
    put.read()
    assert put.status == 201
    connection.request("GET", f"/v1/objects/{name}", headers=headers)
    got = connection.getresponse()
    assert (got.status, got.read()) == (200, body)


def connections_by_worker(server: Any, workers: set[int]) -> dict[int, list[http.client.HTTPConnection]]:
    """Keep-alive connections, each used once, grouped by the worker that accepted it, until
    every worker has at least one (bounded in count)."""
    by_worker: dict[int, list[http.client.HTTPConnection]] = {pid: [] for pid in workers}
    for i in range(MOST_CONNECTIONS):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        round_trip(connection, f"warm-{i}")
        assert connection.sock is not None
        inode = server_side_inode(connection.sock.getsockname()[1], server.port)
        owner = next(pid for pid in workers if inode in socket_inodes(pid))
        by_worker[owner].append(connection)
        if all(by_worker.values()):
            return by_worker
    pytest.fail("the connections did not reach both workers")


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_a_crashed_or_frozen_worker_is_replaced_and_the_other_keeps_serving_without_error(
        tmp_path: Path, fault: str) -> None:
    server: Any = start_server(tmp_path / "data", "--workers", "2", "--liveness-timeout", LIVENESS_TIMEOUT_S)
    victim = 0
    try:
        wait_until(lambda: len(workers_of(server)) == 2, "two workers")
        workers = workers_of(server)
        by_worker = connections_by_worker(server, workers)
        victim = min(workers)
        survivors = [c for pid, conns in by_worker.items() if pid != victim for c in conns]

        replaced = threading.Event()
        failures: list[BaseException] = []
        rounds = 0

        def steady() -> None:
            nonlocal rounds
            deadline = time.monotonic() + STEADY_SECONDS
            try:
                while rounds < STEADY_ROUNDS and time.monotonic() < deadline:
                    round_trip(survivors[rounds % len(survivors)], f"steady-{rounds}")
                    rounds += 1
                    if replaced.is_set() and rounds >= 50:
                        return
            except BaseException as exc:  # reported below
                failures.append(exc)

        client = threading.Thread(target=steady)
        client.start()
        wait_until(lambda: rounds >= 10 or bool(failures), "the steady client to run")
        os.kill(victim, signal.SIGKILL if fault == "SIGKILL" else signal.SIGSTOP)

        def victim_replaced() -> bool:
            now = workers_of(server)
            return len(now) == 2 and victim not in now

        wait_until(victim_replaced, "the victim to be replaced", timeout_s=60)
        replaced.set()
        client.join(STEADY_SECONDS + 30)
        assert not client.is_alive()
        assert not failures, failures
        fresh = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        round_trip(fresh, "after")
        fresh.close()
        for connections in by_worker.values():
            for connection in connections:
                connection.close()
    finally:
        if victim and fault == "SIGSTOP":
            try:
                os.kill(victim, signal.SIGCONT)
            except ProcessLookupError:
                pass
        server.stop()
