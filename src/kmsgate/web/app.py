"""``create_app``: the one place where the application is wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from kmsgate.auth.adapters import KeyPolicyAuthorizer, KmsAuditSink, SigV4Authenticator
from kmsgate.auth.audit import AuditLog
from kmsgate.auth.identities import IdentityDirectory, load_directory
from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.config import Config
from kmsgate.kms.rootkey_source import load_root_key
from kmsgate.kms.service import KmsService, open_service
from kmsgate.web.kms_api import Authenticator, KmsApi, TrustingAuthenticator

log = logging.getLogger("kmsgate")

AUDIT_FILENAME = "audit.log"

KMS_SERVICE: web.AppKey[KmsService] = web.AppKey("kms_service", KmsService)
KMS_API: web.AppKey[KmsApi] = web.AppKey("kms_api", KmsApi)
IDENTITIES: web.AppKey[IdentityDirectory] = web.AppKey("identities", IdentityDirectory)


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=1024**2)
    app.cleanup_ctx.append(_kms_context(config))
    app.router.add_post("/", _kms_handler)
    return app


async def _kms_handler(request: web.Request) -> web.StreamResponse:
    return await request.app[KMS_API].handle(request)


def _kms_context(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        root_key, _source = load_root_key(
            env_value=os.environ.get("KMSGATE_ROOT_KEY"), path=config.root_key_file, data_dir=config.data_dir
        )
        directory, _root = load_directory(
            config.account_id, os.environ, config.data_dir, config.identities_file, config.region
        )
        authorizer = KeyPolicyAuthorizer(directory)
        service = open_service(
            config.data_dir, root_key, region=config.region, account_id=config.account_id, authorizer=authorizer
        )
        authenticator: Authenticator
        if config.insecure_no_auth:
            authenticator = TrustingAuthenticator(config.account_id)
        else:
            authenticator = SigV4Authenticator(SigV4Verifier(directory, config.region, "kms"))
        echo: Callable[[bytes], Any] | None = sys.stdout.buffer.write if config.audit_stdout else None
        audit = AuditLog(config.data_dir / AUDIT_FILENAME, fsync=config.audit_fsync, echo=echo)
        await audit.start()
        app[IDENTITIES] = directory
        app[KMS_SERVICE] = service
        app[KMS_API] = KmsApi(service, authenticator, KmsAuditSink(audit))
        task = asyncio.create_task(_maintenance_loop(service, config.maintenance_interval_seconds))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await audit.close()
        service.close()

    return context  # type: ignore[return-value]


async def _maintenance_loop(service: KmsService, interval: float) -> None:
    while True:
        try:
            report = await service.run_due()
            if report.deleted or report.rotated or report.expired:
                log.info(
                    "key maintenance",
                    extra={"deleted": report.deleted, "rotated": report.rotated, "expired": report.expired},
                )
        except Exception:  # a failed pass is retried on the next tick; the loop must not die
            log.exception("key maintenance failed")
        await asyncio.sleep(interval)
