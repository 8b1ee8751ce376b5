"""A tiny application served through ``kmsgate.gateway.workers`` by the worker tests.

Usage: python worker_app.py PORT_FILE WORKERS DRAIN_TIMEOUT [LIVENESS_TIMEOUT [EXTRA_PORT]]

``/freeze`` blocks the worker's event loop for good (as a runaway regular expression would);
``POST /exit?code=N`` ends the worker at once with exit status N (as a crash that exits would);
``/metrics`` renders the metrics merged over the workers and the supervisor. With
``EXTRA_PORT``, a second application (``/listener`` names it and the worker) is served there
as the named listener ``extra``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from aiohttp import web

from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.workers import DEFAULT_LIVENESS_TIMEOUT_SECONDS, LISTENER_APPS, metrics_dir_from_env, serve


def build() -> web.Application:
    app = web.Application()

    async def pid(request: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid(), "metrics_dir": metrics_dir_from_env()})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("seconds", "1")))
        return web.Response(text="done")

    async def freeze(request: web.Request) -> web.Response:
        while True:
            time.sleep(3600)  # blocks the event loop: nothing else in this worker runs again

    async def exit_now(request: web.Request) -> web.Response:
        os._exit(int(request.query.get("code", "3")))

    metrics_of_workers = GatewayMetrics(metrics_dir_from_env())

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = metrics_of_workers.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/pid", pid)
    app.router.add_get("/slow", slow)
    app.router.add_get("/freeze", freeze)
    app.router.add_post("/exit", exit_now)  # POST: a client never retries it on the lost connection
    app.router.add_get("/metrics", metrics)

    extra = web.Application()

    async def listener(request: web.Request) -> web.Response:
        return web.json_response({"listener": "extra", "pid": os.getpid()})

    extra.router.add_get("/listener", listener)
    app[LISTENER_APPS] = {"extra": extra}
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    liveness = float(sys.argv[4]) if len(sys.argv) > 4 else DEFAULT_LIVENESS_TIMEOUT_SECONDS
    listeners = {"extra": int(sys.argv[5])} if len(sys.argv) > 5 else None
    sys.exit(serve(build, host="127.0.0.1", port=0, workers=int(sys.argv[2]),
                   drain_timeout=float(sys.argv[3]), port_file=sys.argv[1], liveness_timeout=liveness,
                   listeners=listeners))
