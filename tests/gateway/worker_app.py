"""A tiny application served through ``kmsgate.gateway.workers`` by the worker tests.

Usage: python worker_app.py PORT_FILE WORKERS DRAIN_TIMEOUT
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from aiohttp import web

from kmsgate.gateway.workers import metrics_dir_from_env, serve


def build() -> web.Application:
    app = web.Application()

    async def pid(request: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid(), "metrics_dir": metrics_dir_from_env()})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("seconds", "1")))
        return web.Response(text="done")

    app.router.add_get("/pid", pid)
    app.router.add_get("/slow", slow)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(serve(build, host="127.0.0.1", port=0, workers=int(sys.argv[2]),
                   drain_timeout=float(sys.argv[3]), port_file=sys.argv[1]))
