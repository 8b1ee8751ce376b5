"""Serial: blocking calls for one descriptor, one at a time in the thread pool. A caller that is
cancelled does not stop its call, and ``drain`` waits for that call before the descriptor may be
closed; a call started behind the caller reports its failure to whoever waits next."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kmsgate.gateway.storage.fileio import Serial


async def test_drain_waits_for_the_call_of_a_cancelled_caller() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def write() -> None:
        started.set()
        release.wait(30)
        finished.append(True)

    serial = Serial()
    caller = asyncio.ensure_future(serial.run(write))
    await asyncio.to_thread(started.wait, 30)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    drained = asyncio.ensure_future(serial.drain())
    done, _ = await asyncio.wait({drained}, timeout=0.2)
    assert not done, "drain returned while the cancelled caller's call was still running"
    release.set()
    await drained
    assert finished == [True]


async def test_a_call_started_behind_the_caller_runs_before_the_next_and_reports_its_failure() -> None:
    order: list[str] = []
    release = threading.Event()

    def first() -> None:
        release.wait(30)
        order.append("first")
        raise OSError(28, "No space left on device")

    def second() -> None:
        order.append("second")

    serial = Serial()
    serial.start(first)
    with pytest.raises(RuntimeError):
        serial.start(second)  # one call at a time
    release.set()
    with pytest.raises(OSError):
        await serial.wait()
    await serial.run(second)
    assert order == ["first", "second"]


async def test_a_failed_call_is_reported_to_its_own_caller_only() -> None:
    def failing() -> None:
        raise OSError(5, "Input/output error")

    serial = Serial()
    with pytest.raises(OSError):
        await serial.run(failing)
    assert await serial.run(lambda: "next") == "next"
