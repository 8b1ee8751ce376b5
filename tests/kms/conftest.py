"""Fixtures for the KMS tests: an in-process ``KmsService`` on a ``FakeClock``, and boto3 helpers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kmsgate.core.principal import Caller, account_root
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service

from .helpers import ACCOUNT_ID, REGION


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def caller() -> Caller:
    return account_root(ACCOUNT_ID)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def service(data_dir: Path, clock: FakeClock) -> AsyncIterator[KmsService]:
    svc = open_service(data_dir, RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID, clock=clock)
    yield svc
    svc.close()
