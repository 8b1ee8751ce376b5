"""Report writing: ``<dir>/<date>-<host>.json``, a Markdown summary beside it, and PNG charts.

The JSON holds the machine, the command, every measurement (with its encoded-free
latency summary), the targets and the skipped parts. The Markdown summary holds the
table a README performance section needs: figure, value, ceiling, ratio, percentiles.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from bench.measure import Measurement
from bench.targets import Target


@dataclass(frozen=True, slots=True)
class Machine:
    host: str
    cpu: str
    cores: int
    memory_gib: float
    python: str
    platform: str

    @classmethod
    def detect(cls) -> Machine:
        cpu = platform.processor() or ""
        try:
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = 0.0
        try:
            with open("/proc/meminfo") as fh:
                mem = int(fh.readline().split()[1]) / 1024**2
        except (OSError, ValueError, IndexError):
            pass
        return cls(socket.gethostname(), cpu, os.cpu_count() or 0, round(mem, 1),
                   platform.python_version(), platform.platform())


@dataclass(frozen=True, slots=True)
class Report:
    started: datetime
    command: str
    machine: Machine
    measurements: Sequence[Measurement]
    targets: Sequence[Target]
    skipped: Sequence[tuple[str, str]]
    notes: Sequence[str]
    elapsed_s: float

    def stem(self) -> str:
        host = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.machine.host) or "host"
        return f"{self.started.strftime('%Y-%m-%d')}-{host}"

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "command": self.command,
            "elapsed_s": self.elapsed_s,
            "machine": asdict(self.machine),
            "git_commit": _git_commit(),
            "measurements": [m.to_json() for m in self.measurements],
            "targets": [dict(asdict(t), passed=t.passed, shortfall=t.shortfall) for t in self.targets],
            "skipped": [{"what": w, "reason": r} for w, r in self.skipped],
            "notes": list(self.notes),
        }


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)), check=False)
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def markdown(report: Report) -> str:
    m = report.machine
    lines = [
        f"# kmsgate benchmark — {report.started.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: `{m.host}`, {m.cpu}, {m.cores} cores, {m.memory_gib} GiB, Python {m.python}, {m.platform}.",
        f"Command: `{report.command}` ({report.elapsed_s:.0f} s). Load generator: aiohttp client on uvloop, "
        "HDR histograms, warm-up excluded.",
        "",
        "| scenario | figure | system | value | ceiling | ceiling value | ratio | p50 ms | p99 ms | p99.9 ms | errors |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.measurements:
        lat = r.latency
        lines.append(
            f"| {r.scenario} | {r.label} | {r.system} | {_fmt(r.value, r.unit)} | {r.ceiling_label or '–'} | "
            f"{_fmt(r.ceiling_value, r.unit) if r.ceiling_key else '–'} | {_fmt(r.ratio)} | "
            f"{_fmt(lat.p50_ms) if lat and lat.count else '–'} | {_fmt(lat.p99_ms) if lat and lat.count else '–'} | "
            f"{_fmt(lat.p999_ms) if lat and lat.count else '–'} | {r.errors} |"
        )
    extras = [r for r in report.measurements if any(k in r.extra for k in ("server_peak_rss_bytes", "times_moto",
                                                                         "kms_calls", "ratio_to_aesgcm",
                                                                         "round_values"))]
    if extras:
        lines += ["", "## Details", "", "| figure | details |", "|---|---|"]
        for r in extras:
            bits = []
            if "server_rss_growth_parts" in r.extra:
                bits.append(f"server peak RSS {r.extra['server_peak_rss_bytes'] / 1024**2:.0f} MiB, "
                            f"{r.extra['server_rss_growth_bytes'] / 1024**2:.1f} MiB over idle = "
                            f"{r.extra['server_rss_growth_parts']:.2f} parts of "
                            f"{r.extra['part_bytes'] / 1024**2:.0f} MiB ({r.extra['upload_threads']} threads)")
            elif "server_peak_rss_bytes" in r.extra:
                bits.append(f"server peak RSS {r.extra['server_peak_rss_bytes'] / 1024**2:.0f} MiB, "
                            f"{r.extra['server_rss_growth_per_request_bytes'] / 1024**2:.1f} MiB per request in flight")
            if "times_moto" in r.extra:
                bits.append(f"{r.extra['times_moto']:.1f}x moto")
            if "kms_calls" in r.extra:
                bits.append(f"{r.extra['kms_calls']:.0f} KMS calls for {r.extra['puts']} PUTs "
                            f"({r.extra['kms_calls_per_10k']:.0f} per 10,000; bound {r.extra['kms_call_bound']})")
            if "ratio_to_aesgcm" in r.extra:
                bits.append(f"{r.extra['ratio_to_aesgcm']:.2f} of in-process AESGCM")
            if "round_values" in r.extra:
                rounds = zip(r.extra["round_values"], r.extra["ceiling_round_values"])
                bits.append("rounds (figure / ceiling, ratio): " + ", ".join(
                    f"{_fmt(v, r.unit)} / {_fmt(c, r.unit)}, {_fmt(v / c if c else None)}" for v, c in rounds))
            lines.append(f"| {r.label} | {'; '.join(bits)} |")
    lines += ["", "## Targets", "", "| target | goal | measured | result |", "|---|---|---:|---|"]
    for t in report.targets:
        verdict = {True: "met", False: f"**missed** ({t.shortfall})", None: "not measured"}[t.passed]
        if t.detail:
            verdict += f"; {t.detail}"
        lines.append(f"| {t.name} | {t.goal} | {_fmt(t.value)} | {verdict} |")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    if report.skipped:
        lines += ["", "## Skipped", ""] + [f"- {w}: {r}" for w, r in report.skipped]
    return "\n".join(lines) + "\n"


def write_report(report: Report, directory: str) -> dict[str, str]:
    """Write JSON, Markdown and charts; return the paths written by kind."""
    from bench.charts import write_charts

    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, report.stem())
    paths = {"json": stem + ".json", "markdown": stem + ".md"}
    for kind, text in (("json", json.dumps(report.to_json(), indent=2, default=str) + "\n"),
                       ("markdown", markdown(report))):
        tmp = paths[kind] + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, paths[kind])
    paths.update(write_charts(report.measurements, stem))
    return paths


def now() -> datetime:
    return datetime.now(timezone.utc)


def command_line() -> str:
    return " ".join(["python -m bench"] + sys.argv[1:])
