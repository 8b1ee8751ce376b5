"""The gateway's routes on an aiohttp application, plus health, readiness and metrics.

==========================  =======  =========================================
path                        method   handler
==========================  =======  =========================================
/v1/objects/{key}           PUT      ``objects.put_object``
/v1/objects/{key}           GET      ``objects.get_object``
/v1/objects/{key}           HEAD     ``objects.head_object``
/v1/objects/{key}           DELETE   ``objects.delete_object``
/v1/encrypt                 POST     ``streams.encrypt_stream``
/v1/decrypt                 POST     ``streams.decrypt_stream``
/healthz                    GET      alive (no dependency checked)
/readyz                     GET      storage (with the default bucket), KMS and its key store reachable,
                                     audit log writable, else 503 with the reason of each failed check
/metrics                    GET      Prometheus text exposition
==========================  =======  =========================================

Every ``/v1/...`` request is authenticated (bearer token or S3-style SigV4, see
``kmsgate.gateway.auth``) before anything else; health, readiness and metrics stay open and are
never shed under load, so operators and probes can always see in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web

from kmsgate.core.errors import ClientError, KmsError
from kmsgate.gateway.exchange import GATEWAY, Exchange, endpoint
from kmsgate.gateway.objects import delete_object, get_object, head_object, put_object
from kmsgate.gateway.service import Gateway
from kmsgate.gateway.streams import decrypt_stream, encrypt_stream
from kmsgate.web.exchange import LOAD
from kmsgate.web.inflight import counted_by_handlers

OBJECT_PATH = "/v1/objects/{key:.+}"


async def healthz(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    return web.json_response({"status": "ok"}, dumps=lambda v: orjson.dumps(v).decode())


async def _probe_storage(gateway: Gateway) -> None:
    await gateway.storage.check()
    await gateway.ensure_default_bucket()


async def _probe_kms(gateway: Gateway) -> None:
    if gateway.kms_probe is not None:
        await gateway.kms_probe()
        return
    try:
        await gateway.kms.encrypt(key_id=gateway.settings.default_key_id, plaintext=b"\x00", encryption_context=None)
    except ClientError:
        return  # the KMS answered: reachable (a key problem is reported by the requests themselves)


async def readyz(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    timeout = gateway.settings.readiness_timeout_seconds
    checks: dict[str, str] = {}
    reasons: dict[str, str] = {}

    async def check(name: str, probe: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(timeout):
                await probe
            checks[name] = "ok"
        except TimeoutError:
            checks[name], reasons[name] = "failed", f"no answer within {timeout:g} s"
        except KmsError as exc:  # our own errors carry a message fit for an operator, and no secret
            checks[name], reasons[name] = "failed", exc.message
        except Exception as exc:  # whatever the failure, the dependency is not usable: not ready
            checks[name], reasons[name] = "failed", type(exc).__name__

    probes = [
        check("storage", asyncio.ensure_future(_probe_storage(gateway))),
        check("kms", asyncio.ensure_future(_probe_kms(gateway))),
    ]
    if gateway.key_store_probe is not None:
        probes.append(check("key_store", asyncio.ensure_future(gateway.key_store_probe())))
    await asyncio.gather(*probes)
    if gateway.audit_status is not None:
        checks["audit"] = "ok" if gateway.audit_status.writable else "failed"
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ready", "checks": checks} if ready else {
        "error": "NotReady", "message": "A dependency is unreachable or the audit log cannot be written.",
        "checks": checks, "reasons": reasons}
    headers = None if ready else {"Retry-After": str(gateway.settings.retry_after_seconds)}
    return web.Response(status=200 if ready else 503, body=orjson.dumps(body),
                        content_type="application/json", headers=headers)


async def metrics(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    gateway.sync_metrics()
    body, content_type = gateway.metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_route("PUT", OBJECT_PATH, endpoint("object", put_object))
    router.add_route("GET", OBJECT_PATH, endpoint("object", get_object))
    router.add_route("HEAD", OBJECT_PATH, endpoint("object", head_object))
    router.add_route("DELETE", OBJECT_PATH, endpoint("object", delete_object))
    router.add_route("POST", "/v1/encrypt", endpoint("encrypt", encrypt_stream))
    router.add_route("POST", "/v1/decrypt", endpoint("decrypt", decrypt_stream))
    router.add_route("GET", "/healthz", endpoint("healthz", healthz, shed=False, auth=False))
    router.add_route("GET", "/readyz", endpoint("readyz", readyz, shed=False, auth=False))
    router.add_route("GET", "/metrics", endpoint("metrics", metrics, shed=False, auth=False))


GatewayFactory = Callable[[web.Application], Awaitable[Gateway]]


def setup_gateway(app: web.Application, factory: GatewayFactory) -> None:
    """Add the gateway routes to ``app``; build the ``Gateway`` at startup via ``factory``
    (after any earlier cleanup contexts, so an in-process KMS service opened there is
    available), create the default bucket in storage if it is missing, and close it at shutdown,
    after in-flight requests have drained."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        gateway = await factory(app)
        app[GATEWAY] = gateway
        app[LOAD] = gateway.load
        try:
            await gateway.start()
            yield
        finally:
            await gateway.close()

    app.cleanup_ctx.append(context)
    counted_by_handlers(app)  # every gateway route counts itself in
    add_routes(app)
