"""Requests inside handlers now, so that a stopping worker can wait for exactly those.

aiohttp's own graceful shutdown stops reading from connections before it waits for
handlers, which would starve a handler still receiving an upload; so a stopping worker
first only stops accepting, waits here for the handlers in flight, and then lets aiohttp
close.

An application whose handlers count themselves (``enter`` as a handler starts, ``leave``
as it ends) keeps its ``InFlight`` under ``IN_FLIGHT``; kmsgate's fronts do, in their shared
request wrapper (``kmsgate.web.exchange``). For any other application the worker counts through ``middleware``. The
difference is speed: any middleware at all makes aiohttp wrap every handler of the
application in two more coroutines per request, which costs a KMS request about 5% of its
CPU time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlight:
    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.active += 1
        self._idle.clear()

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.enter()
        try:
            return await handler(request)
        finally:
            self.leave()

    async def wait(self, timeout: float) -> None:
        """Return when no handler is in flight, or after ``timeout`` seconds (logged)."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("drain timeout: %d requests still in flight", self.active)


IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight", InFlight)


def counted_by_handlers(app: web.Application) -> InFlight:
    """The ``InFlight`` that ``app``'s handlers count themselves in (made on first use)."""
    in_flight = app.get(IN_FLIGHT)
    if in_flight is None:
        in_flight = app[IN_FLIGHT] = InFlight()
    return in_flight
