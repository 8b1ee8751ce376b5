"""Gateway scenarios: object PUT/GET (file backend) and streaming /v1/encrypt and /v1/decrypt.

Each kmsgate figure is paired with the bare server's figure for the same shape and
size in the same run: PUT with ``/sink``, GET with ``/source/<n>``, encrypt and decrypt
with ``/echo``. Small payloads are compared in requests/s, large ones in payload MB/s.
A figure with a target and its ceiling are measured in alternated rounds (``ctx.alternated``).
Local servers also report their peak resident memory for the run and its growth per
request in flight.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from bench.context import Context, Skip
from bench.loadgen import RequestTemplate, synthetic_bytes
from bench.measure import Measurement, from_load, size_label
from bench.wrkcheck import run_wrk, wrk_beside, wrk_path

KIB, MIB, GIB = 1024, 1024**2, 1024**3
SIZES = (1 * KIB, 64 * KIB, 1 * MIB, 64 * MIB)
STREAM_BYTES = 1 * GIB
OK_STATUS = (200, 201, 204)
OBJECTS_PER_SIZE = 16
OCTET = (("Content-Type", "application/octet-stream"),)
# The sizes whose figures have a target (bench.targets): measured in alternated rounds.
PUT_TARGET_SIZES = (64 * MIB,)
ENCRYPT_TARGET_SIZES = (1 * KIB, 64 * MIB)
# The small-request sizes whose figures have a target measured with wrk (the primary client).
GET_TARGET_SIZES = (1 * KIB,)
ENCRYPT_WRK_SIZES = (1 * KIB,)


def concurrency_for(size: int, default: int) -> int:
    """Requests in flight for a payload size: bounded so the client holds a few bodies at most."""
    if size >= 64 * MIB:
        return 2
    if size >= MIB:
        return 8
    return default


def unit_for(size: int) -> str:
    return "MB/s" if size >= MIB else "req/s"


def memory_extra(ctx: Context, concurrency: int, baseline: int) -> dict[str, int | float]:
    server = ctx.server_memory()
    if server is None:
        return {}
    mem = server.memory()
    growth = max(mem.peak_rss_bytes - baseline, 0)
    return {"server_peak_rss_bytes": mem.peak_rss_bytes, "server_rss_growth_bytes": growth,
            "server_rss_growth_per_request_bytes": growth / max(concurrency, 1)}


def measured(ctx: Context, scenario: str, key: str, label: str, url: str,
             templates: tuple[RequestTemplate, ...], concurrency: int, size: int,
             **plan_kw: object) -> Measurement:
    """One run of a kmsgate plan with peak-memory accounting (not recorded)."""
    server = ctx.server_memory()
    baseline = 0
    if server is not None:
        server.reset_peak()
        baseline = server.memory().rss_bytes
    plan = ctx.plan(url, templates, concurrency=concurrency, expect_status=OK_STATUS, **plan_kw)
    result = ctx.load(plan, label)
    return from_load(scenario, key, label, "kmsgate", result, unit_for(size), size,
                     memory_extra(ctx, concurrency, baseline))


def ceiling(ctx: Context, scenario: str, key: str, label: str, template: RequestTemplate,
            concurrency: int, size: int, **plan_kw: object) -> Measurement:
    """One run of the bare handler (not recorded)."""
    server = ctx.http_ceiling()
    result = ctx.load(ctx.plan(server.url, (template,), concurrency=concurrency, **plan_kw), label)
    return from_load(scenario, key, label, "http-ceiling", result, unit_for(size), size)


def beside(ctx: Context, figure: Callable[[], Measurement], ceil: Callable[[], Measurement],
           targeted: bool) -> tuple[Measurement, Measurement]:
    """Record a figure paired with its ceiling: alternated rounds for a figure with a target,
    one run of each otherwise."""
    if targeted:
        return ctx.alternated(figure, ceil)
    fig, c = figure(), ceil()
    ctx.add(c)
    return ctx.add(fig.with_ceiling(c)), c


def pair(ctx: Context, figure: Measurement, ceil: Measurement | None) -> None:
    ctx.measurements[ctx.measurements.index(figure)] = figure.with_ceiling(ceil)


def object_put(url: str, path: str, size: int, headers: tuple[tuple[str, str], ...]) -> None:
    """PUT ``size`` synthetic bytes once (set-up for GET), checked."""
    status, _ = _send(url, "PUT", path, headers, size, None)
    if status not in OK_STATUS:
        raise Skip(f"set-up PUT {path} answered HTTP {status}")


def _send(url: str, method: str, path: str, headers: tuple[tuple[str, str], ...], size: int,
          out_path: str | None, body_path: str | None = None) -> tuple[int, int]:
    """Stream a request body (synthetic or from a file); stream the reply to ``out_path``.

    The reply is read on a second thread while the body is still being sent: the streaming
    endpoints answer as the body arrives, so a client that sends everything before reading
    would wait on a server that waits for it to read.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=600)
    outcome: dict[str, Any] = {}

    def read_reply() -> None:
        try:
            resp = conn.getresponse()
            written = 0
            with open(out_path, "wb") if out_path else contextlib.nullcontext() as out:
                while chunk := resp.read(256 * KIB):
                    written += len(chunk)
                    if out is not None:
                        out.write(chunk)
                if out is not None:
                    # On disk before the file is replayed: otherwise the kernel writes a fresh
                    # gigabyte back while the run that reads it is being timed.
                    out.flush()
                    os.fsync(out.fileno())
            outcome["reply"] = (resp.status, written)
        except Exception as exc:  # reported to the sending thread below
            outcome["error"] = exc

    try:
        conn.putrequest(method, path)
        for k, v in headers:
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        reader = threading.Thread(target=read_reply, daemon=True)
        reader.start()
        block = synthetic_bytes(256 * KIB)
        left = size
        with open(body_path, "rb") if body_path else contextlib.nullcontext() as src:
            while left > 0:
                chunk = src.read(min(left, len(block))) if src is not None else block[: min(left, len(block))]
                if not chunk:
                    break
                try:
                    conn.send(chunk)
                except OSError:
                    break  # the server answered early (e.g. an error); the reply says why
                left -= len(chunk)
        reader.join(timeout=600)
        if "error" in outcome:
            raise outcome["error"]
        if "reply" not in outcome:
            raise TimeoutError(f"no complete reply to {method} {path} within 600 s")
        return outcome["reply"]  # type: ignore[no-any-return]
    finally:
        conn.close()


def run_objects(ctx: Context) -> None:
    """Scenario 1: PUT and GET /v1/objects/{key} at each size, beside /sink and /source."""
    auth = ctx.secrets.bearer()
    with ctx.kmsgate() as url:
        for size in SIZES:
            conc = concurrency_for(size, ctx.options.concurrency)
            label = size_label(size)
            puts = tuple(RequestTemplate("PUT", f"/v1/objects/bench/{size}/{i}", auth + OCTET, body_size=size)
                         for i in range(OBJECTS_PER_SIZE))
            beside(ctx,
                   partial(measured, ctx, "gateway", f"gateway/PUT/{size}", f"PUT {label}", url, puts, conc, size),
                   partial(ceiling, ctx, "gateway", f"ceiling/sink/{size}", f"sink {label}",
                           RequestTemplate("PUT", "/sink", OCTET, body_size=size), conc, size),
                   targeted=size in PUT_TARGET_SIZES)
            object_put(url, f"/v1/objects/bench/{size}/0", size, auth + OCTET)
            get = RequestTemplate("GET", f"/v1/objects/bench/{size}/0", auth)
            source = RequestTemplate("GET", f"/source/{size}")
            if size in GET_TARGET_SIZES and ctx.options.use_wrk:
                wrk_beside(ctx, "gateway", f"gateway/GET/{size}/wrk", f"GET {label}", url, get,
                           f"ceiling/source/{size}/wrk", ctx.http_ceiling().url, source)
            beside(ctx,
                   partial(measured, ctx, "gateway", f"gateway/GET/{size}", f"GET {label}", url, (get,), conc, size),
                   partial(ceiling, ctx, "gateway", f"ceiling/source/{size}", f"source {label}",
                           source, conc, size),
                   targeted=False)
        if ctx.options.use_wrk:
            cross_check(ctx, url, RequestTemplate("PUT", "/v1/objects/bench/wrk", auth + OCTET, body_size=KIB),
                        RequestTemplate("PUT", "/sink", OCTET, body_size=KIB), "gateway/PUT/1024", "PUT 1 KiB")


def cross_check(ctx: Context, url: str, template: RequestTemplate, ceil_template: RequestTemplate,
                key: str, label: str) -> None:
    """The same request with wrk, against kmsgate and the ceiling (skipped with a note if absent)."""
    if wrk_path() is None:
        ctx.skip(f"wrk cross-check of {label}", "wrk not installed (apt-get install -y wrk)")
        return
    seconds = max(1.0, ctx.duration_s)
    for system, target, tmpl in (("kmsgate", url, template), ("http-ceiling", ctx.http_ceiling().url, ceil_template)):
        ctx.tick(f"wrk {label} {system}")
        try:
            res = run_wrk(target, tmpl, ctx.options.concurrency, seconds)
        except RuntimeError as exc:
            ctx.skip(f"wrk {label} ({system})", str(exc))
            continue
        ctx.add(Measurement("wrk", f"wrk/{key}/{system}", f"wrk {label}", system, "req/s", res.rps,
                            payload_bytes=tmpl.payload_bytes, concurrency=ctx.options.concurrency,
                            requests=res.requests, errors=res.non_2xx + res.socket_errors,
                            extra={"p50_ms": res.p50_ms, "p90_ms": res.p90_ms, "p99_ms": res.p99_ms}))
    ours, peer = ctx.find(f"wrk/{key}/kmsgate"), ctx.find(f"wrk/{key}/http-ceiling")
    if ours is not None and peer is not None:
        pair(ctx, ours, peer)


def run_stream(ctx: Context) -> None:
    """Scenario 2: streaming /v1/encrypt and /v1/decrypt at each size and a 1 GiB stream."""
    auth = ctx.secrets.bearer() + OCTET
    sizes = SIZES + (() if ctx.options.quick else (STREAM_BYTES,))
    tmp = tempfile.mkdtemp(prefix="kmsgate-bench-stream-")
    try:
        with ctx.kmsgate() as url:
            for size in sizes:
                label = size_label(size)
                conc = 1 if size >= GIB else concurrency_for(size, ctx.options.concurrency)
                bound = {"max_requests": 2, "warmup_s": 0.0} if size >= GIB else {}
                enc = RequestTemplate("POST", "/v1/encrypt", auth, body_size=size)
                echo = RequestTemplate("POST", "/echo", OCTET, body_size=size)
                if size in ENCRYPT_WRK_SIZES and ctx.options.use_wrk:
                    wrk_beside(ctx, "stream", f"stream/encrypt/{size}/wrk", f"encrypt {label}", url, enc,
                               f"ceiling/echo/{size}/wrk", ctx.http_ceiling().url, echo)
                _, ceil = beside(
                    ctx,
                    partial(measured, ctx, "stream", f"stream/encrypt/{size}", f"encrypt {label}", url, (enc,),
                            conc, size, **bound),
                    partial(ceiling, ctx, "stream", f"ceiling/echo/{size}", f"echo {label}", echo, conc, size,
                            **bound),
                    targeted=size in ENCRYPT_TARGET_SIZES)
                if shutil.disk_usage(tmp).free < 3 * size + GIB:
                    ctx.skip(f"decrypt {label}", "not enough free disk for the ciphertext file")
                    continue
                blob = os.path.join(tmp, f"ct-{size}")
                status, length = _send(url, "POST", "/v1/encrypt", auth, size, blob)
                if status not in OK_STATUS:
                    raise Skip(f"set-up encrypt {label} answered HTTP {status}")
                dec = RequestTemplate("POST", "/v1/decrypt", auth, body_size=length, body_file=blob)
                fig = measured(ctx, "stream", f"stream/decrypt/{size}", f"decrypt {label}", url, (dec,), conc,
                               size, **bound)
                ctx.add(fig.with_ceiling(ceil))
                os.unlink(blob)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
