"""The run context shared by scenarios: options, time budget, progress bar, servers, results.

Scenarios are plug-ins: a function ``run(ctx)`` that starts what it needs through the
context, runs load plans with ``ctx.load`` and records rows with ``ctx.add`` (a figure with a
target and its ceiling with ``ctx.alternated``, which repeats the pair). A scenario
that cannot run (no local product, no moto, budget spent) raises ``Skip`` with the reason,
which the report prints. Every server a scenario starts through the context is stopped
by PID when the scenario (or the suite) ends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from bench.ceilings import start_http_ceiling
from bench.loadgen import LoadError, LoadPlan, LoadResult, run_load
from bench.measure import Measurement
from bench.procs import ServerProcess, free_port
from bench.product import LocalKmsgate, Secrets, ServerOptions

RUN_OVERHEAD_S = 0.6  # process start-up and connection set-up per load run


class Skip(Exception):
    """This scenario (or part of it) cannot run here; the message says why."""


@dataclass(frozen=True, slots=True)
class Options:
    target: str | None = None
    quick: bool = False
    scenarios: tuple[str, ...] = ()
    budget_s: float = 600.0
    results_dir: str = "bench/results"
    concurrency: int = 64
    client_processes: int = 1
    use_wrk: bool = True
    progress: bool = True
    rounds: int = 3
    """Runs of each targeted figure and of its ceiling, alternated (1 with ``quick``)."""
    soak_duration_s: float = 600.0
    """Length of the soak scenario's traffic."""
    soak_connections: int = 1000
    """Mostly idle keep-alive connections the soak holds open."""

    @property
    def warmup_s(self) -> float:
        return 0.2 if self.quick else 1.0

    @property
    def duration_s(self) -> float:
        return 0.8 if self.quick else 3.0

    @property
    def target_rounds(self) -> int:
        return 1 if self.quick else max(self.rounds, 1)


class Context:
    """Mutable state of one suite run (owned by the runner, passed to each scenario)."""

    def __init__(self, options: Options, planned_runs: int) -> None:
        self.options = options
        self.secrets = Secrets.from_env_or_random()
        self.started = time.monotonic()
        self.deadline = self.started + options.budget_s
        self.measurements: list[Measurement] = []
        self.skipped: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.log_dir = tempfile.mkdtemp(prefix="kmsgate-bench-logs-")
        self._ceilings: dict[int, ServerProcess] = {}
        self.scenario = ""
        self.bar: Any = None
        if options.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=planned_runs, unit="run", dynamic_ncols=True, leave=True)
        per_run = options.warmup_s + options.duration_s + RUN_OVERHEAD_S
        # Shrink runs evenly when the plan would overrun the budget (keep 15 % for set-up).
        fit = (options.budget_s * 0.85) / max(planned_runs, 1)
        self.scale = min(1.0, max(fit / per_run, 0.25))

    # -- timing --------------------------------------------------------------------------

    @property
    def warmup_s(self) -> float:
        return self.options.warmup_s * self.scale

    @property
    def duration_s(self) -> float:
        return self.options.duration_s * self.scale

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def plan(self, target: str, requests: tuple[Any, ...], **kw: Any) -> LoadPlan:
        """A load plan with the suite's warm-up, duration and client process count."""
        kw.setdefault("warmup_s", self.warmup_s)
        kw.setdefault("duration_s", self.duration_s)
        kw.setdefault("concurrency", self.options.concurrency)
        kw.setdefault("processes", self.options.client_processes)
        return LoadPlan(target=target, requests=requests, **kw)

    def load(self, plan: LoadPlan, what: str) -> LoadResult:
        """Run one bounded load plan, advancing the progress bar; raise ``Skip`` when out of budget."""
        needed = plan.warmup_s + min(plan.duration_s, 5.0) + RUN_OVERHEAD_S
        if self.remaining_s() < needed:
            self.tick(what)
            raise Skip(f"time budget spent before '{what}'")
        if self.bar is not None:
            self.bar.set_description(f"{self.scenario}: {what}"[:60])
        if plan.duration_s > self.remaining_s():
            plan = replace(plan, duration_s=max(self.remaining_s() - needed, 0.2))
        try:
            return run_load(plan)
        except LoadError as exc:
            raise Skip(f"{what}: {exc}") from exc
        finally:
            self.tick(None)

    def unplanned_runs(self, count: int) -> None:
        """A scenario is about to make ``count`` runs the plan did not count (the bar grows)."""
        if self.bar is not None:
            self.bar.total += count
            self.bar.refresh()

    def tick(self, what: str | None) -> None:
        if self.bar is not None:
            if what:
                self.bar.set_description(f"{self.scenario}: {what}"[:60])
            self.bar.update(1)

    # -- results -------------------------------------------------------------------------

    def add(self, measurement: Measurement) -> Measurement:
        self.measurements.append(measurement)
        return measurement

    def alternated(self, figure: Callable[[], Measurement],
                   ceiling: Callable[[], Measurement]) -> tuple[Measurement, Measurement]:
        """A targeted figure and its ceiling, each run ``target_rounds`` times in alternating order
        (on a shared machine a slow moment then falls on both sides alike), each reported by its
        median run, recorded, the figure paired with the ceiling and carrying every round's values."""
        figures: list[Measurement] = []
        ceilings: list[Measurement] = []
        for i in range(self.options.target_rounds):
            if i % 2 == 0:
                figures.append(figure())
                ceilings.append(ceiling())
            else:
                ceilings.append(ceiling())
                figures.append(figure())
        ceil = self.add(_median_run(ceilings))
        fig = _median_run(figures)
        if len(figures) > 1:
            fig = replace(fig, extra={**fig.extra, "round_values": [m.value for m in figures],
                                      "ceiling_round_values": [m.value for m in ceilings]})
        return self.add(fig.with_ceiling(ceil)), ceil

    def find(self, key: str, system: str | None = None) -> Measurement | None:
        for m in reversed(self.measurements):
            if m.key == key and (system is None or m.system == system):
                return m
        return None

    def skip(self, what: str, reason: str) -> None:
        self.skipped.append((what, reason))

    # -- servers -------------------------------------------------------------------------

    def http_ceiling(self, workers: int = 1) -> ServerProcess:
        """The bare aiohttp+uvloop server with ``workers`` processes (started once, shared)."""
        server = self._ceilings.get(workers)
        if server is None or server.proc.poll() is not None:
            credentials = self.secrets.credentials
            server = start_http_ceiling(free_port(), workers=workers, env_extra={
                "KMSGATE_ROOT_ACCESS_KEY_ID": credentials.access_key_id,
                "KMSGATE_ROOT_SECRET_ACCESS_KEY": credentials.secret_access_key,
            })
            self._ceilings[workers] = server
        return server

    @property
    def local(self) -> bool:
        return self.options.target is None

    @contextlib.contextmanager
    def kmsgate(self, server_options: ServerOptions | None = None) -> Iterator[str]:
        """The URL of kmsgate with ``server_options``: a local server, or the remote target."""
        server_options = server_options or ServerOptions()
        if self.options.target is not None:
            if server_options != ServerOptions():
                raise Skip("needs a local server with non-default options (not possible with --target)")
            yield self.options.target.rstrip("/")
            return
        try:
            local = LocalKmsgate(server_options, self.secrets, self.log_dir)
        except (OSError, RuntimeError) as exc:
            raise Skip(f"could not start kmsgate ({exc}); server log in {self.log_dir}") from exc
        self.current_server: LocalKmsgate | None = local
        try:
            yield local.url
        finally:
            self.current_server = None
            local.close()

    def s3_url(self) -> str:
        """The S3 API of the local kmsgate being measured (started with ``ServerOptions(s3=True)``)."""
        local = getattr(self, "current_server", None)
        if local is None or not local.s3_port:
            raise Skip("no local kmsgate with the S3 API")
        return str(local.s3_url)

    def server_memory(self) -> ServerProcess | None:
        """The local kmsgate process being measured, if any (for peak RSS)."""
        local = getattr(self, "current_server", None)
        return local.server if local is not None else None

    def close(self) -> None:
        for server in self._ceilings.values():
            server.stop()
        self._ceilings.clear()
        if self.bar is not None:
            self.bar.close()
        with contextlib.suppress(OSError):
            if not os.listdir(self.log_dir):
                os.rmdir(self.log_dir)


def _median_run(runs: list[Measurement]) -> Measurement:
    """The run with the median value (the lower of the two middle ones for an even count)."""
    return sorted(runs, key=lambda m: m.value)[(len(runs) - 1) // 2]
