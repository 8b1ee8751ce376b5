"""Scaling scenarios: the data-key cache against ``--cache-max-messages 1``, and 1 against 2 workers.

Cache: for each cache limit, a fresh local server takes ``N`` PUTs of 1 KiB under one key
and context (10,000 in the standard suite) from 1 and from 64 concurrent clients. An object's
ARN is part of its context, so the PUTs rewrite one object name per concurrency level. KMS
calls are the growth of ``kmsgate_kms_calls_total`` on ``/metrics`` across the run; the
target is at most ``ceil(N / limit) + 1`` calls whatever the concurrency.

Workers: KMS GenerateDataKey and gateway ``/v1/encrypt`` (1 KiB) against servers with 1 and
2 workers, and the bare JSON handler with 1 and 2 processes; the load generator runs in two
processes and its own CPU use is reported, since on two cores it competes with the server.
Where ``wrk`` is installed the same loads run again from it (one thread): it needs a fraction
of a core per ten thousand requests where the Python client needs most of one, so its ratio
shows what a second worker adds when the client does not take a core away from it.
"""

from __future__ import annotations

import math
from dataclasses import replace

from bench.context import Context, Skip
from bench.kmsreq import REPLY_MARKER, NotKmsReplyError, prepare_workload, signed_template
from bench.loadgen import LoadResult, RequestTemplate
from bench.measure import Measurement, from_load
from bench.product import ServerOptions, scrape_metric
from bench.scen_gateway import OCTET, OK_STATUS
from bench.wrkcheck import run_wrk, wrk_path

CACHE_LIMITS = (1, 100, 10_000)
CACHE_LIMITS_QUICK = (1, 10_000)
CACHE_CONCURRENCY = (1, 64)
CACHE_PUTS = 10_000
CACHE_PUTS_QUICK = 1_000
CACHE_RUN_BOUND_S = 40.0
CACHE_RUN_BOUND_QUICK_S = 10.0


def kms_call_bound(puts: int, limit: int) -> int:
    """The most KMS calls ``puts`` writes under one key and context may cost with ``limit``."""
    return math.ceil(puts / limit) + 1


def run_cache(ctx: Context) -> None:
    """Scenario 4: KMS calls per 10,000 PUTs and throughput against the cache limit."""
    if not ctx.local:
        raise Skip("needs local servers started with --cache-max-messages")
    quick = ctx.options.quick
    puts = CACHE_PUTS_QUICK if quick else CACHE_PUTS
    bound_s = CACHE_RUN_BOUND_QUICK_S if quick else CACHE_RUN_BOUND_S
    auth = ctx.secrets.bearer() + OCTET
    for limit in CACHE_LIMITS_QUICK if quick else CACHE_LIMITS:
        with ctx.kmsgate(ServerOptions(cache_max_messages=limit)) as url:
            for conc in CACHE_CONCURRENCY:
                before = scrape_metric(url, ctx.secrets.token)
                templates = (RequestTemplate("PUT", f"/v1/objects/cache/{conc}", auth, body_size=1024),)
                plan = ctx.plan(url, templates, concurrency=conc, warmup_s=0.0, duration_s=bound_s,
                                max_requests=puts, expect_status=OK_STATUS)
                result = ctx.load(plan, f"cache {limit} x{conc}")
                after = scrape_metric(url, ctx.secrets.token)
                extra: dict[str, object] = {"cache_max_messages": limit, "puts": result.requests}
                note = ""
                if before is None or after is None:
                    note = "kmsgate_kms_calls_total not found on /metrics"
                else:
                    calls = after - before
                    bound = kms_call_bound(result.requests, limit)
                    extra.update(kms_calls=calls, kms_call_bound=bound, within_bound=calls <= bound,
                                 kms_calls_per_10k=calls * 10_000 / max(result.requests, 1))
                m = from_load("cache", f"cache/{limit}/{conc}", f"PUT 1 KiB, cache {limit}, {conc} clients",
                              "kmsgate", result, "req/s", 1024, extra, note)
                base = ctx.find(f"cache/1/{conc}")
                ctx.add(m.with_ceiling(base) if base is not None and limit != 1 else m)


def run_workers(ctx: Context) -> None:
    """Scenario 5: 1 worker against 2 workers (ratio of 2 to 1 is the figure)."""
    if not ctx.local:
        raise Skip("needs local servers started with --workers")
    creds = ctx.secrets.credentials
    clients = 2
    for workers in (1, 2):
        ceil_server = ctx.http_ceiling(workers)
        gdk = None
        try:
            with ctx.kmsgate(ServerOptions(workers=workers)) as url:
                try:
                    workload = prepare_workload(url, creds)
                    gdk, reply = signed_template(url, workload, "GenerateDataKey", creds)
                except (NotKmsReplyError, OSError) as exc:
                    raise Skip(f"KMS set-up failed: {exc}") from exc
                plan = ctx.plan(url, (gdk,), processes=clients, expect_contains=REPLY_MARKER["GenerateDataKey"])
                _add_worker_row(ctx, "kms", workers, ctx.load(plan, f"GenerateDataKey {workers}w"))
                enc = RequestTemplate("POST", "/v1/encrypt", ctx.secrets.bearer() + OCTET, body_size=1024)
                plan = ctx.plan(url, (enc,), processes=clients, expect_status=OK_STATUS)
                _add_worker_row(ctx, "encrypt", workers, ctx.load(plan, f"encrypt 1 KiB {workers}w"))
                _add_wrk_worker_row(ctx, "kms", workers, url, gdk)
                _add_wrk_worker_row(ctx, "encrypt", workers, url, enc)
        except Skip as exc:
            ctx.skip(f"kmsgate with {workers} worker(s)", str(exc))
        body = gdk if gdk is not None else RequestTemplate("POST", "/json", body=b'{"KeyId":"alias/bench","KeySpec":"AES_256"}')
        ceil_body = replace(body, path="/json?reply_bytes=300")
        plan = ctx.plan(ceil_server.url, (ceil_body,), processes=clients)
        _add_worker_row(ctx, "ceiling-json", workers, ctx.load(plan, f"JSON ceiling {workers}w"), "http-ceiling")
        _add_wrk_worker_row(ctx, "ceiling-json", workers, ceil_server.url, ceil_body, "http-ceiling")


def _add_wrk_worker_row(ctx: Context, what: str, workers: int, url: str, template: RequestTemplate,
                        system: str = "kmsgate") -> None:
    """The same load from ``wrk`` (one thread): a client that needs a fraction of a core, so the
    server processes get most of the machine and the ratio shows what the second worker adds."""
    if not ctx.options.use_wrk:
        return
    if wrk_path() is None:
        ctx.skip(f"wrk {what} with {workers} worker(s)", "wrk not installed (apt-get install -y wrk)")
        return
    ctx.tick(f"wrk {what} {workers}w")
    try:
        res = run_wrk(url, template, ctx.options.concurrency, max(1.0, ctx.duration_s))
    except RuntimeError as exc:
        ctx.skip(f"wrk {what} with {workers} worker(s)", str(exc))
        return
    m = Measurement("workers", f"workers/{what}-wrk/{workers}", f"{what}, {workers} worker(s), wrk", system,
                    "req/s", res.rps, payload_bytes=template.payload_bytes, concurrency=ctx.options.concurrency,
                    requests=res.requests, errors=res.non_2xx + res.socket_errors,
                    extra={"workers": workers, "p50_ms": res.p50_ms, "p90_ms": res.p90_ms, "p99_ms": res.p99_ms},
                    note="load generator: wrk, one thread")
    one = ctx.find(f"workers/{what}-wrk/1")
    ctx.add(m.with_ceiling(one) if workers == 2 and one is not None else m)


def _add_worker_row(ctx: Context, what: str, workers: int, result: LoadResult, system: str = "kmsgate") -> None:
    m = from_load("workers", f"workers/{what}/{workers}", f"{what}, {workers} worker(s)", system, result,
                  "req/s", extra={"workers": workers},
                  note=f"load generator used {result.client_cores:.2f} cores")
    one = ctx.find(f"workers/{what}/1")
    ctx.add(m.with_ceiling(one) if workers == 2 and one is not None else m)
