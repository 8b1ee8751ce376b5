"""The soak scenario: a bounded run of mixed traffic, with every server process sampled as it goes.

One kmsgate (``--workers 2``, the S3 API on its own port, a connection cap above the idle
connections and the deadlines stated explicitly) serves ``bench.soaktraffic``'s traffic for
``--soak-duration`` seconds (600 by default). Every ``sample_interval`` seconds each server
process — the supervisor and its workers — is read from ``/proc`` (RSS, open descriptors
in ``/proc/<pid>/fd``, threads) and ``/metrics`` is scraped for ``kmsgate_event_loop_tasks``
(one sample per worker). ``bench.soakstats`` turns that into trends after warm-up, latency
per window and the verdict; ``bench.soakreport`` writes ``<date>-<host>-soak.md``, ``.json``
and ``.png`` into the results directory. The suite's own report carries a note with the verdict.

It is not in ``python -m bench``'s default run (it would take the suite's whole budget):
``make bench`` runs it after the suite with ``make soak``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import aiohttp

from bench.context import Context, Skip
from bench.procs import process_tree
from bench.product import ServerOptions
from bench.report import Machine, command_line
from bench.soakreport import SoakResult, write_soak_report
from bench.soakstats import WARMUP_FRACTION, ProcessSample, Sample, trends, verdict, windows
from bench.soaktraffic import KIB, MIB, Endpoints, Soak, SoakPlan

WORKERS = 2
SETUP_S = 60.0
"""Budget kept for starting the server, set-up and the last requests after the traffic stops."""
FD_HEADROOM = 512
SHORT_RUN_S = 120.0
_TASKS_SAMPLE = re.compile(r'^kmsgate_event_loop_tasks(?:\{[^}]*pid="(\d+)"[^}]*\})?\s+(\S+)', re.M)


def plan_for(duration_s: float, idle_connections: int) -> SoakPlan:
    """The standard soak; below ``SHORT_RUN_S`` a small one whose deadlines and intervals shrink with
    the run, so that every slow client still ends at least once (for the tool's own test)."""
    plan = SoakPlan(duration_s=duration_s, idle_connections=idle_connections)
    if duration_s >= SHORT_RUN_S:
        return plan
    return replace(plan, idle_interval_s=(1.0, 3.0), stream_bytes=1 * MIB, stream_flows_per_s=0.5,
                   trickle_bytes=16, slow_read_bytes=256 * KIB, slow_read_bytes_per_s=128 * KIB,
                   header_timeout_s=2.0, body_read_timeout_s=2.0, idle_timeout_s=6.0)


def server_flags(plan: SoakPlan) -> tuple[str, ...]:
    cap = plan.idle_connections + FD_HEADROOM
    return ("--max-connections", str(cap), "--header-timeout", f"{plan.header_timeout_s:g}",
            "--body-read-timeout", f"{plan.body_read_timeout_s:g}", "--idle-timeout", f"{plan.idle_timeout_s:g}",
            "--log-level", "warning")


def raise_nofile(needed: int) -> None:
    """Raise this process's soft descriptor limit (inherited by the server it starts) to ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise Skip(f"the soak needs {needed} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _status(pid: int) -> tuple[int, int]:
    """VmRSS in bytes and the thread count of ``pid`` (zeros if it is gone)."""
    rss = threads = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def parse_event_loop_tasks(text: str) -> dict[int, int]:
    """``kmsgate_event_loop_tasks`` by worker pid from a ``/metrics`` exposition (pid 0 when unlabelled)."""
    return {int(pid or 0): int(float(value)) for pid, value in _TASKS_SAMPLE.findall(text)}


def sample_processes(root_pid: int, tasks_by_pid: dict[int, int]) -> tuple[ProcessSample, ...]:
    out = []
    for pid in process_tree(root_pid):
        rss, threads = _status(pid)
        role = "supervisor" if pid == root_pid else "worker"
        tasks = tasks_by_pid.get(pid) if role == "worker" else None
        out.append(ProcessSample(pid, role, rss, _fds(pid), threads, tasks))
    return tuple(out)


@dataclass
class Sampler:
    """Samples the server's processes every ``interval_s`` until ``stop`` is set."""

    root_pid: int
    url: str
    interval_s: float
    samples: list[Sample]
    started: float = 0.0

    async def run(self, stop: asyncio.Event, duration_s: float) -> None:
        """Sample until ``duration_s`` after the start (the traffic's wind-down is not sampled)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while not stop.is_set() and time.monotonic() - self.started <= duration_s:
                await self.sample(session)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)

    async def sample(self, session: aiohttp.ClientSession) -> None:
        tasks: dict[int, int] = {}
        try:
            async with session.get(self.url + "/metrics") as resp:
                if resp.status == 200:
                    tasks = parse_event_loop_tasks(await resp.text())
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # the sample then has no task counts (reported as unknown)
        self.samples.append(Sample(time.monotonic() - self.started, sample_processes(self.root_pid, tasks)))


async def _soak(plan: SoakPlan, endpoints: Endpoints, root_pid: int, interval_s: float,
                progress: Callable[[str], None]) -> tuple[Soak, list[Sample]]:
    soak = Soak(plan, endpoints)
    samples: list[Sample] = []
    sampler = Sampler(root_pid, endpoints.url, interval_s, samples)
    stop = asyncio.Event()
    try:
        await soak.setup()

        sampler.started = time.monotonic()

        def started(at: float) -> None:
            sampler.started = at

        async def traffic() -> None:
            try:
                await soak.run(started)
            finally:
                stop.set()

        async def report_progress() -> None:
            while not stop.is_set():
                t = soak.tally
                progress(f"soak {t.now():.0f}/{plan.duration_s:g} s, {len(t.completions)} ok, "
                         f"{t.steady_errors} errors")
                try:
                    await asyncio.wait_for(stop.wait(), 5.0)
                except asyncio.TimeoutError:
                    pass

        await asyncio.gather(traffic(), sampler.run(stop, plan.duration_s), report_progress())
    finally:
        await soak.close()
    return soak, samples


def run_soak(ctx: Context) -> None:
    soak(ctx)


def soak(ctx: Context) -> SoakResult:
    """Run the soak, write its report and return it."""
    options = ctx.options
    if not ctx.local:
        raise Skip("the soak samples the server's processes from /proc: it needs a local server")
    duration = options.soak_duration_s
    if ctx.remaining_s() < duration + SETUP_S:
        ctx.tick("soak")
        raise Skip(f"a {duration:g} s soak needs {duration + SETUP_S:g} s of budget, {ctx.remaining_s():.0f} s left")
    plan = plan_for(duration, options.soak_connections)
    raise_nofile(2 * (plan.idle_connections + FD_HEADROOM))
    flags = server_flags(plan)
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()

    def progress(text: str) -> None:
        if ctx.bar is not None:
            ctx.bar.set_description(text[:60])

    try:
        with ctx.kmsgate(ServerOptions(workers=WORKERS, s3=True, extra_args=flags)) as url:
            server = ctx.server_memory()
            if server is None:
                raise Skip("no local server to sample")
            endpoints = Endpoints(url, ctx.s3_url(), ctx.secrets.credentials, ctx.secrets.token)
            interval = min(5.0, max(duration / 40, 0.25))
            import uvloop

            traffic, samples = uvloop.run(_soak(plan, endpoints, server.pid, interval, progress))
    finally:
        ctx.tick(None)
    warmup = WARMUP_FRACTION * duration
    window = 60.0 if duration >= SHORT_RUN_S else duration / 5
    tally = traffic.tally
    rows = windows(tally.completions, tally.error_times, samples, duration, window, warmup)
    resource_trends = trends(samples, warmup, plan.idle_connections)
    result = SoakResult(started, command_line(), Machine.detect(), plan, WORKERS, flags, time.monotonic() - t0,
                        warmup, window, samples, rows, resource_trends,
                        verdict(resource_trends, tally.steady_errors, sum(tally.slow_errors.values()), rows), tally,
                        {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")})
    paths = write_soak_report(result, options.results_dir)
    v = result.verdict
    ctx.notes.append(f"soak ({duration:g} s, {plan.idle_connections} idle connections): "
                     f"{'passed' if v.passed else 'FAILED'} — flat {v.flat}, zero errors {v.zero_errors}, "
                     f"p99 stable {v.p99_stable}; {paths['markdown']}")
    return result
