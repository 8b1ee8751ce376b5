"""``wrk`` (a C load generator) as the primary client of the small-request figures.

The same request template our load generator replays (signed once, replayed within its
validity) is written to a Lua script (body read from a file, so any bytes survive) and
run with ``wrk --latency``, one thread. The figures parsed from its report (requests/s,
latency percentiles, non-2xx count, socket errors) lead the report; the Python load
generator's figure of the same request is the second column, and a large gap between the
two means the Python client is the bottleneck. ``wrk`` has no warm-up phase and reports
no p99.9; its latency is closed-loop.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import partial

from bench.context import Context, Skip
from bench.loadgen import RequestTemplate, synthetic_bytes
from bench.measure import Measurement

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_PCT = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def wrk_path() -> str | None:
    return shutil.which("wrk")


def parse_wrk(text: str) -> WrkResult:
    """Parse the report of ``wrk --latency``; raise ``ValueError`` if it has no rate."""
    rps = _RPS.search(text)
    if rps is None:
        raise ValueError("no Requests/sec line in wrk output")
    pct = {int(p): float(v) * _UNITS[u] for p, v, u in _PCT.findall(text)}
    non2xx = _NON2XX.search(text)
    sock = _SOCKET.search(text)
    total = _TOTAL.search(text)
    return WrkResult(
        requests=int(total.group(1)) if total else 0,
        rps=float(rps.group(1)),
        p50_ms=pct.get(50, 0.0),
        p90_ms=pct.get(90, 0.0),
        p99_ms=pct.get(99, 0.0),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
    )


def _lua(template: RequestTemplate, body_path: str) -> str:
    lines = [f'wrk.method = "{template.method}"']
    if template.body or template.body_size:
        lines += [
            f'local f = assert(io.open("{body_path}", "rb"))',
            "wrk.body = f:read(\"*all\")",
            "f:close()",
        ]
    for name, value in template.headers:
        if name.lower() in ("host", "content-length"):
            continue
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    lines.append(f'wrk.path = "{template.path}"')
    return "\n".join(lines) + "\n"


def run_wrk(
    target: str, template: RequestTemplate, concurrency: int, duration_s: float, threads: int = 1
) -> WrkResult:
    """Run ``wrk`` against ``target`` with ``template``; raise ``RuntimeError`` if it is missing or fails."""
    exe = wrk_path()
    if exe is None:
        raise RuntimeError("wrk not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="kmsgate-bench-wrk-") as tmp:
        body_path = os.path.join(tmp, "body")
        with open(body_path, "wb") as fh:
            fh.write(template.body or synthetic_bytes(template.body_size))
        script = os.path.join(tmp, "request.lua")
        with open(script, "w") as fh:
            fh.write(_lua(template, body_path))
        seconds = max(1, round(duration_s))
        out = subprocess.run(
            [exe, f"-t{threads}", f"-c{max(concurrency, threads)}", f"-d{seconds}s", "--latency",
             "-s", script, target.rstrip("/") + template.path],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited with {out.returncode}: {out.stderr.strip()[:200]}")
    return parse_wrk(out.stdout)


def wrk_figure(ctx: Context, scenario: str, key: str, label: str, system: str, url: str,
               template: RequestTemplate) -> Measurement:
    """One ``wrk`` run of ``template`` against ``url`` at the suite's concurrency (not recorded);
    ``Skip`` if ``wrk`` is missing or fails."""
    ctx.tick(f"wrk {label} ({system})")
    try:
        res = run_wrk(url, template, ctx.options.concurrency, max(1.0, ctx.duration_s))
    except RuntimeError as exc:
        raise Skip(f"wrk {label} ({system}): {exc}") from exc
    return Measurement(scenario, key, f"wrk {label}", system, "req/s", res.rps,
                       payload_bytes=template.payload_bytes, concurrency=ctx.options.concurrency,
                       requests=res.requests, errors=res.non_2xx + res.socket_errors,
                       extra={"p50_ms": res.p50_ms, "p90_ms": res.p90_ms, "p99_ms": res.p99_ms, "client": "wrk"})


def wrk_beside(ctx: Context, scenario: str, key: str, label: str, url: str, template: RequestTemplate,
               ceiling_key: str, ceiling_url: str, ceiling_template: RequestTemplate, *,
               system: str = "kmsgate") -> None:
    """A targeted figure (of ``system``) and its ceiling measured with ``wrk`` in alternated rounds
    and recorded (``ctx.alternated``); skipped with a note when ``wrk`` is not installed or fails."""
    if wrk_path() is None:
        for _ in range(2 * ctx.options.target_rounds):
            ctx.tick(None)
        ctx.skip(f"wrk {label}", "wrk not installed (make bench-tools)")
        return
    try:
        ctx.alternated(
            partial(wrk_figure, ctx, scenario, key, label, system, url, template),
            partial(wrk_figure, ctx, scenario, ceiling_key, label, "http-ceiling", ceiling_url, ceiling_template))
    except Skip as exc:
        ctx.skip(f"wrk {label}", str(exc))
