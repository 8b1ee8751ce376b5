"""Worker processes: N copies of the aiohttp application on one port, under a supervisor.

``serve(app_factory, host=..., port=..., workers=N)`` is the process model of
``kmsgate serve``:

* The supervisor binds (but never listens on) a ``SO_REUSEPORT`` socket. That reserves
  the port and resolves port 0 to a concrete port that every worker then shares.
* It creates the Prometheus multi-process directory, exports it as
  ``PROMETHEUS_MULTIPROC_DIR`` and forks N workers. Each worker installs uvloop, builds its
  application by calling ``app_factory()`` *in the worker* (so no event loop, thread or
  connection crosses the fork), binds its own ``SO_REUSEPORT`` listening socket and serves
  it within ``ConnectionLimits`` (``kmsgate.web.connections``: header, body-read and idle
  deadlines, a cap on open connections).
  The kernel spreads new connections over the workers' sockets.
* A worker that dies is reaped, its live gauges are dropped from the metrics merge, and a
  new worker replaces it. Every replacement is counted in ``kmsgate_worker_restarts_total`` by
  reason: ``exited`` (the worker exited on its own), ``signal`` (a signal from outside ended it:
  a crash, the OOM killer, ``kill -9``) or ``unresponsive`` (the supervisor killed it, below; also
  counted in ``kmsgate_workers_killed_unresponsive_total``, kept for existing dashboards). A
  worker that dies within ``QUICK_DEATH_SECONDS`` of starting is restarted after an exponential
  back-off; ``MAX_QUICK_DEATHS`` such deaths in a row (a port in use, a broken configuration)
  make the supervisor give up with exit code 1.
* Each worker proves its event loop runs: a callback on the loop bumps the worker's counter in
  memory shared with the supervisor every ``HEARTBEAT_SECONDS``. A worker whose counter has not
  moved for ``liveness_timeout`` seconds (a handler that blocks the loop for good: a runaway
  regular expression, a blocking call) answers nobody, yet keeps its listening socket and so its
  share of new connections; the supervisor logs it, kills it (SIGKILL, since it cannot run a
  signal handler) and starts a replacement. The default, 30 s, is far above any pause of a
  healthy loop (garbage collection, a busy machine: well under a second) and bounds how long a
  frozen worker swallows connections. ``0`` turns the check off.
* SIGTERM or SIGINT to the supervisor is forwarded to every worker. A worker stops
  accepting, lets in-flight requests finish for up to ``drain_timeout`` seconds (counted by
  ``kmsgate.web.inflight``), cancels what is left, runs the application's cleanup and exits 0.
  Workers still alive ``KILL_GRACE_SECONDS`` after the drain timeout are killed. The
  supervisor then removes the metrics directory and exits 0.

``workers=0`` serves in the calling process with no supervisor (same drain behaviour).
If ``port_file`` is given, the bound port is written there (atomically) once the
supervisor holds it, for callers that asked for port 0.

More listeners: ``listeners={"s3": 9000}`` serves, on each named port, the application the
main application holds under ``LISTENER_APPS[name]`` (a front such as the S3 API that shares
the main application's resources and lifetime). Each is reserved by the supervisor and shared
by the workers exactly as the main port is, served within the same limits, and stopped and
drained with it.

TLS: with ``tls`` (``kmsgate.gateway.tls.TlsFiles``) every listener serves TLS. Each worker builds
its own SSL context from the files. SIGHUP to the supervisor is forwarded to every worker, and each
re-reads the certificate and key (``kmsgate.gateway.tls.reload``): connections already open go on,
new handshakes get the new pair; a worker started later reads the files as they are then.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import inspect
import logging
import mmap
import os
import shutil
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from kmsgate.allocator import TRIM_INTERVAL_SECONDS, trim_heap
from kmsgate.web.connections import ConnectionLimits, LimitedSite
from kmsgate.web.inflight import IN_FLIGHT, InFlight
from kmsgate.gateway.metrics import SupervisorMetrics, mark_worker_dead
from kmsgate.gateway.tls import TlsFiles, reload, server_context

log = logging.getLogger(__name__)

AppFactory = Callable[[], "web.Application | Awaitable[web.Application]"]
LISTENER_APPS: web.AppKey[dict[str, web.Application]] = web.AppKey("listener_apps", dict)
"""Applications served on the extra named ports of ``serve(listeners=...)``."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
QUICK_DEATH_SECONDS = 2.0
MAX_QUICK_DEATHS = 5
MAX_BACKOFF_SECONDS = 5.0
KILL_GRACE_SECONDS = 5.0
LISTEN_BACKLOG = 1024
HEARTBEAT_SECONDS = 0.5
DEFAULT_LIVENESS_TIMEOUT_SECONDS = 30.0
_BEAT = struct.Struct("=Q")
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_RELOAD_SIGNAL = signal.SIGHUP
_SUPERVISOR_SIGNALS = {signal.SIGCHLD, _RELOAD_SIGNAL, *_STOP_SIGNALS}


def bind_reuseport(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` with ``SO_REUSEPORT`` (not yet listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _exit_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the supervisor dies (no orphaned workers)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return


def _restart_reason(status: int, killed_unresponsive: bool) -> str:
    """The ``WORKER_RESTART_REASONS`` entry for a worker reaped with wait ``status``."""
    if killed_unresponsive:
        return "unresponsive"
    return "signal" if os.WIFSIGNALED(status) else "exited"


class Heartbeats:
    """One counter per worker slot in memory shared across fork: workers bump, the supervisor reads.

    An aligned 8-byte store is atomic on the platforms kmsgate runs on; a torn read could only
    look like a change, which delays a kill by one check, never causes one.
    """

    def __init__(self, slots: int) -> None:
        self._memory = mmap.mmap(-1, _BEAT.size * max(slots, 1))  # anonymous and shared: survives fork

    def read(self, slot: int) -> int:
        return int(_BEAT.unpack_from(self._memory, slot * _BEAT.size)[0])

    def bump(self, slot: int) -> None:
        offset = slot * _BEAT.size
        _BEAT.pack_into(self._memory, offset, (_BEAT.unpack_from(self._memory, offset)[0] + 1) & 0xFFFFFFFFFFFFFFFF)

    def beat_from(self, loop: asyncio.AbstractEventLoop, slot: int) -> None:
        """Bump ``slot`` from ``loop`` every ``HEARTBEAT_SECONDS`` for as long as the loop runs callbacks."""
        def beat() -> None:
            self.bump(slot)
            loop.call_later(HEARTBEAT_SECONDS, beat)

        beat()


def _write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(f"{port}\n")
    os.replace(tmp, path)


async def _serve_async(app_factory: AppFactory, host: str, port: int, drain_timeout: float,
                       limits: ConnectionLimits, heartbeat: tuple[Heartbeats, int] | None,
                       listeners: dict[str, int], tls: TlsFiles | None) -> None:
    loop = asyncio.get_running_loop()
    if heartbeat is not None:
        heartbeat[0].beat_from(loop, heartbeat[1])
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    ssl_context = None
    if tls is not None:
        ssl_context = server_context(tls)
        loop.add_signal_handler(_RELOAD_SIGNAL, reload, ssl_context, tls)
    built = app_factory()
    app = await built if inspect.isawaitable(built) else built
    in_flight = app.get(IN_FLIGHT)
    if in_flight is None:  # an application whose handlers do not count themselves
        in_flight = InFlight()
        app.middlewares.insert(0, in_flight.middleware)
    fronts = app.get(LISTENER_APPS, {})
    missing = set(listeners) - set(fronts)
    if missing:
        raise ValueError(f"no application for the listeners {sorted(missing)}")
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    front_runners = [web.AppRunner(fronts[name], handle_signals=False, shutdown_timeout=1.0, access_log=None)
                     for name in listeners]
    sites: list[LimitedSite] = []
    try:
        for front_runner in front_runners:
            await front_runner.setup()
        for site_runner, site_port in ((runner, port), *zip(front_runners, listeners.values())):
            sock = bind_reuseport(host, site_port)
            sock.listen(LISTEN_BACKLOG)
            site = LimitedSite(site_runner, sock, limits, backlog=LISTEN_BACKLOG, ssl_context=ssl_context)
            await site.start()
            sites.append(site)
        # Everything built so far (modules, the application, its services) lives as long as the
        # worker: out of the collector's sight, a full collection no longer walks it.
        gc.freeze()
        trimming = asyncio.create_task(_trim_heap_periodically())
        await stop.wait()
        trimming.cancel()
        for site in sites:
            await site.stop()  # stop accepting; connections already open keep being served
        await in_flight.wait(drain_timeout)
    finally:
        for front_runner in reversed(front_runners):
            await front_runner.cleanup()
        await runner.cleanup()  # closes idle connections, cancels what is left, runs app cleanup


async def _trim_heap_periodically() -> None:
    """Hand the allocator's free pages back to the kernel now and then (``kmsgate.allocator``)."""
    while True:
        await asyncio.sleep(TRIM_INTERVAL_SECONDS)
        trim_heap()


def run_worker(app_factory: AppFactory, *, host: str, port: int, drain_timeout: float,
               limits: ConnectionLimits = ConnectionLimits(),
               heartbeat: tuple[Heartbeats, int] | None = None,
               listeners: dict[str, int] | None = None, tls: TlsFiles | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain; runs uvloop in the calling process.

    With ``heartbeat`` (the shared counters and this worker's slot) the loop proves it runs.
    With ``tls``, SIGHUP reloads the certificate and key.
    """
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_async(app_factory, host, port, drain_timeout, limits, heartbeat, listeners or {}, tls))


@dataclass
class _Supervisor:
    app_factory: AppFactory
    host: str
    port: int
    workers: int
    drain_timeout: float
    metrics_dir: str
    limits: ConnectionLimits
    liveness_timeout: float
    listeners: dict[str, int] = field(default_factory=dict)
    tls: TlsFiles | None = None
    children: dict[int, float] = field(default_factory=dict)  # pid -> start time
    quick_deaths: int = 0
    pending_starts: list[float] = field(default_factory=list)  # monotonic due times
    slots: dict[int, int] = field(default_factory=dict)  # pid -> heartbeat slot
    last_beats: dict[int, tuple[int, float]] = field(default_factory=dict)  # pid -> (count, when it last moved)
    killed_unresponsive: set[int] = field(default_factory=set)  # pids SIGKILLed by kill_unresponsive, not yet reaped
    heartbeats: Heartbeats = field(init=False)
    metrics: SupervisorMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.heartbeats = Heartbeats(self.workers)
        self.metrics = SupervisorMetrics(self.metrics_dir)

    def spawn(self) -> None:
        slot = min(set(range(self.workers)) - set(self.slots.values()), default=self.workers)
        heartbeat = (self.heartbeats, slot) if slot < self.workers else None
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                _exit_with_parent()
                for sig in _SUPERVISOR_SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(_RELOAD_SIGNAL, signal.SIG_IGN)  # until the loop handles it: never fatal
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                run_worker(self.app_factory, host=self.host, port=self.port,
                           drain_timeout=self.drain_timeout, limits=self.limits, heartbeat=heartbeat,
                           listeners=self.listeners, tls=self.tls)
            except BaseException:  # a worker must never return into the supervisor's stack
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()
        if heartbeat is not None:
            self.slots[pid] = slot
            self.last_beats[pid] = (self.heartbeats.read(slot), time.monotonic())
        log.info("worker %d started", pid)

    def kill_unresponsive(self) -> None:
        """SIGKILL every worker whose heartbeat has not moved for ``liveness_timeout`` (reaped as any death)."""
        if self.liveness_timeout <= 0:
            return
        now = time.monotonic()
        for pid, slot in list(self.slots.items()):
            count = self.heartbeats.read(slot)
            last_count, since = self.last_beats[pid]
            if count != last_count:
                self.last_beats[pid] = (count, now)
            elif now - since > self.liveness_timeout:
                log.error("worker %d has not answered for %.0f s; killing it", pid, now - since)
                self.last_beats[pid] = (count, float("inf"))  # killed once; reaped like any death
                self.killed_unresponsive.add(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            started = self.children.pop(pid, None)
            self.slots.pop(pid, None)
            self.last_beats.pop(pid, None)
            unresponsive = pid in self.killed_unresponsive
            self.killed_unresponsive.discard(pid)
            if started is None:
                continue
            mark_worker_dead(self.metrics_dir, pid)
            log.warning("worker %d exited with status %d", pid, os.waitstatus_to_exitcode(status))
            self.metrics.count_restart(_restart_reason(status, unresponsive))
            lived = time.monotonic() - started
            self.quick_deaths = self.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
            delay = 0.0 if self.quick_deaths == 0 else min(0.1 * 2**self.quick_deaths, MAX_BACKOFF_SECONDS)
            self.pending_starts.append(time.monotonic() + delay)

    def start_due(self) -> None:
        now = time.monotonic()
        due = [t for t in self.pending_starts if t <= now]
        self.pending_starts = [t for t in self.pending_starts if t > now]
        for _ in due:
            self.spawn()

    def run(self) -> int:
        for _ in range(self.workers):
            self.spawn()
        while True:
            timeout = 1.0
            if self.pending_starts:
                timeout = max(0.01, min(self.pending_starts) - time.monotonic())
            info = signal.sigtimedwait(_SUPERVISOR_SIGNALS, timeout)
            if info is not None and info.si_signo in _STOP_SIGNALS:
                return self.stop()
            if info is not None and info.si_signo == _RELOAD_SIGNAL:
                self.forward(_RELOAD_SIGNAL)
            self.reap()
            self.kill_unresponsive()
            if self.quick_deaths >= MAX_QUICK_DEATHS:
                log.error("workers keep dying at start; giving up")
                self.stop()
                return 1
            self.start_due()

    def forward(self, sig: signal.Signals) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue

    def stop(self) -> int:
        self.forward(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_timeout + KILL_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.children.pop(pid, None)
            else:
                signal.sigtimedwait({signal.SIGCHLD}, 0.1)
        for pid in list(self.children):
            log.error("worker %d did not drain in time; killing it", pid)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.children.clear()
        return 0


def serve(
    app_factory: AppFactory,
    *,
    host: str,
    port: int,
    workers: int,
    drain_timeout: float = 30.0,
    port_file: str | None = None,
    limits: ConnectionLimits = ConnectionLimits(),
    liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT_SECONDS,
    listeners: dict[str, int] | None = None,
    tls: TlsFiles | None = None,
) -> int:
    """Serve ``app_factory()`` on ``host:port`` with ``workers`` processes; returns an exit code.

    ``listeners`` names more ports, ``tls`` the PEM files to serve TLS with (see the module docstring). Blocks until SIGTERM/SIGINT.
    Call it from the main thread of a process that has no running event loop and no other
    threads (it forks).
    """
    if workers < 0:
        raise ValueError("workers must be >= 0")
    reservations = [bind_reuseport(host, port)]
    try:
        for extra_port in (listeners or {}).values():
            reservations.append(bind_reuseport(host, extra_port))
    except OSError:
        for sock in reservations:
            sock.close()
        raise
    bound_port = int(reservations[0].getsockname()[1])
    bound_listeners = {name: int(sock.getsockname()[1]) for name, sock in zip(listeners or {}, reservations[1:])}
    if workers == 0:
        for sock in reservations:
            sock.close()
        if port_file:
            _write_port_file(port_file, bound_port)
        run_worker(app_factory, host=host, port=bound_port, drain_timeout=drain_timeout, limits=limits,
                   listeners=bound_listeners, tls=tls)
        return 0
    metrics_dir = tempfile.mkdtemp(prefix="kmsgate-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = metrics_dir
    signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
    try:
        if port_file:
            _write_port_file(port_file, bound_port)
        log.info("serving on %s:%d with %d workers", host, bound_port, workers,
                 extra={"listeners": bound_listeners} if bound_listeners else None)
        supervisor = _Supervisor(app_factory, host, bound_port, workers, drain_timeout, metrics_dir, limits,
                                 liveness_timeout, bound_listeners, tls)
        return supervisor.run()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SUPERVISOR_SIGNALS)
        for sock in reservations:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous


def metrics_dir_from_env() -> str | None:
    """The multi-process metrics directory a worker should use (``None`` when single-process)."""
    return os.environ.get(MULTIPROC_ENV) or None
