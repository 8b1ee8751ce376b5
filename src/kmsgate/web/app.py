"""``create_app``: the one place where the application is wired together."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from aiohttp import web

from kmsgate.auth.adapters import KeyPolicyAuthorizer, KmsAuditSink, SigV4Authenticator
from kmsgate.auth.audit import AuditLog
from kmsgate.auth.identities import IdentityDirectory, load_directory
from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.config import Config, split_host_names
from kmsgate.core.principal import Caller, account_root
from kmsgate.envelope.cache import CacheLimits
from kmsgate.envelope.kms_client import InProcessKmsClient, KmsClient, RemoteKmsClient, RemoteKmsSettings
from kmsgate.gateway.auth import RequestAuthenticator as GatewayRequestAuthenticator
from kmsgate.gateway.auth import gateway_authenticator
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.object_access import ObjectAccess
from kmsgate.gateway.errors import GatewayError
from kmsgate.gateway.exchange import GATEWAY, error_response
from kmsgate.gateway.routes import setup_gateway
from kmsgate.gateway.service import Gateway, GatewaySettings
from kmsgate.gateway.storage.base import Storage
from kmsgate.gateway.storage.file import FileStorage
from kmsgate.gateway.storage.s3 import S3Storage
from kmsgate.gateway.upload_expiry import expire_abandoned_uploads
from kmsgate.gateway.workers import LISTENER_APPS, metrics_dir_from_env
from kmsgate.kms.rootkey_source import load_root_key
from kmsgate.kms.service import KmsService, open_service
from kmsgate.s3front.app import create_s3_app
from kmsgate.s3front.auth import S3Authenticator
from kmsgate.web.kms_api import KMS_API, Authenticator, KmsApi, TrustingAuthenticator, add_kms_route, malformed_response
from kmsgate.web.malformed import MALFORMED, Malformed

log = logging.getLogger("kmsgate")

AUDIT_FILENAME = "audit.log"
OBJECTS_DIRNAME = "objects"

KMS_SERVICE: web.AppKey[KmsService] = web.AppKey("kms_service", KmsService)
IDENTITIES: web.AppKey[IdentityDirectory] = web.AppKey("identities", IdentityDirectory)
AUDIT_SINK: web.AppKey[KmsAuditSink] = web.AppKey("audit_sink", KmsAuditSink)


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=1024**2)
    app.cleanup_ctx.append(_kms_context(config))
    app[MALFORMED] = _malformed_answer
    add_kms_route(app)
    setup_gateway(app, partial(_build_gateway, config))
    app.cleanup_ctx.append(partial(_upload_expiry, config))
    if config.s3_port:
        named = ("localhost",) if _is_address(config.host) else ("localhost", config.host)
        base_hosts = named + tuple(name for name in split_host_names(config.s3_domain) if name not in named)
        s3_app = create_s3_app(app, partial(_s3_authenticator, config, app), region=config.region,
                               base_hosts=base_hosts)
        app[LISTENER_APPS] = {"s3": s3_app}
    return app


def _malformed_answer(malformed: Malformed, target: str | None) -> web.Response:
    """The KMS and ``/v1`` share a port: a malformed request is answered in the shape its path shows."""
    if target is not None and target.startswith("/v1/"):
        return error_response(GatewayError(400, "MalformedRequest", malformed.message))
    return malformed_response(malformed)


async def _upload_expiry(config: Config, app: web.Application) -> AsyncIterator[None]:
    """The worker's sweep of abandoned multipart uploads (``kmsgate.gateway.upload_expiry``),
    cancelled and awaited at shutdown before the gateway closes."""
    task = asyncio.create_task(expire_abandoned_uploads(app[GATEWAY].multipart, config.multipart_max_age_seconds))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _s3_authenticator(config: Config, app: web.Application) -> S3Authenticator:
    """The S3 API's SigV4 (service ``s3``; unsigned and chunk-signed payloads, presigned URLs),
    over the identities the main application loaded; everyone is the root without auth."""
    if config.insecure_no_auth:
        return S3Authenticator(None, trusted=account_root(config.account_id))
    verifier = SigV4Verifier(app[IDENTITIES], config.region, "s3", allow_unsigned_payload=True,
                             allow_streaming_payload=True)
    return S3Authenticator(verifier)


async def _build_gateway(config: Config, app: web.Application) -> Gateway:
    storage: Storage
    if config.storage == "s3":
        storage = await S3Storage.open(
            bucket=config.s3_bucket or "",
            prefix=config.s3_prefix,
            endpoint_url=config.s3_endpoint_url,
            region=config.s3_region,
            timeout_seconds=config.s3_timeout_seconds,
        )
    else:
        storage = await FileStorage.open(config.data_dir / OBJECTS_DIRNAME)
    kms: KmsClient
    kms_for: Callable[[Caller], KmsClient] | None = None
    kms_caller: Caller | None = None
    on_close = None
    key_store_probe = None
    if config.kms_endpoint is not None:
        remote = RemoteKmsClient(
            RemoteKmsSettings(
                endpoint_url=config.kms_endpoint,
                region=config.kms_region or config.region,
                read_timeout_seconds=config.kms_timeout_seconds,
            )
        )
        await remote.start()
        kms, on_close = remote, remote.close
    else:
        service = app[KMS_SERVICE]
        kms_caller = account_root(config.account_id)
        kms = InProcessKmsClient(service, kms_caller)
        kms_for = partial(InProcessKmsClient, service)  # the gateway calls the KMS as each caller
        key_store_probe = service.check_key_store
    settings = GatewaySettings(
        default_key_id=config.default_key_alias,
        default_bucket=config.default_bucket,
        max_object_bytes=config.max_object_size,
        max_in_flight=config.max_in_flight,
        kms_timeout_seconds=config.kms_timeout_seconds,
        cache_limits=CacheLimits(
            max_age_seconds=config.cache_max_age_seconds,
            max_messages=config.cache_max_messages,
            max_bytes=config.cache_max_bytes,
            capacity=config.cache_capacity,
        ),
    )
    authenticator: GatewayRequestAuthenticator = (
        TrustingAuthenticator(config.account_id) if config.insecure_no_auth
        else gateway_authenticator(app[IDENTITIES], config.region)
    )
    return Gateway(
        storage=storage,
        kms=kms,
        kms_for=kms_for,
        kms_caller=kms_caller,
        authenticator=authenticator,
        object_access=ObjectAccess(app[IDENTITIES]),
        audit=app[AUDIT_SINK].record if config.kms_endpoint is None else None,
        audit_status=app[AUDIT_SINK],
        metrics=GatewayMetrics(metrics_dir_from_env()),
        settings=settings,
        key_store_probe=key_store_probe,
        on_close=on_close,
    )


def _kms_context(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        root_key, _source = load_root_key(
            env_value=os.environ.get("KMSGATE_ROOT_KEY"), path=config.root_key_file, data_dir=config.data_dir
        )
        directory, _root = load_directory(
            config.account_id, os.environ, config.data_dir, config.identities_file, config.region
        )
        # Late-bound: the authorizer reads grants from the service built just below.
        authorizer = KeyPolicyAuthorizer(directory, grants_for=lambda key_arn: service.grants_for(key_arn))
        service = open_service(
            config.data_dir, root_key, region=config.region, account_id=config.account_id, authorizer=authorizer,
            key_store=config.key_store,
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
        sink = KmsAuditSink(audit)
        app[AUDIT_SINK] = sink
        app[KMS_API] = KmsApi(service, authenticator, sink)
        task = asyncio.create_task(_maintenance_loop(service, config.maintenance_interval_seconds))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await service.flush_usage()
        finally:
            await audit.close()
            service.close()

    return context


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
        try:
            await service.flush_usage()
        except Exception:  # unwritten uses stay pending for the next tick
            log.exception("key usage flush failed")
        await asyncio.sleep(interval)
