"""The worker supervisor: processes sharing a port, restart of dead workers, SIGTERM drain.

Each test starts the supervisor as a real process on a loopback port and stops it by PID.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

import aiohttp
import pytest
from served import Served, start_script, stop

APP = Path(__file__).with_name("worker_app.py")


def start(tmp_path: Path, workers: int, drain: float) -> Served:
    port_file = tmp_path / "port"
    return start_script(APP, [str(port_file), str(workers), str(drain)], port_file)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = start(tmp_path, workers=2, drain=10)
    try:
        yield s
    finally:
        stop(s)


def _alive(s: Served) -> set[int]:
    try:
        return s.children()
    except FileNotFoundError:
        return set()


async def fetch_pid(url: str, attempts: int = 100) -> dict[str, object]:
    """One new connection per call, retried while workers are still starting."""
    for _ in range(attempts):
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                async with s.get(url + "/pid") as resp:
                    return dict(await resp.json())
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.05)
    raise RuntimeError("no worker answered")


async def test_workers_share_the_port(served: Served) -> None:
    seen = set()
    for _ in range(40):
        body = await fetch_pid(served.url)
        seen.add(body["pid"])
        assert body["metrics_dir"]
        if len(seen) == 2:
            break
    assert seen == served.children()


async def test_dead_worker_is_replaced(served: Served) -> None:
    await fetch_pid(served.url)
    for _ in range(100):
        if len(served.children()) == 2:
            break
        await asyncio.sleep(0.05)
    before = served.children()
    victim = next(iter(before))
    os.kill(victim, signal.SIGKILL)
    for _ in range(200):
        now = served.children()
        if len(now) == 2 and victim not in now:
            break
        await asyncio.sleep(0.05)
    assert len(now) == 2 and victim not in now
    body = await fetch_pid(served.url)
    assert body["pid"] in now


def restarts(exposition: str) -> dict[str, float]:
    """``kmsgate_worker_restarts_total`` by reason, from a ``/metrics`` text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.labels["reason"]: sample.value
            for family in text_string_to_metric_families(exposition) if family.name == "kmsgate_worker_restarts"
            for sample in family.samples if sample.name == "kmsgate_worker_restarts_total"}


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/metrics") as resp:
            return await resp.text()


async def _workers_once(s: Served, workers: int, other_than: AbstractSet[int] = frozenset()) -> set[int]:
    """The live workers once ``workers`` of them run and one is not in ``other_than`` (waits up to about 20 s)."""
    now: set[int] = set()
    for _ in range(400):
        now = _alive(s)
        if len(now) == workers and (not other_than or now - other_than):
            return now
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {workers} workers, a new one among them; alive: {now}, before: {other_than}")


async def test_a_worker_killed_by_a_signal_from_outside_is_counted_as_a_signal_restart(served: Served) -> None:
    await fetch_pid(served.url)
    before = await _workers_once(served, workers=2)
    assert restarts(await scrape(served.url)) == {"exited": 0.0, "signal": 0.0, "unresponsive": 0.0}
    os.kill(next(iter(before)), signal.SIGKILL)
    await _workers_once(served, workers=2, other_than=before)
    assert restarts(await scrape(served.url)) == {"exited": 0.0, "signal": 1.0, "unresponsive": 0.0}


async def test_a_worker_that_exits_on_its_own_is_counted_as_an_exited_restart(served: Served) -> None:
    await fetch_pid(served.url)
    before = await _workers_once(served, workers=2)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            async with session.post(served.url + "/exit?code=3") as resp:
                await resp.read()
    except aiohttp.ClientError:
        pass  # the worker is gone before it answers, as it should be
    await _workers_once(served, workers=2, other_than=before)
    assert restarts(await scrape(served.url)) == {"exited": 1.0, "signal": 0.0, "unresponsive": 0.0}


async def test_sigterm_drains_in_flight_requests(served: Served) -> None:
    await fetch_pid(served.url)
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(session.get(served.url + "/slow?seconds=1.5"))
        await asyncio.sleep(0.5)  # the request is in flight when the signal lands
        served.proc.send_signal(signal.SIGTERM)
        resp = await request
        assert resp.status == 200
        assert await resp.text() == "done"
    code = await asyncio.to_thread(served.proc.wait, 30)
    assert code == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(served.url + "/pid")


async def test_drain_timeout_bounds_shutdown(tmp_path: Path) -> None:
    s = start(tmp_path, workers=1, drain=0.5)
    try:
        await fetch_pid(s.url)
        async with aiohttp.ClientSession() as session:
            request = asyncio.ensure_future(session.get(s.url + "/slow?seconds=60"))
            await asyncio.sleep(0.3)
            s.proc.send_signal(signal.SIGTERM)
            with pytest.raises(aiohttp.ClientError):
                resp = await request
                await resp.read()
        assert await asyncio.to_thread(s.proc.wait, 30) == 0
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


async def test_supervisor_removes_its_metrics_dir(served: Served) -> None:
    body = await fetch_pid(served.url)
    metrics_dir = Path(str(body["metrics_dir"]))
    assert metrics_dir.is_dir()
    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(served.proc.wait, 30) == 0
    assert not metrics_dir.exists()


async def test_a_worker_whose_event_loop_is_blocked_is_killed_and_replaced(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    s = start_script(APP, [str(port_file), "1", "5", "2"], port_file)  # one worker, liveness timeout 2 s
    try:
        frozen = int((await fetch_pid(s.url))["pid"])  # type: ignore[call-overload]
        freezing = asyncio.ensure_future(_get_quietly(s.url + "/freeze"))
        answered: dict[str, object] = {}
        for _ in range(600):  # until a worker answers again (each attempt bounded), at most about a minute
            try:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                                 timeout=aiohttp.ClientTimeout(total=1)) as session:
                    async with session.get(s.url + "/pid") as resp:
                        answered = dict(await resp.json())
                if answered["pid"] != frozen:
                    break
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)
        assert answered.get("pid") not in (None, frozen)
        assert frozen not in _alive(s)  # killed and reaped, not left behind
        await freezing
        async with aiohttp.ClientSession() as session:
            async with session.get(s.url + "/metrics") as resp:
                metrics = await resp.text()
        assert "kmsgate_workers_killed_unresponsive_total 1.0" in metrics
        assert restarts(metrics) == {"exited": 0.0, "signal": 0.0, "unresponsive": 1.0}
    finally:
        stop(s)


async def _get_quietly(url: str) -> None:
    """A request that never gets an answer: the worker serving it is killed under it."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            async with session.get(url) as resp:
                await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return


async def test_a_named_listener_is_served_by_every_worker_on_its_own_port(tmp_path: Path) -> None:
    from tests.conftest import free_port

    port_file, extra_port = tmp_path / "port", free_port()
    s = start_script(APP, [str(port_file), "2", "5", "30", str(extra_port)], port_file)
    try:
        extra_url = f"http://127.0.0.1:{extra_port}"
        seen: set[object] = set()
        for _ in range(200):
            try:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                    async with http.get(extra_url + "/listener") as resp:
                        body = await resp.json()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
                continue
            assert body["listener"] == "extra"
            seen.add(body["pid"])
            if len(seen) == 2:
                break
        assert seen <= _alive(s) and len(seen) == 2, "both workers serve the extra port"
        main = await fetch_pid(s.url)
        assert main["pid"] in _alive(s)
        async with aiohttp.ClientSession() as http:
            async with http.get(extra_url + "/pid") as resp:  # the main routes are not on the extra port
                assert resp.status == 404
    finally:
        stop(s)
