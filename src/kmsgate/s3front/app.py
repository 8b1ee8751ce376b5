"""The S3 API's aiohttp application: one catch-all route through the shared request wrapper.

``create_s3_app(main, authenticator, region=...)`` builds the application served on
``--s3-port``. It shares the main application's ``Gateway`` (built at the main application's
startup, which the worker runs first), its in-flight count, so a stopping worker drains S3
requests with the rest, and its ``Load``, so ``--max-in-flight`` counts them with the rest.
Each request goes through ``kmsgate.gateway.exchange.endpoint`` with the S3 front
(authentication, load shedding, metrics per operation, access log, error documents), then ``dispatch`` picks the operation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection

from aiohttp import web

from kmsgate.gateway.exchange import GATEWAY, Exchange, endpoint
from kmsgate.gateway.service import Gateway
from kmsgate.s3front.auth import S3Authenticator
from kmsgate.s3front.dispatch import dispatch
from kmsgate.s3front.front import AUTHENTICATOR, REGION, S3Front, add_request_id, malformed_answer
from kmsgate.s3front.target import resolve
from kmsgate.web.exchange import LOAD
from kmsgate.web.inflight import IN_FLIGHT, counted_by_handlers
from kmsgate.web.malformed import MALFORMED

ROUTE = "s3"
BASE_HOSTS = web.AppKey[tuple[str, ...]]("s3_base_hosts")


async def handle(request: web.Request, gateway: Gateway, exchange: Exchange) -> web.StreamResponse:
    base_hosts: tuple[str, ...] = request.app[BASE_HOSTS]
    target = resolve(request.raw_path.partition("?")[0], request.host, base_hosts)
    operation = dispatch(request.method, target, request.query, request.headers)
    exchange.operation = operation.name
    return await operation.handler(request, gateway, exchange, target)


def create_s3_app(main: web.Application, authenticator: Callable[[], S3Authenticator], *, region: str,
                  base_hosts: Collection[str] = ("localhost",)) -> web.Application:
    """The S3 application over ``main``'s gateway; ``authenticator`` is called once at startup
    (the identity directory it reads is loaded by ``main``'s own startup, which runs first)."""
    app = web.Application()
    app[IN_FLIGHT] = counted_by_handlers(main)
    app[REGION] = region
    app[BASE_HOSTS] = tuple(h.lower() for h in base_hosts)
    app[MALFORMED] = malformed_answer

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[GATEWAY] = main[GATEWAY]
        app[LOAD] = main[LOAD]
        app[AUTHENTICATOR] = authenticator()
        yield

    app.cleanup_ctx.append(context)
    app.on_response_prepare.append(add_request_id)
    app.router.add_route("*", "/{tail:.*}", endpoint(ROUTE, handle, front=S3Front()))
    return app
