"""Where slow private-key operations (RSA Sign and Decrypt) run: helper processes, behind a bounded queue.

An RSA private-key operation costs 0.3 ms (RSA_2048) to several ms (RSA_4096) of CPU, too much
for the event loop. pyca/cryptography releases the GIL while it signs or decrypts, yet a thread
of the worker doing them still delayed the worker's event loop about twice as much as a helper
process doing the same work, whatever the GIL's switch interval; and on a machine whose cores
are all busy, the loop waits for a core behind the RSA work itself
(``bench/results/2026-12-05-vm-rsa-stall.md``). So the operations run in
``SLOW_OPERATION_PROCESSES`` child processes of the worker, at a lower CPU priority
(``HELPER_NICENESS``), started with ``spawn`` (a fork of a threaded process is unsafe) when the
first operation arrives.

What crosses the pipe to a helper is the function's arguments: the private key as the PKCS#8 DER
the worker keeps in memory, the message or ciphertext, the algorithm. The helper keeps loaded keys
in ``kmsgate.kms.asymmetric``'s cache, logs nothing, ignores SIGINT (the worker stops it) and is
sent SIGTERM by Linux if the worker dies. A helper that dies anyway breaks the pool: the pool is
replaced and the operation, which changes nothing, is run once more on the new one.

At most ``MAX_PENDING_SLOW_OPERATIONS`` operations wait or run at a time; one more is refused at
once with ``ThrottlingException`` (AWS's answer to a rate it will not take, which AWS SDKs retry
with back-off) rather than queued behind them, so a burst of RSA requests cannot make every RSA
request's latency, and the worker's memory, grow without bound.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from kmsgate.core.errors import ThrottlingError

T = TypeVar("T")
# Helper processes: one core fewer than the machine has, at least one, so that a burst of RSA
# operations leaves a core to the event loop and every other request.
SLOW_OPERATION_PROCESSES = max((os.cpu_count() or 1) - 1, 1)
# Operations waiting or running at once; about 60 ms of RSA_2048 signs per helper at 1,000 signs/s.
MAX_PENDING_SLOW_OPERATIONS = 64
# How much lower the helpers' CPU priority is than the worker's (``nice``): on a busy machine the
# scheduler runs the event loop, and every request it serves, before more RSA work.
HELPER_NICENESS = 10
THROTTLED_MESSAGE = "Too many slow private-key operations are waiting; retry later."
_PR_SET_PDEATHSIG = 1


def start_helper_processes() -> Executor:
    """The default pool: ``SLOW_OPERATION_PROCESSES`` spawned helpers, started on demand."""
    return ProcessPoolExecutor(
        max_workers=SLOW_OPERATION_PROCESSES,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_helper_started,
    )


def _helper_started() -> None:
    """In a new helper: lower its priority, leave Ctrl-C to the worker, and ask Linux to SIGTERM it
    when the worker dies."""
    try:
        os.nice(HELPER_NICENESS)
    except OSError:  # a sandbox that forbids setpriority: the helper still works, at the worker's priority
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still stops it
        return


class SlowOperations:
    """Runs slow private-key operations off the event loop, at most ``max_pending`` at a time.

    ``start`` makes the executor (the helper processes by default) when the first operation
    arrives, so a service that never signs with RSA starts none; it is called again to replace a
    pool a dead helper broke. Only the event loop calls ``run``, so the count of pending
    operations needs no lock.
    """

    def __init__(
        self,
        start: Callable[[], Executor] = start_helper_processes,
        *,
        max_pending: int = MAX_PENDING_SLOW_OPERATIONS,
    ) -> None:
        self._start = start
        self._executor: Executor | None = None
        self._max_pending = max_pending
        self._pending = 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the pool; ``ThrottlingError`` if ``max_pending`` are already pending.

        ``function`` must be importable by name and its arguments picklable (a helper process
        receives them through a pipe), and it must change nothing: it may run twice.
        """
        if self._pending >= self._max_pending:
            raise ThrottlingError(THROTTLED_MESSAGE)
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            executor = self._started()
            try:
                return await loop.run_in_executor(executor, function, *args)
            except BrokenProcessPool:
                self._replace(executor)
                return await loop.run_in_executor(self._started(), function, *args)
        finally:
            self._pending -= 1

    def _started(self) -> Executor:
        if self._executor is None:
            self._executor = self._start()
        return self._executor

    def _replace(self, broken: Executor) -> None:
        """Drop ``broken`` (the next operation starts a fresh pool), unless another operation did already."""
        if self._executor is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
