"""Shared pieces of the deploy/ tests: where the artifacts are, the external tools they need, and a
running kmsgate that has served a small workload (for the Prometheus and Grafana checks)."""

from __future__ import annotations

import http.client
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import KmsgateServer, start_server

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCS = REPO / "docs"


def require_tool(name: str, how: str) -> str:
    """The path of command ``name``, or a skip saying in one line how ``make tools`` provides it."""
    in_venv = Path(sys.prefix) / "bin" / name  # what `make tools` installs from PyPI
    path = shutil.which(name) or (str(in_venv) if in_venv.exists() else None)
    if path is None:
        pytest.skip(f"{name} not installed ({how})")
    return path


@dataclass(frozen=True)
class Workload:
    """What the workload did against the server, and the server's /metrics after it."""

    server: KmsgateServer
    metrics_text: str


def request(server: KmsgateServer, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {server.root_token}"}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def run_workload(server: KmsgateServer) -> None:
    """A little of everything the dashboard and alerts look at: KMS API calls, object writes and
    reads (cache misses, hits, and evictions by capacity with ``--cache-capacity 1``)."""
    kms = server.kms_client()
    key_id = kms.create_key(Description="deploy workload")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"workload")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"workload"
    for name in ("a", "b", "a"):
        status, _ = request(server, "PUT", f"/v1/objects/workload/{name}", b"x" * 4096)
        assert status == 201
    for name in ("a", "b", "a", "a"):
        status, body = request(server, "GET", f"/v1/objects/workload/{name}")
        assert (status, body) == (200, b"x" * 4096)
    status, _ = request(server, "GET", "/v1/objects/workload/missing")
    assert status == 404


@pytest.fixture(scope="module")
def worked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    """A kmsgate (one worker under the supervisor, as in production) after ``run_workload``."""
    server = start_server(tmp_path_factory.mktemp("deploy-workload") / "data", "--cache-capacity", "1")
    try:
        run_workload(server)
        status, metrics = request(server, "GET", "/metrics")
        assert status == 200
        yield Workload(server=server, metrics_text=metrics.decode())
    finally:
        server.stop()
