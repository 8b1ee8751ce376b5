"""Latency scenario: latency at a set request rate, open loop.

Each request is sent at its scheduled time whether or not earlier replies have come back,
and its latency is counted from that scheduled time, so a stalled reply delays no later
measurement (no coordinated omission). The rates are fractions of the throughput that the
closed-loop scenarios measured for the same request in this run (a short closed-loop run
measures it when those scenarios were not run). The bare handler gets the same rate, so
each row has its ceiling beside it; a ratio under 1 means the server fell behind the rate.

Shapes: KMS GenerateDataKey with SigV4, and ``/v1/encrypt`` of 1 KiB.
"""

from __future__ import annotations

from dataclasses import replace

from bench.context import Context
from bench.kmsreq import REPLY_MARKER, prepare_workload, signed_template
from bench.loadgen import RequestTemplate
from bench.measure import Measurement, from_load
from bench.scen_gateway import KIB, OCTET, OK_STATUS

FRACTIONS = (0.5, 0.8)
RUNS = 2 * 2 * len(FRACTIONS)  # two shapes, kmsgate and the ceiling at each fraction


def run_latency(ctx: Context) -> None:
    """Scenario 6: open-loop latency at fractions of the measured throughput."""
    with ctx.kmsgate() as url:
        creds = ctx.secrets.credentials
        workload = prepare_workload(url, creds)
        gdk, reply_bytes = signed_template(url, workload, "GenerateDataKey", creds)
        encrypt = RequestTemplate("POST", "/v1/encrypt", ctx.secrets.bearer() + OCTET, body_size=KIB)
        shapes = (
            ("kms/GenerateDataKey/sigv4", "GenerateDataKey (SigV4)", gdk,
             replace(gdk, path=f"/json?reply_bytes={reply_bytes}"), REPLY_MARKER["GenerateDataKey"]),
            ("stream/encrypt/1024", "encrypt 1 KiB", encrypt,
             RequestTemplate("POST", "/echo", OCTET, body_size=KIB), b""),
        )
        for key, label, ours, bare, marker in shapes:
            capacity = _closed_loop_rate(ctx, key, label, url, ours, marker)
            for fraction in FRACTIONS:
                rate = max(round(capacity * fraction), 1)
                name = f"{label} at {rate:,} req/s"
                row_key = f"latency/{key}/{round(fraction * 100)}"
                fig = _open_run(ctx, row_key, name, "kmsgate", url, ours, rate, marker)
                ceil = ctx.add(_open_run(ctx, f"{row_key}/ceiling", name, "http-ceiling",
                                         ctx.http_ceiling().url, bare, rate, b""))
                ctx.add(replace(fig.with_ceiling(ceil), note=f"{round(fraction * 100)}% of the closed-loop rate"))


def _closed_loop_rate(ctx: Context, key: str, label: str, url: str, template: RequestTemplate,
                      marker: bytes) -> float:
    """kmsgate's closed-loop requests/s for ``template``: from this run, else measured now."""
    known = ctx.find(key, "kmsgate")
    if known is not None and known.value > 0:
        return known.value
    ctx.unplanned_runs(1)
    plan = ctx.plan(url, (template,), expect_status=OK_STATUS, expect_contains=marker)
    return ctx.load(plan, f"{label}, closed loop").rps


def _open_run(ctx: Context, key: str, label: str, system: str, url: str, template: RequestTemplate,
              rate: int, marker: bytes) -> Measurement:
    plan = ctx.plan(url, (template,), mode="open", rate=float(rate),
                    expect_status=OK_STATUS if system == "kmsgate" else (200,), expect_contains=marker)
    result = ctx.load(plan, f"{label} ({system}), open loop")
    return from_load("latency", key, label, system, result, "req/s", template.payload_bytes,
                     extra={"offered_rate": rate})
