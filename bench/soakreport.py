"""The soak's report: ``<dir>/<date>-<host>-soak.json``, a Markdown summary and a PNG chart beside it."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bench.report import Machine
from bench.soakstats import (
    P99_STABLE_FACTOR,
    RSS_DRIFT_FRACTION,
    WARMUP_FRACTION,
    Sample,
    Trend,
    Verdict,
    Window,
    count_tolerance,
)
from bench.soaktraffic import SoakPlan, Tally

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SoakResult:
    started: datetime
    command: str
    machine: Machine
    plan: SoakPlan
    workers: int
    server_flags: tuple[str, ...]
    elapsed_s: float
    warmup_s: float
    window_s: float
    samples: Sequence[Sample]
    windows: Sequence[Window]
    trends: Sequence[Trend]
    verdict: Verdict
    tally: Tally
    allocator_env: dict[str, str] = field(default_factory=dict)
    """``MALLOC_*`` variables the server inherited (they turn kmsgate's own allocator setting off)."""

    def stem(self) -> str:
        host = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.machine.host) or "host"
        return f"{self.started.strftime('%Y-%m-%d')}-{host}-soak"

    def requests_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(c.kind for c in self.tally.completions).items()))

    def to_json(self) -> dict[str, Any]:
        t = self.tally
        return {
            "started": self.started.isoformat(),
            "command": self.command,
            "machine": asdict(self.machine),
            "plan": asdict(self.plan),
            "workers": self.workers,
            "server_flags": list(self.server_flags),
            "allocator_env": self.allocator_env,
            "elapsed_s": self.elapsed_s,
            "warmup_s": self.warmup_s,
            "window_s": self.window_s,
            "verdict": dict(asdict(self.verdict), passed=self.verdict.passed),
            "trends": [dict(asdict(tr), flat=tr.flat, drift_fraction=tr.drift_fraction) for tr in self.trends],
            "windows": [asdict(w) for w in self.windows],
            "requests_by_kind": self.requests_by_kind(),
            "steady_errors": dict(t.errors),
            "slow_outcomes": dict(t.slow_outcomes),
            "slow_errors": dict(t.slow_errors),
            "deadline_cuts_s": t.deadline_cuts_s,
            "error_examples": t.error_examples,
            "idle_connections_opened": t.idle_opened,
            "idle_requests": t.idle_requests,
            "samples": [asdict(s) for s in self.samples],
        }


def _mib(n: float) -> str:
    return f"{n / MIB:,.1f} MiB"


def _trend_row(t: Trend) -> str:
    if t.unit == "bytes":
        values = f"{_mib(t.first)} → {_mib(t.last)} (min {_mib(t.minimum)}, max {_mib(t.maximum)})"
        slope, drift, tol = f"{t.slope_per_min / 1024:+,.1f} KiB/min", f"{t.drift / MIB:+,.2f} MiB " \
            f"({t.drift_fraction:+.1%})", f"±{_mib(t.tolerance)} ({RSS_DRIFT_FRACTION:.0%} of the mean)"
    else:
        values = f"{t.first:,.0f} → {t.last:,.0f} (min {t.minimum:,.0f}, max {t.maximum:,.0f})"
        slope, drift = f"{t.slope_per_min:+,.2f}/min", f"{t.drift:+,.1f}"
        tol = f"±{t.tolerance:,.0f}" if t.judged else "reported only"
    result = ("flat" if t.flat else "**not flat**") if t.judged else "–"
    return f"| {t.name} | {t.samples} | {values} | {slope} | {drift} | {tol} | {result} |"


def markdown(r: SoakResult) -> str:
    p, m, v, t = r.plan, r.machine, r.verdict, r.tally
    result = "**passed**" if v.passed else "**failed**"
    lines = [
        f"# kmsgate soak — {r.started.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: `{m.host}`, {m.cpu}, {m.cores} cores, {m.memory_gib} GiB, Python {m.python}, {m.platform}.",
        f"Command: `{r.command}` ({r.elapsed_s:.0f} s). Server: `kmsgate serve --workers {r.workers} "
        f"{' '.join(r.server_flags)}` on loopback (supervisor and workers sampled)"
        + (f", with {' '.join(f'{k}={v}' for k, v in sorted(r.allocator_env.items()))} in its environment "
           "(kmsgate's allocator setting off)." if r.allocator_env else "."),
        "",
        f"Traffic for {p.duration_s:g} s: KMS GenerateDataKey/Encrypt then Decrypt (SigV4) at {p.kms_flows_per_s:g} "
        f"pairs/s; `PUT` then `GET /v1/objects` of {p.object_bytes[0] // 1024}–{p.object_bytes[1] // 1024} KiB at "
        f"{p.object_flows_per_s:g} pairs/s; S3 PutObject then GetObject at {p.s3_flows_per_s:g} pairs/s; "
        f"`/v1/encrypt` then `/v1/decrypt` of {p.stream_bytes / MIB:g} MiB at {p.stream_flows_per_s:g}/s; "
        f"{p.idle_connections} keep-alive connections ({t.idle_opened} opened, over the first {p.ramp_s:g} s) "
        f"each sending a `GET` of a {p.idle_object_bytes // 1024} KiB object every "
        f"{p.idle_interval_s[0]:g}–{p.idle_interval_s[1]:g} s; slow clients one of each at a time. Every read "
        "is compared byte for byte with what was written.",
        "",
        f"## Verdict: {result}",
        "",
        f"- Resources flat after warm-up (first {WARMUP_FRACTION:.0%}, {r.warmup_s:g} s): "
        f"{'yes' if v.flat else '**no**'} — least-squares drift over the rest of the run within "
        f"{RSS_DRIFT_FRACTION:.0%} of the mean RSS, and within ±{count_tolerance(p.idle_connections):,.0f} "
        "descriptors or tasks (16 for requests and slow clients in flight at a sample, plus 2% of the idle "
        "connections for those between a close and a reconnect).",
        f"- Zero errors: {'yes' if v.zero_errors else '**no**'} — {sum(r.requests_by_kind().values()):,} "
        f"requests answered as expected, {t.steady_errors} errors; slow clients: "
        f"{sum(t.slow_outcomes.values())} ended as expected, {sum(t.slow_errors.values())} otherwise.",
        f"- p99 stable: {'yes' if v.p99_stable else '**no**'} — worst {r.window_s:g}-second window after "
        f"warm-up {v.worst_window_p99_ms:.1f} ms against {P99_STABLE_FACTOR:g}× the median window's "
        f"{v.median_window_p99_ms:.1f} ms.",
    ]
    lines += [f"- {reason}" for reason in v.reasons]
    lines += ["", "## Resources after warm-up (all server processes)", "",
              "| series | samples | first → last | slope | drift | tolerance | result |",
              "|---|---:|---|---:|---:|---|---|"]
    lines += [_trend_row(tr) for tr in r.trends]
    after = [s for s in r.samples if s.t_s >= r.warmup_s]
    if after:
        lines += ["", "| process | RSS first → last after warm-up | fds | threads | tasks |", "|---|---|---|---|---|"]
        processes = sorted({(p.pid, p.role) for s in after for p in s.processes},
                           key=lambda x: (x[1] != "supervisor", x[0]))
        for pid, role in processes:
            seen = [p for s in after for p in s.processes if p.pid == pid]
            first, last = seen[0], seen[-1]
            tasks = "–" if first.tasks is None or last.tasks is None else f"{first.tasks} → {last.tasks}"
            lines.append(f"| {role} {pid} | {_mib(first.rss_bytes)} → {_mib(last.rss_bytes)} | "
                         f"{first.fds} → {last.fds} | {first.threads} → {last.threads} | {tasks} |")
    lines += ["", f"## Windows of {r.window_s:g} s", "",
              "| window | requests | errors | p50 ms | p99 ms | max ms | RSS | fds | tasks | threads |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for w in r.windows:
        mark = "" if w.after_warmup else " (warm-up)"
        lines.append(f"| {w.start_s:.0f}–{w.end_s:.0f} s{mark} | {w.requests:,} | {w.errors} | {w.p50_ms:.1f} | "
                     f"{w.p99_ms:.1f} | {w.max_ms:.1f} | {_mib(w.rss_bytes)} | {w.fds} | "
                     f"{'–' if w.tasks is None else w.tasks} | {w.threads} |")
    lines += ["", "## Requests by kind", "", "| kind | answered as expected | p99 ms over the run |", "|---|---:|---:|"]
    by_kind: dict[str, list[float]] = {}
    for c in t.completions:
        by_kind.setdefault(c.kind, []).append(c.latency_s * 1000)
    for kind, count in r.requests_by_kind().items():
        values = sorted(by_kind[kind])
        lines.append(f"| {kind} | {count:,} | {values[min(len(values) - 1, int(len(values) * 0.99))]:.1f} |")
    lines += ["", "## Slow clients (counted apart; a cut at a deadline is the expected outcome, not an error)", "",
              "| client: outcome | count | expected |", "|---|---:|---|"]
    for outcome, count in sorted(t.slow_outcomes.items()):
        lines.append(f"| {outcome} | {count} | yes |")
    for outcome, count in sorted(t.slow_errors.items()):
        lines.append(f"| {outcome} | {count} | **no** |")
    if t.deadline_cuts_s:
        lines += ["", "Time from the first byte to the cut: " + "; ".join(
            f"{client} {min(v):.1f}–{max(v):.1f} s" for client, v in sorted(t.deadline_cuts_s.items())) + "."]
    if t.errors or t.error_examples:
        lines += ["", "## Errors", ""] + [f"- {k}: {n}" for k, n in sorted(t.errors.items())]
        lines += [f"- example: {e}" for e in t.error_examples]
    return "\n".join(lines) + "\n"


def chart(r: SoakResult, path: str) -> None:
    """RSS, descriptors, tasks and p99 per window against time, warm-up shaded, trend lines drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t_s / 60 for s in r.samples]
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    series = (
        ("RSS (MiB)", [s.rss_bytes / MIB for s in r.samples], r.trends[0], 1 / MIB),
        ("open file descriptors", [float(s.fds) for s in r.samples], r.trends[1], 1.0),
        ("asyncio tasks", [float(s.tasks) if s.tasks is not None else float("nan") for s in r.samples],
         r.trends[2], 1.0),
    )
    for ax, (label, values, tr, scale) in zip(axes, series):
        ax.plot(minutes, values, label="all server processes", color="tab:blue")
        if label.startswith("RSS"):
            pids = sorted({(p.pid, p.role) for s in r.samples for p in s.processes})
            for pid, role in pids:
                pts = [(s.t_s / 60, q.rss_bytes / MIB) for s in r.samples for q in s.processes if q.pid == pid]
                ax.plot([x for x, _ in pts], [y for _, y in pts], linewidth=0.8, linestyle="--",
                        label=f"{role} {pid}")
        if tr.samples >= 2:
            after = [s for s in r.samples if s.t_s >= r.warmup_s]
            t0, t1 = after[0].t_s, after[-1].t_s
            mid = sum(s.t_s for s in after) / len(after)  # the fitted line passes through the means
            slope_s = tr.slope_per_min / 60
            ends = [(tr.mean + slope_s * (t0 - mid)) * scale, (tr.mean + slope_s * (t1 - mid)) * scale]
            ax.plot([t0 / 60, t1 / 60], ends, color="black", linewidth=1,
                    label=f"fit after warm-up ({'flat' if tr.flat else 'NOT flat'})")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    ax = axes[3]
    starts = [w.start_s / 60 for w in r.windows]
    width = r.window_s / 60
    ax.bar(starts, [w.p99_ms for w in r.windows], width=width * 0.9, align="edge", color="tab:orange", label="p99")
    ax.bar(starts, [w.p50_ms for w in r.windows], width=width * 0.9, align="edge", color="tab:green", label="p50")
    if r.verdict.median_window_p99_ms:
        ax.axhline(P99_STABLE_FACTOR * r.verdict.median_window_p99_ms, color="red", linestyle=":",
                   label=f"{P99_STABLE_FACTOR:g}× median window p99")
    ax.set_ylabel(f"latency per {r.window_s:g} s window (ms)")
    ax.set_xlabel("minutes since the soak started")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    for a in axes:
        a.axvspan(0, r.warmup_s / 60, color="gray", alpha=0.15)
    v = r.verdict
    failed = [name for name, ok in (("not flat", v.flat), ("errors", v.zero_errors), ("p99 unstable", v.p99_stable))
              if not ok]
    fig.suptitle(f"kmsgate soak {r.started.strftime('%Y-%m-%d %H:%M UTC')}: "
                 f"{'passed' if v.passed else 'FAILED: ' + ', '.join(failed)} (warm-up shaded)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_soak_report(r: SoakResult, directory: str) -> dict[str, str]:
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, r.stem())
    paths = {"json": stem + ".json", "markdown": stem + ".md", "chart": stem + ".png"}
    for kind, text in (("json", json.dumps(r.to_json(), indent=1, default=str) + "\n"), ("markdown", markdown(r))):
        tmp = paths[kind] + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, paths[kind])
    chart(r, paths["chart"])
    return paths
