"""Fixtures for the S3 API tests: a real ``kmsgate serve`` with ``--s3-port``, and boto3 S3 clients for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config as BotoConfig

from tests.conftest import KmsgateServer, free_port, start_server


def s3_endpoint(server: KmsgateServer) -> str:
    return f"http://127.0.0.1:{server.extra_args[server.extra_args.index('--s3-port') + 1]}"


def s3_client(server: KmsgateServer, *, access_key_id: str | None = None, secret_access_key: str | None = None,
              **config: Any) -> Any:
    session = server.boto_session()
    options: dict[str, Any] = {"retries": {"max_attempts": 1, "mode": "standard"}, "s3": {"addressing_style": "path"},
                               "signature_version": "s3v4"}
    options.update(config)
    return session.client(
        "s3", endpoint_url=s3_endpoint(server), config=BotoConfig(**options),
        aws_access_key_id=access_key_id or server.access_key_id,
        aws_secret_access_key=secret_access_key or server.secret_access_key,
    )


NOBODY_ACCESS_KEY_ID = "AKIANOBODYEXAMPLE001"
NOBODY_SECRET_ACCESS_KEY = "nobody-secret-0000000000000000000000000000"[:40]
IDENTITIES = f"""
[[principal]]
arn = "arn:aws:iam::111122223333:user/nobody"
[[principal.access_keys]]
access_key_id = "{NOBODY_ACCESS_KEY_ID}"
secret_access_key = "{NOBODY_SECRET_ACCESS_KEY}"
"""
"""One principal with access keys and no identity policy: allowed nothing."""


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """One kmsgate with its S3 API on, shared by a test module."""
    root = tmp_path_factory.mktemp("kmsgate-s3")
    identities = root / "identities.toml"
    identities.write_text(IDENTITIES)
    identities.chmod(0o600)
    server = start_server(root / "data", "--s3-port", str(free_port()), "--identities", str(identities))
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: KmsgateServer) -> Any:
    return s3_client(s3_server)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh bucket of the test's own."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name


def data_dir(server: KmsgateServer) -> Path:
    return server.data_dir
