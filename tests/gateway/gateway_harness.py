"""Helpers for the gateway's end-to-end tests: a gateway app on a real loopback port."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from kmsgate.core.principal import Caller, account_root
from kmsgate.envelope.kms_client import InProcessKmsClient
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.exchange import GATEWAY
from kmsgate.gateway.routes import setup_gateway
from kmsgate.gateway.service import DEFAULT_KEY_ALIAS, Gateway, GatewaySettings
from kmsgate.gateway.storage.base import Storage
from kmsgate.gateway.storage.catalog import CATALOG_FILENAME
from kmsgate.gateway.storage.file import FileStorage
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service

ACCOUNT_ID = "111122223333"
REGION = "us-east-1"
ROOT = account_root(ACCOUNT_ID)


class TrustAsRoot:
    """Every gateway request acts as the account root, no credentials checked.

    For tests of everything but authentication (``tests/gateway_auth`` covers that). It lives
    here, in the tests, so no option of kmsgate itself can turn it on.
    """

    def authenticate(self, request: object, body: bytes) -> Caller:
        return Caller(arn=account_root(ACCOUNT_ID).arn, account_id=ACCOUNT_ID,
                      source_ip=getattr(request, "remote", None))


@dataclass
class RunningGateway:
    url: str
    app: web.Application
    service: KmsService | None
    key_arn: str
    root_secret: bytes

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY]


async def create_key(service: KmsService, alias: str | None = None) -> str:
    caller = account_root(ACCOUNT_ID)
    meta = (await service.create_key(caller=caller))["key_metadata"]
    arn = str(meta["arn"])
    if alias:
        await service.create_alias(caller=caller, alias_name=alias, target_key_id=arn)
    return arn


async def start_gateway(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _file_storage(gw: RunningGateway) -> FileStorage:
    storage = gw.gateway.storage
    if not isinstance(storage, FileStorage):
        raise TypeError("stored bytes are reached here on the file storage backend only")
    return storage


def stored_bytes(gw: RunningGateway, key: str) -> bytes:
    """The stored bytes of ``key`` in the default bucket (file storage): its data file's, or
    its catalog row's for an object kept inline."""
    storage, bucket = _file_storage(gw), gw.gateway.settings.default_bucket
    files = storage.object_files(bucket, key)
    if files:
        return files[0].read_bytes()
    with sqlite3.connect(storage.root / CATALOG_FILENAME) as db:
        (data,) = db.execute("SELECT data FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
    return bytes(data)


def overwrite_stored(gw: RunningGateway, key: str, data: bytes) -> None:
    """Put ``data`` where the stored bytes of ``key`` are (as damage on disk would), leaving the
    catalog's record of their size as it was."""
    storage, bucket = _file_storage(gw), gw.gateway.settings.default_bucket
    files = storage.object_files(bucket, key)
    if files:
        files[0].write_bytes(data)
        return
    with sqlite3.connect(storage.root / CATALOG_FILENAME) as db:
        db.execute("UPDATE objects SET data = ? WHERE bucket = ? AND key = ?", (data, bucket, key))


async def gateway_over(tmp_path: Path, storage: Storage, settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """The gateway routes over ``storage`` on a real aiohttp server on 127.0.0.1, with the KMS in-process."""
    secret = os.urandom(32)
    service = open_service(tmp_path / "kms", RootKey(secret), region=REGION, account_id=ACCOUNT_ID)
    key_arn = await create_key(service, DEFAULT_KEY_ALIAS)

    async def factory(app: web.Application) -> Gateway:
        kms = InProcessKmsClient(service, account_root(ACCOUNT_ID))
        return Gateway(storage=storage, kms=kms, metrics=GatewayMetrics(), settings=settings,
                       authenticator=TrustAsRoot())

    app = web.Application()
    setup_gateway(app, factory)
    runner, url = await start_gateway(app)
    try:
        yield RunningGateway(url=url, app=app, service=service, key_arn=key_arn, root_secret=secret)
    finally:
        await runner.cleanup()
        service.close()
