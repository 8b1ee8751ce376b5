"""KMS scenario: GenerateDataKey, Encrypt (1 KiB) and Decrypt at fixed concurrency.

For each operation, in the same run and with the same load generator (``wrk`` first, the
primary figure; then the Python load generator, the second column):

* kmsgate with SigV4 verification (signed requests), and without (a second local server
  started with ``--insecure-no-auth``, unsigned requests);
* the bare aiohttp+uvloop handler that parses the same JSON body and answers a JSON body
  of the size of kmsgate's reply (``/json?reply_bytes=n``): the ceiling;
* moto's server (the peer) with the same operation, signed;
* with ``wrk``, for GenerateDataKey: the verification floor, the bare handler that also verifies
  the same signed request with kmsgate's SigV4 verifier and does nothing else (``POST /`` of
  ``bench.ceilings``). No signed KMS operation can reach a higher ratio than it.

Also reported: the client-side cost of SigV4 signing one request, measured in-process,
which is why the load generator replays a request signed once.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

from bench.context import Context, Skip
from bench.kmsreq import (
    REPLY_MARKER,
    Credentials,
    KmsWorkload,
    NotKmsReplyError,
    kms_request,
    prepare_workload,
    send_once,
    signed_template,
)
from bench.loadgen import RequestTemplate
from bench.measure import SIGV4_FLOOR, Measurement, from_load
from bench.peer import PEER_CREDENTIALS, start_moto
from bench.product import ServerOptions
from bench.scen_gateway import pair
from bench.wrkcheck import wrk_beside

OPERATIONS = ("GenerateDataKey", "Encrypt", "Decrypt")
SIGNING_SAMPLES = 200


def signing_cost_us(url: str, credentials: Credentials) -> float:
    """Microseconds of client CPU to build and SigV4-sign one GenerateDataKey request."""
    payload = {"KeyId": "alias/bench", "KeySpec": "AES_256"}
    start = time.process_time()
    for _ in range(SIGNING_SAMPLES):
        kms_request(url, "GenerateDataKey", payload, credentials)
    return (time.process_time() - start) / SIGNING_SAMPLES * 1e6


def _run_op(ctx: Context, url: str, system: str, key: str, label: str, template: RequestTemplate,
            operation: str, keepalive: bool = True) -> Measurement:
    """One run of an operation against a KMS (not recorded)."""
    plan = ctx.plan(url, (template,), expect_contains=REPLY_MARKER[operation], keepalive=keepalive)
    result = ctx.load(plan, f"{label} ({system})")
    return from_load("kms", key, label, system, result, "req/s", len(template.body))


def _ceiling_run(ctx: Context, url: str, operation: str, template: RequestTemplate) -> Measurement:
    """One run of the bare JSON handler in an operation's shape (not recorded)."""
    plan = ctx.plan(url, (template,))
    result = ctx.load(plan, f"JSON ceiling {operation}")
    return from_load("kms", f"ceiling/json/{operation}", f"bare JSON {operation}", "http-ceiling",
                     result, "req/s", len(template.body))


def run_kms(ctx: Context) -> None:
    """Scenario 3 (and the issue's KMS performance script)."""
    try:
        _run_signed(ctx)
    except Skip as exc:
        ctx.skip("KMS with SigV4 verification", str(exc))
    if ctx.local:
        _run_unsigned(ctx)
    _run_peer(ctx)


def _run_signed(ctx: Context) -> None:
    creds = ctx.secrets.credentials
    reply_sizes: dict[str, int] = {}
    with ctx.kmsgate() as url:
        try:
            workload = prepare_workload(url, creds)
        except (NotKmsReplyError, OSError) as exc:
            raise Skip(f"kmsgate KMS set-up failed: {exc}") from exc
        ctx.notes.append(f"SigV4 signing costs the client {signing_cost_us(url, creds):.0f} us per request; "
                         "the load generator replays a request signed once per run.")
        for op in OPERATIONS:
            template, reply_sizes[op] = signed_template(url, workload, op, creds)
            bare = replace(template, path=f"/json?reply_bytes={reply_sizes[op]}")
            if ctx.options.use_wrk:
                wrk_beside(ctx, "kms", f"kms/{op}/sigv4/wrk", f"{op} (SigV4)", url, template,
                           f"ceiling/json/{op}/wrk", ctx.http_ceiling().url, bare)
                if op == "GenerateDataKey":
                    _floor_beside(ctx, workload, op, reply_sizes[op], bare)
            ctx.alternated(
                partial(_run_op, ctx, url, "kmsgate", f"kms/{op}/sigv4", f"{op} (SigV4)", template, op),
                partial(_ceiling_run, ctx, ctx.http_ceiling().url, op, bare),
            )


def _floor_beside(ctx: Context, workload: KmsWorkload, op: str, reply_bytes: int, bare: RequestTemplate) -> None:
    """The verification floor of ``op`` with ``wrk``: the same request, signed for the bare server
    (its host is signed), whose one reply is checked first."""
    url = ctx.http_ceiling().url
    template = kms_request(url, op, workload.payload(op), ctx.secrets.credentials)
    template = replace(template, headers=(*template.headers, ("X-Bench-Reply-Bytes", str(reply_bytes))))
    status, body = send_once(url, template)
    if status != 200 or len(body) != reply_bytes:
        ctx.skip(f"wrk {op}: bare handler + SigV4 verification", f"the floor answered {status}: {body[:200]!r}")
        return
    wrk_beside(ctx, "kms", f"floor/sigv4/{op}/wrk", f"{op}: bare handler + SigV4 verification", url, template,
               f"ceiling/json/{op}/wrk", url, bare, system=SIGV4_FLOOR)


def _run_unsigned(ctx: Context) -> None:
    try:
        with ctx.kmsgate(ServerOptions(no_auth=True)) as url:
            workload = prepare_workload(url, None)
            for op in OPERATIONS:
                template, _ = signed_template(url, workload, op, None)
                fig = ctx.add(_run_op(ctx, url, "kmsgate", f"kms/{op}/noauth", f"{op} (no auth)", template, op))
                pair(ctx, fig, ctx.find(f"ceiling/json/{op}"))
    except (Skip, NotKmsReplyError, OSError) as exc:
        ctx.skip("KMS without SigV4 verification", str(exc))


def _run_peer(ctx: Context) -> None:
    try:
        moto = start_moto()
    except RuntimeError as exc:
        ctx.skip("moto peer", str(exc))
        return
    try:
        workload: KmsWorkload = prepare_workload(moto.url, PEER_CREDENTIALS)
        for op in OPERATIONS:
            template, reply_bytes = signed_template(moto.url, workload, op, PEER_CREDENTIALS)
            fig = ctx.add(_run_op(ctx, moto.url, "moto", f"peer/{op}", f"{op} (moto)", template, op,
                                  keepalive=False))
            ceil = ctx.find(f"ceiling/json/{op}")
            if ceil is None:
                ceil = ctx.add(_ceiling_run(ctx, ctx.http_ceiling().url, op,
                                            replace(template, path=f"/json?reply_bytes={reply_bytes}")))
            pair(ctx, fig, ceil)
            ours = ctx.find(f"kms/{op}/sigv4", "kmsgate")
            if ours is not None and fig.value > 0:
                ours.extra["times_moto"] = ours.value / fig.value
    except (NotKmsReplyError, OSError) as exc:
        ctx.skip("moto peer", f"moto did not answer as KMS: {exc}")
    finally:
        moto.stop()
