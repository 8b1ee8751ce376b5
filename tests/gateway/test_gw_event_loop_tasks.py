"""The ``kmsgate_event_loop_tasks`` gauge: the tasks alive on the worker's event loop, at scrape time."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway_harness import RunningGateway

IDLE_CONNECTIONS = 40
WAIT_S = 30.0


async def event_loop_tasks(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    values = [s.value for family in text_string_to_metric_families(text) for s in family.samples
              if s.name == "kmsgate_event_loop_tasks"]
    assert len(values) == 1, "one worker serves this app: one sample"
    return values[0]


async def open_keepalive(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has had one request answered and stays open, idle."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return reader, writer


async def test_event_loop_tasks_counts_each_open_connection_and_falls_when_they_close(
    running_gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = running_gateway.url
    before = await event_loop_tasks(http, url)
    conns = [await open_keepalive(url) for _ in range(IDLE_CONNECTIONS)]
    try:
        with_idle = await event_loop_tasks(http, url)
        assert with_idle >= before + IDLE_CONNECTIONS
    finally:
        for _, writer in conns:
            writer.close()
            await writer.wait_closed()
    deadline = time.monotonic() + WAIT_S
    after = with_idle
    while time.monotonic() < deadline:
        after = await event_loop_tasks(http, url)
        if after <= with_idle - IDLE_CONNECTIONS:
            break
        await asyncio.sleep(0.05)
    assert after <= with_idle - IDLE_CONNECTIONS, (before, with_idle, after)
