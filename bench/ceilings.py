"""Ceilings: what the machine can do without kmsgate, measured in the same run.

* HTTP ceiling: a bare aiohttp + uvloop server (``python -m bench.ceilings``) with
  handlers shaped like kmsgate's routes:

  - ``PUT|POST /sink``           read the body, answer ``{"ok":true}`` (gateway PUT shape)
  - ``GET /source/<n>``          answer ``n`` bytes (gateway GET shape)
  - ``PUT|POST /echo``           stream the body back as it arrives (encrypt/decrypt shape)
  - ``POST /json?reply_bytes=n`` parse the JSON body, answer a JSON object of exactly
    ``n`` bytes (KMS shape; ``n`` is set to the size of the real KMS reply)
  - ``PUT /<bucket>/<key>``      read the body, answer 200 with its quoted MD5 as ``ETag`` and
    no body (S3 PutObject shape, on the path an S3 client sends; the signature is not checked)
  - ``POST /``                   a floor rather than a ceiling: ``/json`` plus kmsgate's own SigV4
    verification (``kmsgate.auth.sigv4``, service ``kms``) of the request, against the root
    credentials in ``KMSGATE_ROOT_ACCESS_KEY_ID`` / ``KMSGATE_ROOT_SECRET_ACCESS_KEY``; the
    reply's size is the ``X-Bench-Reply-Bytes`` header (the query is signed). 403 with
    ``{"__type": code}`` when verification fails, 404 without credentials. What a signed KMS
    request costs before any KMS work: a KMS ratio can reach no higher than this one.
  - ``PUT /<bucket>/<key>`` with ``X-Bench-Verify: s3``: the same floor for S3 PutObject, the
    bare S3 handler plus kmsgate's verification (service ``s3``) of the signature and of the
    body's signed SHA-256.

  ``--workers N`` shares one listening socket among N processes.
* Crypto ceiling: pyca ``AESGCM`` on the same payload sizes in-process, and
  ``openssl speed -evp aes-256-gcm`` parsed from its table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.procs import ServerProcess

MAX_SOURCE_BYTES = 2 * 1024**3
MAX_REPLY_BYTES = 16 * 1024 * 1024
SOURCE_BLOCK_BYTES = 256 * 1024
CHUNK_BYTES = 256 * 1024


# --------------------------------------------------------------------------- HTTP ceiling server


def make_app() -> "web.Application":  # type: ignore[name-defined]  # noqa: F821
    import orjson
    from aiohttp import web

    from kmsgate.core.errors import KmsError

    block = os.urandom(SOURCE_BLOCK_BYTES)

    verifiers = _sigv4_verifiers()

    def refusal(request: web.Request, service: str, body: bytes) -> web.Response | None:
        """The answer to a request that fails kmsgate's SigV4 verification for ``service``, else ``None``."""
        verify = verifiers.get(service)
        if verify is None:
            raise web.HTTPNotFound(text="no credentials to verify with")
        try:
            verify(request.method, request.raw_path.partition("?")[0], request.query_string, request.headers,
                   body, source_ip=request.remote)
        except KmsError as exc:
            return web.Response(status=403, body=orjson.dumps({"__type": exc.code}),
                                content_type="application/x-amz-json-1.1")
        return None

    async def sink(request: web.Request) -> web.Response:
        async for _ in request.content.iter_chunked(CHUNK_BYTES):
            pass
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    async def source(request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        if size > MAX_SOURCE_BYTES:
            raise web.HTTPBadRequest(text="size too large")
        resp = web.StreamResponse()
        resp.content_type = "application/octet-stream"
        resp.content_length = size
        await resp.prepare(request)
        left = size
        while left > 0:
            n = min(left, SOURCE_BLOCK_BYTES)
            await resp.write(block if n == SOURCE_BLOCK_BYTES else block[:n])
            left -= n
        await resp.write_eof()
        return resp

    async def echo(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "application/octet-stream"
        if request.content_length is not None:
            resp.content_length = request.content_length
        await resp.prepare(request)
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def json_reply(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        size = min(int(request.query.get("reply_bytes", "64")), MAX_REPLY_BYTES)
        return web.Response(body=json_of_size(size), content_type="application/x-amz-json-1.1")

    async def s3_put_object(request: web.Request) -> web.Response:
        if request.headers.get("X-Bench-Verify") == "s3":
            body = await request.read()
            refused = refusal(request, "s3", body)
            if refused is not None:
                return refused
            etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
            return web.Response(status=200, headers={"ETag": f'"{etag}"'})
        md5 = hashlib.md5(usedforsecurity=False)
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            md5.update(chunk)
        return web.Response(status=200, headers={"ETag": f'"{md5.hexdigest()}"'})

    async def json_sigv4(request: web.Request) -> web.Response:
        body = await request.read()
        refused = refusal(request, "kms", body)
        if refused is not None:
            return refused
        orjson.loads(body)
        size = min(int(request.headers.get("X-Bench-Reply-Bytes", "64")), MAX_REPLY_BYTES)
        return web.Response(body=json_of_size(size), content_type="application/x-amz-json-1.1")

    app = web.Application(client_max_size=MAX_REPLY_BYTES)
    app.router.add_post("/", json_sigv4)
    app.router.add_route("*", "/sink", sink)
    app.router.add_get(r"/source/{size:\d+}", source)
    app.router.add_route("*", "/echo", echo)
    app.router.add_post("/json", json_reply)
    app.router.add_put("/{bucket}/{key:.+}", s3_put_object)
    return app


_FLOOR_CREDENTIALS = ("KMSGATE_ROOT_ACCESS_KEY_ID", "KMSGATE_ROOT_SECRET_ACCESS_KEY")


def _sigv4_verifiers() -> dict[str, Callable[..., object]]:
    """kmsgate's SigV4 verifiers (services ``kms`` and ``s3``) over the root credentials in the
    environment; none without them."""
    access_key_id, secret = (os.environ.get(name) for name in _FLOOR_CREDENTIALS)
    if not access_key_id or not secret:
        return {}
    from bench.kmsreq import REGION
    from kmsgate.auth.identities import AccessKey, RootCredentials, build_directory
    from kmsgate.auth.sigv4 import SigV4Verifier

    directory = build_directory("111122223333", RootCredentials(AccessKey(access_key_id, secret), "env"))
    return {service: SigV4Verifier(directory, REGION, service).verify for service in ("kms", "s3")}


def json_of_size(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (at least the 11 bytes of ``{"Pad":""}``+1)."""
    overhead = len(b'{"Pad":""}')
    return b'{"Pad":"' + b"A" * max(size - overhead, 0) + b'"}'


def serve_socket(sock: socket.socket) -> None:
    import uvloop
    from aiohttp import web

    async def main() -> None:
        runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        import asyncio

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await runner.cleanup()

    uvloop.run(main())


def server_main(argv: list[str] | None = None) -> None:
    """``python -m bench.ceilings [--port P] [--workers N]``: serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.ceilings")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--fd", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fd >= 0:
        serve_socket(socket.socket(fileno=args.fd))
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sock.set_inheritable(True)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.ceilings", "--fd", str(sock.fileno())],
            pass_fds=(sock.fileno(),),
        )
        for _ in range(max(args.workers, 1) - 1)
    ]
    print(f"listening {sock.getsockname()[1]}", flush=True)
    try:
        serve_socket(sock)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()


def start_http_ceiling(port: int, workers: int = 1, env_extra: dict[str, str] | None = None) -> ServerProcess:
    """Start the bare server on 127.0.0.1:``port`` and wait until it listens. Its ``POST /``
    verifies with the root credentials in ``env_extra`` only, never with ones inherited."""
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {name: value for name, value in os.environ.items() if name not in _FLOOR_CREDENTIALS}
    env.update(env_extra or {})
    env["PYTHONPATH"] = repo_root + os.pathsep + env.get("PYTHONPATH", "")
    server = ServerProcess(
        [sys.executable, "-m", "bench.ceilings", "--port", str(port), "--workers", str(workers)],
        port=port,
        env=env,
        cwd=repo_root,
    )
    server.wait_ready()
    return server


# --------------------------------------------------------------------------- crypto ceilings


@dataclass(frozen=True, slots=True)
class CryptoRate:
    """Throughput of one cipher on one buffer size."""

    source: str
    size_bytes: int
    mb_per_s: float
    ops_per_s: float


def aesgcm_rate(size_bytes: int, seconds: float = 0.5, max_ops: int = 100_000) -> CryptoRate:
    """pyca AESGCM-256 encryption of a ``size_bytes`` buffer, repeated for about ``seconds``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    data = os.urandom(size_bytes)
    ops = 0
    start = time.perf_counter()
    elapsed = 0.0
    while ops < max_ops and (ops == 0 or elapsed < seconds):
        aead.encrypt(os.urandom(12), data, None)
        ops += 1
        elapsed = time.perf_counter() - start
    return CryptoRate("cryptography AESGCM", size_bytes, size_bytes * ops / 1e6 / elapsed, ops / elapsed)


_OPENSSL_SIZE = re.compile(r"(\d+)\s+bytes")
_OPENSSL_VALUE = re.compile(r"([\d.]+)k")


def parse_openssl_speed(text: str) -> list[CryptoRate]:
    """Parse the table of ``openssl speed -evp aes-256-gcm`` (values in 1000s of bytes/s)."""
    sizes: list[int] = []
    rates: list[CryptoRate] = []
    for line in text.splitlines():
        if line.startswith("type"):
            sizes = [int(s) for s in _OPENSSL_SIZE.findall(line)]
        elif sizes and line.lower().startswith("aes-256-gcm"):
            values = [float(v) * 1000 for v in _OPENSSL_VALUE.findall(line)]
            rates = [
                CryptoRate("openssl speed", size, value / 1e6, value / size)
                for size, value in zip(sizes, values)
            ]
    return rates


def openssl_speed(seconds: int = 1) -> tuple[list[CryptoRate], str]:
    """Run ``openssl speed -evp aes-256-gcm``; empty list and a note when it is unavailable."""
    exe = shutil.which("openssl")
    if exe is None:
        return [], "openssl not installed"
    try:
        out = subprocess.run(
            [exe, "speed", "-seconds", str(seconds), "-evp", "aes-256-gcm"],
            capture_output=True,
            text=True,
            timeout=seconds * 10 + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [], "openssl speed timed out"
    rates = parse_openssl_speed(out.stdout)
    return rates, "" if rates else "could not parse openssl speed output"


if __name__ == "__main__":
    server_main()
