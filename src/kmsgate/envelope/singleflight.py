"""Single flight: concurrent callers asking for the same key share one in-flight call.

The call runs as its own task, so a cancelled caller does not cancel it for the
others. A failed call is not remembered: its waiters all receive the exception and
the next caller starts a new call.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Task[T]] = {}

    def in_flight(self, key: Hashable) -> bool:
        return key in self._calls

    async def do(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        """The result of ``call()``, run at most once at a time per ``key``."""
        return await asyncio.shield(self.start(key, call))

    def start(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """The in-flight task for ``key``, starting ``call()`` if there is none."""
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._calls[key] = task
            task.add_done_callback(functools.partial(self._finished, key))
        return task

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: waiters (if any) re-raise it themselves
