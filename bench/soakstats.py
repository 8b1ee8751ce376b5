"""The soak's arithmetic: server samples, trends after warm-up, latency per window, the verdict.

Pure: no I/O, no clock. The soak (``bench.scen_soak``) feeds it what it sampled and timed.

The verdict is computed, never eyeballed, by three stated rules:

* **flat**: after warm-up (the first ``WARMUP_FRACTION`` of the run), a least-squares line is fitted
  to each resource series (total RSS, open file descriptors and asyncio tasks over every server
  process); its drift (slope times the time after warm-up) must stay within the series' tolerance:
  ``RSS_DRIFT_FRACTION`` of the mean RSS after warm-up, and for descriptors and tasks
  ``count_tolerance(idle_connections)`` — the noise of idle connections closing and reopening and of
  the requests and slow clients in flight at a sample. Threads are reported, not judged.
* **zero errors**: every request of the steady traffic got its expected status and, for reads,
  its bytes back equal; every slow client ended the way the server's deadlines say it should.
* **p99 stable**: no window after warm-up has a p99 above ``P99_STABLE_FACTOR`` times the median of
  those windows' p99.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

WARMUP_FRACTION = 0.2
RSS_DRIFT_FRACTION = 0.05
P99_STABLE_FACTOR = 3.0
COUNT_NOISE = 16
"""Descriptors or tasks that requests and slow clients in flight at one sample may add."""
COUNT_NOISE_PER_IDLE = 0.02
"""Share of the idle connections that may be between a close and a reconnect at one sample."""


def count_tolerance(idle_connections: int) -> float:
    """Largest drift of open descriptors or tasks still judged flat."""
    return COUNT_NOISE + COUNT_NOISE_PER_IDLE * idle_connections


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One server process at one sample, from ``/proc`` (and its worker's ``/metrics`` for tasks)."""

    pid: int
    role: str  # "supervisor" or "worker"
    rss_bytes: int
    fds: int
    threads: int
    tasks: int | None  # asyncio tasks on a worker's event loop; None for the supervisor or if unknown


@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float  # seconds since the soak started
    processes: tuple[ProcessSample, ...]

    @property
    def rss_bytes(self) -> int:
        return sum(p.rss_bytes for p in self.processes)

    @property
    def fds(self) -> int:
        return sum(p.fds for p in self.processes)

    @property
    def threads(self) -> int:
        return sum(p.threads for p in self.processes)

    @property
    def tasks(self) -> int | None:
        known = [p.tasks for p in self.processes if p.role == "worker"]
        if not known or any(t is None for t in known):
            return None
        return sum(t for t in known if t is not None)


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float:
    """Slope (units per second) of the least-squares line through ``points``; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


@dataclass(frozen=True, slots=True)
class Trend:
    """One resource series after warm-up: its fitted slope and drift against a stated tolerance."""

    name: str
    unit: str
    samples: int
    first: float
    last: float
    mean: float
    minimum: float
    maximum: float
    slope_per_min: float
    drift: float  # slope times the time after warm-up
    tolerance: float
    judged: bool = True

    @property
    def flat(self) -> bool:
        return self.samples >= 2 and abs(self.drift) <= self.tolerance

    @property
    def drift_fraction(self) -> float:
        return self.drift / self.mean if self.mean else 0.0


def trend(name: str, unit: str, points: Sequence[tuple[float, float]], tolerance: float,
          judged: bool = True) -> Trend:
    """The trend of ``points`` (already after warm-up)."""
    values = [v for _, v in points]
    slope = least_squares_slope(points)
    span = points[-1][0] - points[0][0] if len(points) >= 2 else 0.0
    return Trend(name, unit, len(points), values[0] if values else 0.0, values[-1] if values else 0.0,
                 statistics.fmean(values) if values else 0.0, min(values, default=0.0), max(values, default=0.0),
                 slope * 60.0, slope * span, tolerance, judged)


def trends(samples: Sequence[Sample], warmup_s: float, idle_connections: int) -> list[Trend]:
    """RSS, descriptors, tasks (judged) and threads (reported) after ``warmup_s``."""
    after = [s for s in samples if s.t_s >= warmup_s]
    rss = [(s.t_s, float(s.rss_bytes)) for s in after]
    rss_mean = statistics.fmean(v for _, v in rss) if rss else 0.0
    counts = count_tolerance(idle_connections)
    tasks = [(s.t_s, float(t)) for s in after if (t := s.tasks) is not None]
    return [
        trend("RSS", "bytes", rss, RSS_DRIFT_FRACTION * rss_mean),
        trend("open file descriptors", "fds", [(s.t_s, float(s.fds)) for s in after], counts),
        trend("asyncio tasks", "tasks", tasks, counts),
        trend("threads", "threads", [(s.t_s, float(s.threads)) for s in after], 0.0, judged=False),
    ]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of already sorted values; 0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[min(int(rank), len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class Completion:
    """One request of the steady traffic that got its expected answer."""

    t_s: float  # completion, seconds since the soak started
    latency_s: float
    kind: str


@dataclass(frozen=True, slots=True)
class Window:
    index: int
    start_s: float
    end_s: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    p99_ms_by_kind: dict[str, float] = field(default_factory=dict)
    rss_bytes: int = 0
    fds: int = 0
    tasks: int | None = None
    threads: int = 0
    after_warmup: bool = True


def windows(completions: Sequence[Completion], error_times: Sequence[float], samples: Sequence[Sample],
            duration_s: float, window_s: float, warmup_s: float) -> list[Window]:
    """Latency percentiles per window of ``window_s``, with the last sample taken in each window."""
    count = max(1, round(duration_s / window_s))
    out = []
    for i in range(count):
        start, end = i * window_s, (i + 1) * window_s if i < count - 1 else float("inf")
        inside = [c for c in completions if start <= c.t_s < end]
        lat = sorted(c.latency_s * 1000 for c in inside)
        kinds: dict[str, list[float]] = {}
        for c in inside:
            kinds.setdefault(c.kind, []).append(c.latency_s * 1000)
        last = [s for s in samples if start <= s.t_s < end]
        sample = last[-1] if last else None
        out.append(Window(
            i, start, min(end, duration_s), len(inside), sum(1 for t in error_times if start <= t < end),
            percentile(lat, 50), percentile(lat, 99), lat[-1] if lat else 0.0,
            {k: percentile(sorted(v), 99) for k, v in sorted(kinds.items())},
            sample.rss_bytes if sample else 0, sample.fds if sample else 0, sample.tasks if sample else None,
            sample.threads if sample else 0, after_warmup=start >= warmup_s,
        ))
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    flat: bool
    zero_errors: bool
    p99_stable: bool
    median_window_p99_ms: float
    worst_window_p99_ms: float
    reasons: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.flat and self.zero_errors and self.p99_stable


def verdict(resource_trends: Sequence[Trend], steady_errors: int, slow_errors: int,
            window_rows: Sequence[Window]) -> Verdict:
    reasons = []
    judged = [t for t in resource_trends if t.judged]
    flat = all(t.flat for t in judged)
    for t in judged:
        if not t.flat:
            reasons.append(f"{t.name} drifted {t.drift:+,.0f} {t.unit} after warm-up "
                           f"(tolerance ±{t.tolerance:,.0f}, {t.samples} samples)")
    if steady_errors or slow_errors:
        reasons.append(f"{steady_errors} errors in the steady traffic, {slow_errors} slow clients ended unexpectedly")
    steady = [w.p99_ms for w in window_rows if w.after_warmup and w.requests]
    median = statistics.median(steady) if steady else 0.0
    worst = max(steady, default=0.0)
    stable = bool(steady) and worst <= P99_STABLE_FACTOR * median
    if not stable:
        reasons.append(f"worst window p99 {worst:.1f} ms against {P99_STABLE_FACTOR:g}x the median window's "
                       f"{median:.1f} ms" if steady else "no window after warm-up had requests")
    return Verdict(flat, not (steady_errors or slow_errors), stable, median, worst, tuple(reasons))
