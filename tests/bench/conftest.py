"""Fixtures for the benchmark tool's tests: the bare ceiling server on loopback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench.ceilings import start_http_ceiling  # noqa: E402
from bench.procs import ServerProcess, free_port  # noqa: E402


@pytest.fixture(scope="session")
def ceiling_server() -> Iterator[ServerProcess]:
    server = start_http_ceiling(free_port(), workers=1)
    try:
        yield server
    finally:
        server.stop()
