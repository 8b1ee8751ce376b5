"""Fixtures for the gateway tests: storage backends, and an S3-compatible server on loopback.

The S3 backend is tested against moto's server mode: no other S3-compatible server is
installable from the package registries this project uses. It is a real HTTP server on
127.0.0.1 that the real aiobotocore client talks to over a socket.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import boto3
import pytest
from gateway_harness import RunningGateway, gateway_over
from moto.server import ThreadedMotoServer
from storage_contract import BUCKET

from kmsgate.gateway.service import GatewaySettings

from kmsgate.gateway.storage.base import Storage
from kmsgate.gateway.storage.file import FileStorage
from kmsgate.gateway.storage.s3 import MIN_PART_BYTES, S3Storage

DUMMY_ACCESS_KEY_ID = "AKIAGATEWAYTESTS0001"
DUMMY_SECRET_ACCESS_KEY = "gateway-test-secret-key-0123456789abcdefg"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, stopped at the end of the session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials through the standard chain; no shared config files are read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def s3_bucket(s3_endpoint: str, aws_env: None) -> str:
    """A fresh, empty bucket on the loopback S3 server."""
    name = f"kmsgate-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_admin(s3_endpoint: str, aws_env: None) -> object:
    """A synchronous boto3 client to inspect the bucket from outside the backend."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
async def s3_storage(s3_endpoint: str, s3_bucket: str) -> AsyncIterator[S3Storage]:
    storage = await S3Storage.open(
        bucket=s3_bucket, prefix="objects/", endpoint_url=s3_endpoint,
        region="us-east-1", part_size=MIN_PART_BYTES, max_part_bytes=2 * MIN_PART_BYTES,
    )
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
async def file_storage(tmp_path: Path) -> AsyncIterator[FileStorage]:
    storage = await FileStorage.open(tmp_path / "store")
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Each storage backend in turn, for the shared contract tests."""
    name = "file_storage" if request.param == "file" else "s3_storage"
    backend: Storage = request.getfixturevalue(name)
    return backend


# -- a gateway on a real loopback port, with an in-process KMS ------------------------------


@pytest.fixture
def gateway_settings() -> GatewaySettings:
    """Small frames keep frame-boundary tests cheap; tests override this fixture to tune."""
    return GatewaySettings(frame_length=4096, max_object_bytes=32 * 1024 * 1024)


@pytest.fixture
async def running_gateway(tmp_path: Path, gateway_settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """The gateway routes over file storage on a real aiohttp server on 127.0.0.1, with the KMS in-process."""
    async for gateway in gateway_over(tmp_path, FileStorage(tmp_path / "objects"), gateway_settings):
        yield gateway


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


@pytest.fixture
async def bucket(storage: Storage) -> str:
    """The contract tests' bucket, created in the backend under test."""
    await storage.create_bucket(BUCKET)
    return BUCKET
