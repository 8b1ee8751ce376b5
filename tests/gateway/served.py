"""A server script started as a real process that writes its port to a file once it listens,
stopped by its PID (SIGTERM, then SIGKILL if it does not exit); and a slow request body."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"

    def children(self) -> set[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(p) for p in path.read_text().split()}


def start_script(script: Path, args: list[str], port_file: Path) -> Served:
    """Run ``script`` with ``args``; return once it has written its port to ``port_file``."""
    proc = subprocess.Popen([sys.executable, str(script), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if port_file.exists():
            return Served(proc, int(port_file.read_text()))
        if proc.poll() is not None:
            raise RuntimeError(f"{script.name} exited at start")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{script.name} did not report its port")


def stop(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait()


async def slow_body(sent: asyncio.Event, done: asyncio.Event, block: int = 1024,
                    interval_s: float = 0.05, most: int = 400) -> AsyncIterator[bytes]:
    """A request body that keeps its request in flight: a block every ``interval_s`` until ``done``
    is set (at most ``most`` blocks); ``sent`` is set once the first few blocks are out."""
    for i in range(most):
        yield os.urandom(block)
        if i == 2:
            sent.set()
        if done.is_set():
            return
        await asyncio.sleep(interval_s)
