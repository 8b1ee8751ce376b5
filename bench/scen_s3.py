"""S3 front scenario: PutObject/GetObject of 64 MiB and of 1 KiB, and a boto3 multipart upload.

Every request is SigV4-signed once per run with botocore's S3 signer (``bench.s3req``) and
replayed; each run writes the same object key(s) over and over. Figures and their ceilings,
measured in the same run with the same client:

* PutObject and GetObject of 64 MiB (``UNSIGNED-PAYLOAD``, as the aws CLI sends large bodies
  over TLS), two in flight, beside the bare server's streaming ``/echo`` of 64 MiB, in payload
  MB/s, with the server's peak RSS growth per request in flight;
* PutObject of 1 KiB (the body's SHA-256 signed, as boto3 signs over plain HTTP), beside the
  bare server's S3-shaped handler (``PUT /<bucket>/<key>``: read the body, answer 200 with an
  ETag), the same request bytes to both: ``wrk`` is the primary client (one thread,
  ``--concurrency`` connections), the Python load generator the second column; with ``wrk``
  also the verification floor, the bare handler that verifies the same request (signed for its
  host) with kmsgate's SigV4 verifier and nothing more (``X-Bench-Verify: s3``);
* a multipart upload by boto3's ``upload_file`` (8 MiB parts, boto3's default ten threads),
  with the server's peak RSS minus its idle RSS reported beside the part size.

The targets (``bench.targets``) are ratios to the ceilings and memory bounds, never timed tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bench.context import Context, Skip
from bench.kmsreq import REGION
from bench.loadgen import SYNTHETIC_BLOCK_BYTES, RequestTemplate, synthetic_bytes
from bench.measure import SIGV4_FLOOR, Measurement, from_load, size_label
from bench.product import ServerOptions
from bench.s3req import S3SetupError, create_bucket, s3_request, send_checked
from bench.scen_gateway import OK_STATUS, memory_extra, object_put, unit_for
from bench.wrkcheck import wrk_figure, wrk_path

KIB, MIB, GIB = 1024, 1024**2, 1024**3
BUCKET = "kmsgate-bench"
LARGE_CONCURRENCY = 2
LARGE_OBJECTS = 4  # keys the large PUTs cycle through, so two in flight rarely replace the same object
UPLOAD_THREADS = 10  # boto3's TransferConfig default max_concurrency


@dataclass(frozen=True, slots=True)
class S3Sizes:
    large_bytes: int = 64 * MIB
    small_bytes: int = 1 * KIB
    multipart_bytes: int = 1 * GIB
    part_bytes: int = 8 * MIB


STANDARD = S3Sizes()
QUICK = S3Sizes(multipart_bytes=128 * MIB)


def _large_figure(ctx: Context, key: str, label: str, url: str,
                  sign: Callable[[], tuple[RequestTemplate, ...]], size: int) -> Measurement:
    """One run of a 64 MiB exchange on kmsgate, signed afresh, with peak-memory accounting."""
    server = ctx.server_memory()
    baseline = 0
    if server is not None:
        server.reset_peak()
        baseline = server.memory().rss_bytes
    plan = ctx.plan(url, sign(), concurrency=LARGE_CONCURRENCY, expect_status=OK_STATUS)
    result = ctx.load(plan, label)
    return from_load("s3", key, label, "kmsgate", result, unit_for(size), size,
                     memory_extra(ctx, LARGE_CONCURRENCY, baseline))


def _echo(ctx: Context, size: int) -> Measurement:
    template = RequestTemplate("PUT", "/echo", (("Content-Type", "application/octet-stream"),), body_size=size)
    server = ctx.http_ceiling()
    plan = ctx.plan(server.url, (template,), concurrency=LARGE_CONCURRENCY)
    result = ctx.load(plan, f"echo {size_label(size)}")
    return from_load("s3", f"s3/ceiling/echo/{size}", f"echo {size_label(size)}", "http-ceiling", result,
                     unit_for(size), size)


def _small_python(ctx: Context, key: str, system: str, url: str, sign: Callable[[], RequestTemplate],
                  label: str) -> Measurement:
    template = sign()
    result = ctx.load(ctx.plan(url, (template,), expect_status=(200,)), f"{label} ({system})")
    return from_load("s3", key, label, system, result, "req/s", template.payload_bytes)


def _small_wrk(ctx: Context, key: str, system: str, url: str, sign: Callable[[], RequestTemplate],
               label: str) -> Measurement:
    return wrk_figure(ctx, "s3", key, label, system, url, sign())


def _floor(ctx: Context, ceiling_url: str, path: str, body: bytes, sign_small: Callable[[], RequestTemplate],
           small_label: str) -> None:
    """The verification floor of the small PutObject with ``wrk``, beside the bare handler; its one reply is checked."""
    label = f"{small_label}: bare handler + SigV4 verification"
    sign_floor = partial(s3_request, ceiling_url, "PUT", path, ctx.secrets.credentials, body=body,
                         headers=(("X-Bench-Verify", "s3"),))
    try:
        send_checked(ceiling_url, sign_floor())
    except S3SetupError as exc:
        ctx.skip(f"wrk {label}", str(exc))
        return
    ctx.alternated(
        partial(_small_wrk, ctx, f"s3/floor/PUT/{len(body)}/wrk", SIGV4_FLOOR, ceiling_url, sign_floor, label),
        partial(_small_wrk, ctx, f"s3/ceiling/PUT/{len(body)}/wrk", "http-ceiling", ceiling_url, sign_small,
                small_label))


def _multipart(ctx: Context, url: str, sizes: S3Sizes, tmp: str) -> Measurement:
    """Upload a file of ``multipart_bytes`` with boto3's ``upload_file``; peak RSS minus idle RSS."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    size, part = sizes.multipart_bytes, sizes.part_bytes
    label = f"multipart upload {size_label(size)}, {size_label(part)} parts"
    if shutil.disk_usage(tmp).free < 3 * size + GIB:
        raise Skip(f"{label}: not enough free disk")
    path = os.path.join(tmp, "multipart-source")
    block = synthetic_bytes(SYNTHETIC_BLOCK_BYTES)
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.write(block[: size % len(block)])
    creds = ctx.secrets.credentials
    client = boto3.session.Session().client(
        "s3", endpoint_url=url, region_name=REGION, aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      retries={"max_attempts": 1, "mode": "standard"}))
    config = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=UPLOAD_THREADS)
    server = ctx.server_memory()
    idle = 0
    if server is not None:
        server.reset_peak()
        idle = server.memory().rss_bytes
    if ctx.remaining_s() < 30:
        ctx.tick(label)
        raise Skip(f"time budget spent before '{label}'")
    ctx.tick(label)
    cpu0, start = os.times(), time.perf_counter()
    client.upload_file(path, BUCKET, "multipart", Config=config)
    elapsed, cpu1 = time.perf_counter() - start, os.times()
    head = client.head_object(Bucket=BUCKET, Key="multipart")
    if head["ContentLength"] != size:
        raise Skip(f"{label}: the object reads back as {head['ContentLength']} bytes")
    extra: dict[str, int | float | str] = {"part_bytes": part, "upload_threads": UPLOAD_THREADS,
                                           "parts": -(-size // part), "etag": head["ETag"]}
    if server is not None:
        peak = server.memory().peak_rss_bytes
        growth = max(peak - idle, 0)
        extra.update(server_idle_rss_bytes=idle, server_peak_rss_bytes=peak, server_rss_growth_bytes=growth,
                     server_rss_growth_parts=growth / part)
    client_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return Measurement("s3", f"s3/multipart/{size}", label, "kmsgate", "MB/s", size / 1e6 / elapsed,
                       payload_bytes=size, concurrency=UPLOAD_THREADS, requests=-(-size // part) + 2,
                       client_cores=client_cpu / elapsed, extra=extra)


def run_s3(ctx: Context, sizes: S3Sizes | None = None) -> None:
    """PutObject and GetObject at 64 MiB and 1 KiB and a multipart upload through the S3 front."""
    if not ctx.local:
        raise Skip("needs a local server with the S3 API on (not possible with --target)")
    sizes = sizes or (QUICK if ctx.options.quick else STANDARD)
    creds = ctx.secrets.credentials
    tmp = tempfile.mkdtemp(prefix="kmsgate-bench-s3-")
    try:
        with ctx.kmsgate(ServerOptions(s3=True)):
            url = ctx.s3_url()
            try:
                create_bucket(url, BUCKET, creds)
            except S3SetupError as exc:
                raise Skip(f"S3 set-up failed: {exc}") from exc
            large, small = sizes.large_bytes, sizes.small_bytes
            large_label = size_label(large)

            def sign_large_puts() -> tuple[RequestTemplate, ...]:
                return tuple(s3_request(url, "PUT", f"/{BUCKET}/large-{i}", creds, body_size=large,
                                        unsigned_payload=True) for i in range(LARGE_OBJECTS))

            def sign_large_get() -> tuple[RequestTemplate, ...]:
                return (s3_request(url, "GET", f"/{BUCKET}/large-get", creds),)

            ctx.alternated(
                partial(_large_figure, ctx, f"s3/PUT/{large}", f"S3 PutObject {large_label}", url, sign_large_puts,
                        large),
                partial(_echo, ctx, large))
            put = s3_request(url, "PUT", f"/{BUCKET}/large-get", creds, body_size=large, unsigned_payload=True)
            # http.client sends the same Host itself
            object_put(url, put.path, large, tuple(h for h in put.headers if h[0].lower() != "host"))
            ctx.alternated(
                partial(_large_figure, ctx, f"s3/GET/{large}", f"S3 GetObject {large_label}", url, sign_large_get,
                        large),
                partial(_echo, ctx, large))

            small_label = f"S3 PutObject {size_label(small)}"
            body = synthetic_bytes(small)
            path = f"/{BUCKET}/small"  # the same key for every request
            sign_small = partial(s3_request, url, "PUT", path, creds, body=body)
            send_checked(url, sign_small())
            ceiling_url = ctx.http_ceiling().url
            if wrk_path() is None:
                for _ in range(2 * ctx.options.target_rounds):
                    ctx.tick(None)
                ctx.skip(f"wrk {small_label}", "wrk not installed (apt-get install -y wrk)")
            else:
                ctx.alternated(
                    partial(_small_wrk, ctx, f"s3/PUT/{small}/wrk", "kmsgate", url, sign_small, small_label),
                    partial(_small_wrk, ctx, f"s3/ceiling/PUT/{small}/wrk", "http-ceiling", ceiling_url,
                            sign_small, small_label))
                _floor(ctx, ceiling_url, path, body, sign_small, small_label)
            ctx.alternated(
                partial(_small_python, ctx, f"s3/PUT/{small}", "kmsgate", url, sign_small, small_label),
                partial(_small_python, ctx, f"s3/ceiling/PUT/{small}", "http-ceiling", ceiling_url, sign_small,
                        small_label))
            ctx.add(_multipart(ctx, url, sizes, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
