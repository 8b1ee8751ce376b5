"""Shared fixtures: a real ``kmsgate serve`` process on a free loopback port, and real clients for it."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.postgres import fresh_database, postgres_server

ROOT_ACCESS_KEY_ID = "AKIAKMSGATETEST00001"
ROOT_SECRET_ACCESS_KEY = "kmsgate-test-secret-0000000000000000000000"[:40]
ROOT_TOKEN = "kmsgate-test-root-token-000000000000000"
REGION = "us-east-1"
ACCOUNT_ID = "111122223333"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0,
                  ssl_context: ssl.SSLContext | None = None) -> None:
    """Wait until the server answers ``GET /healthz`` with 200 (listening alone is not ready);
    over TLS with ``ssl_context``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kmsgate exited early with code {process.returncode}")
        try:
            connection = (http.client.HTTPConnection("127.0.0.1", port, timeout=1.0) if ssl_context is None else
                          http.client.HTTPSConnection("127.0.0.1", port, timeout=1.0, context=ssl_context))
            try:
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            finally:
                connection.close()
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"kmsgate did not become healthy on port {port} within {timeout} s")


@dataclass
class KmsgateServer:
    """A running ``kmsgate serve`` process. ``start``/``stop``/``kill`` let tests restart it."""

    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    region: str = REGION
    account_id: str = ACCOUNT_ID
    access_key_id: str = ROOT_ACCESS_KEY_ID
    secret_access_key: str = ROOT_SECRET_ACCESS_KEY
    root_token: str = ROOT_TOKEN
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    ca_file: Path | None = None  # the server serves TLS (its --tls-* arguments in extra_args) signed by this CA

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://127.0.0.1:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext | None:
        return None if self.ca_file is None else ssl.create_default_context(cafile=str(self.ca_file))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KMSGATE_ROOT_ACCESS_KEY_ID=self.access_key_id,
            KMSGATE_ROOT_SECRET_ACCESS_KEY=self.secret_access_key,
            KMSGATE_ROOT_TOKEN=self.root_token,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        command = [
            sys.executable, "-m", "kmsgate", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir),
            "--region", self.region, "--account-id", self.account_id,
            *([] if "--workers" in self.extra_args else ["--workers", "1"]),
            *([] if "--s3-port" in self.extra_args else ["--s3-port", "0"]),  # S3 API off unless asked for
            *self.extra_args,
        ]
        # Its own session, so that kill() can SIGKILL the supervisor and its workers together.
        self.process = subprocess.Popen(
            command, env=self.env(), stdout=log_file, stderr=log_file, start_new_session=True
        )
        log_file.close()
        wait_for_port(self.port, self.process, ssl_context=self.client_ssl_context())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """``kill -9`` of the supervisor and every worker at once: no chance to flush or clean up."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        self.process = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def boto_session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )

    def kms_client(self, **kwargs: Any) -> Any:
        config = BotoConfig(retries={"max_attempts": 1, "mode": "standard"})
        if self.ca_file is not None:
            kwargs.setdefault("verify", str(self.ca_file))
        return self.boto_session().client("kms", endpoint_url=self.endpoint_url, config=config, **kwargs)

    def cli_env(self) -> dict[str, str]:
        """Environment for the ``aws`` command line pointed at this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key_id,
            AWS_SECRET_ACCESS_KEY=self.secret_access_key,
            AWS_DEFAULT_REGION=self.region,
            AWS_ENDPOINT_URL_KMS=self.endpoint_url,
            AWS_MAX_ATTEMPTS="1",
        )
        return env


def start_server(data_dir: Path, *extra_args: str, **extra_env: str) -> KmsgateServer:
    server = KmsgateServer(data_dir=data_dir, extra_args=list(extra_args), extra_env=dict(extra_env))
    server.start()
    return server


@pytest.fixture(scope="session")
def kmsgate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """One kmsgate shared by a whole test session (tests must not assume an empty key list)."""
    server = start_server(tmp_path_factory.mktemp("kmsgate") / "data")
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[KmsgateServer]:
    """A kmsgate of the test's own, with an empty data dir."""
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def kms(kmsgate_server: KmsgateServer) -> Any:
    """A boto3 KMS client for the shared server."""
    return kmsgate_server.kms_client()


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the session (``KMSGATE_TEST_POSTGRES_URL``, else one ``pgserver`` starts)."""
    # Its own directory, outside pytest's numbered temporary directories: pytest sessions running
    # side by side remove each other's older ones, and a server whose data directory vanishes dies.
    base = Path(tempfile.mkdtemp(prefix="kmsgate-test-postgres-"))
    try:
        with postgres_server(base) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A ``postgresql://`` URL of an empty database of this test's own."""
    with fresh_database(postgres_server_url) as url:
        yield url
