"""Fixtures for the fuzz tests: how long they run (``KMSGATE_FUZZ_EXAMPLES``) and a server to drive.

``make test`` runs each fuzz target briefly (``FUZZ_EXAMPLES_DEFAULT`` examples); ``make fuzz`` sets
``KMSGATE_FUZZ_EXAMPLES`` for the long runs. Hypothesis keeps the failing examples it finds in its
database, and each defect found is kept as an explicit ``@example`` or corpus entry next to its target.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import KmsgateServer, start_server

FUZZ_EXAMPLES_DEFAULT = 6
CORPUS = Path(__file__).parent / "corpus"


def fuzz_examples(scale: int = 1) -> int:
    """Examples per fuzz target: ``KMSGATE_FUZZ_EXAMPLES`` (the long run) or the brief default, times ``scale``."""
    return int(os.environ.get("KMSGATE_FUZZ_EXAMPLES", FUZZ_EXAMPLES_DEFAULT)) * scale


def fuzz_settings(scale: int = 1) -> settings:
    return settings(max_examples=fuzz_examples(scale), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """A kmsgate with authentication off (``--insecure-no-auth``: every request acts as the account root),
    so that the fuzzers spend their time in the request paths rather than in signing."""
    server = start_server(tmp_path_factory.mktemp("fuzz") / "data", "--insecure-no-auth")
    yield server
    server.stop()
