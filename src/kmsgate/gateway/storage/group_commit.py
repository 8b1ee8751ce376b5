"""Group commit: records submitted by concurrent writers made durable together, one blocking commit at a time.

``GroupCommit(commit_batch)`` takes records from any number of tasks of one event loop. While
one batch is being committed (``commit_batch`` in a worker thread), the records submitted
meanwhile queue up; when it returns, all of them go in the next call. Each submitter gets back
its own record's outcome (a result, or the exception ``commit_batch`` returned for it) only
once the call that committed it returned, so a record is never acknowledged before it is
durable, and one record's failure is its own. If ``commit_batch`` itself raises, every record of
that batch gets the exception: none of them was acknowledged.

A submitter that is cancelled stops waiting, but its record stays in its batch (as a blocking
call in a thread cannot be taken back): it may be committed all the same, like any write whose
client went away before the answer. ``aclose`` waits for the batch in progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """See the module docstring. ``commit_batch`` is blocking and returns one outcome per record, in order."""

    __slots__ = ("_commit_batch", "_queue", "_task")

    def __init__(self, commit_batch: Callable[[Sequence[T]], Sequence[R | BaseException]]) -> None:
        self._commit_batch = commit_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, record: T) -> R:
        """Commit ``record`` with whatever else is waiting; its outcome, once durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._queue.append((record, fut))
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._run())
        return await fut

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcomes = await asyncio.to_thread(self._commit_batch, [record for record, _ in batch])
                if len(outcomes) != len(batch):  # pragma: no cover - a broken commit_batch
                    raise RuntimeError("group commit: one outcome per record expected")
            except asyncio.CancelledError:
                for _, fut in batch + self._queue:
                    fut.cancel()
                self._queue = []
                raise
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, fut), outcome in zip(batch, outcomes):
                if fut.done():  # its submitter was cancelled
                    continue
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

    async def aclose(self) -> None:
        """Wait for the batches in progress and queued."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait([task])
