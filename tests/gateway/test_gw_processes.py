"""The gateway in worker processes: metrics summed across workers, SIGTERM during an upload."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kmsgate.gateway.service import METRICS_SYNC_SECONDS
from served import Served, slow_body, start_script, stop

APP = Path(__file__).with_name("gateway_app.py")


def start(tmp_path: Path, workers: int, drain: float) -> Served:
    port_file = tmp_path / "port"
    return start_script(APP, [str(tmp_path / "data"), str(port_file), str(workers), str(drain)], port_file)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = start(tmp_path, workers=2, drain=20)
    try:
        yield s
    finally:
        stop(s)


async def wait_ready(url: str) -> None:
    for _ in range(400):
        try:
            async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("gateway never became healthy")


async def test_metrics_are_summed_across_workers(served: Served) -> None:
    await wait_ready(served.url)
    pids = set()
    for i in range(40):  # fresh connections spread over both workers
        conn = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=conn) as http:
            async with http.put(f"{served.url}/v1/objects/k{i}", data=b"v" * 10) as r:
                assert r.status == 201
            pids.add(r.headers.get("Server"))

    async def scraped_total() -> float:
        async with aiohttp.ClientSession() as http, http.get(served.url + "/metrics") as r:
            text = await r.text()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "kmsgate_gateway_requests_total" and s.labels == {
                        "route": "object", "method": "PUT", "status": "201"}:
                    total += s.value
        return total

    # Whichever worker answers /metrics sees every worker's requests once each worker's sync
    # timer (METRICS_SYNC_SECONDS) has run; the deadline leaves room for a slow machine.
    await asyncio.sleep(METRICS_SYNC_SECONDS)
    deadline = time.monotonic() + 10
    total = await scraped_total()
    while total < 40 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        total = await scraped_total()
    assert total == 40


async def test_a_long_request_shows_in_flight_on_every_workers_scrape(served: Served) -> None:
    await wait_ready(served.url)
    sent, done = asyncio.Event(), asyncio.Event()

    async def in_flight_total() -> float:
        conn = aiohttp.TCPConnector(force_close=True)  # a fresh connection: either worker may answer
        async with aiohttp.ClientSession(connector=conn) as http, http.get(served.url + "/metrics") as r:
            text = await r.text()
        return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                   if s.name == "kmsgate_gateway_in_flight_requests")

    async with aiohttp.ClientSession() as http:
        upload = asyncio.ensure_future(http.put(f"{served.url}/v1/objects/long-upload", data=slow_body(sent, done)))
        await sent.wait()
        await asyncio.sleep(METRICS_SYNC_SECONDS + 0.5)  # the upload's worker has published its count
        totals = []
        for _ in range(5):
            totals.append(await in_flight_total())
            # The answering worker counted this scrape too; its next sync takes that back.
            await asyncio.sleep(METRICS_SYNC_SECONDS + 0.2)
        done.set()
        resp = await upload
        assert resp.status == 201
    assert totals == [2.0] * 5  # the upload and the scrape itself, whichever worker answered


async def test_sigterm_during_upload_completes_it(served: Served) -> None:
    await wait_ready(served.url)
    sent = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        for i in range(20):
            yield os.urandom(64 * 1024)
            if i == 4:
                sent.set()
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession() as http:
        upload = asyncio.ensure_future(http.put(f"{served.url}/v1/objects/during-sigterm", data=body()))
        await sent.wait()
        served.proc.send_signal(signal.SIGTERM)  # mid-upload
        resp = await upload
        assert resp.status == 201
        assert (await resp.json())["size"] == 20 * 64 * 1024
    assert await asyncio.to_thread(served.proc.wait, 60) == 0
    stored = list((Path(str(served.proc.args[2])) / "objects" / "data").rglob("*"))  # type: ignore[index]
    assert any(p.is_file() and p.stat().st_size > 20 * 64 * 1024 for p in stored)
