"""Helpers for the fault tests: a real ``kmsgate serve`` killed, starved of disk or cut off, and
a raw request body left half sent."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT_TOKEN

WAIT_S = 30.0


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``condition`` until it holds (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def start_half_sent_put(port: int, path: str, declared: int, sent: int) -> socket.socket:
    """Open a ``PUT`` of ``declared`` bytes to ``path`` and send only ``sent`` of them: the
    request stays in flight, its object partly written, until the socket closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ROOT_TOKEN}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n")
    sock.sendall(head.encode())
    block = b"\xa5" * (256 * 1024)
    remaining = sent
    while remaining > 0:
        sock.sendall(block[:remaining])
        remaining -= len(block)
    return sock


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}
