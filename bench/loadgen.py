"""HTTP load generator: closed loop at fixed concurrency or open loop at a target rate.

Runs in its own process(es) on uvloop with an aiohttp client. The parent side
(``run_load``) starts ``processes`` children with ``python -m bench.loadgen``, sends each
its share of the plan as one JSON line on stdin, waits until every child has its
client ready, then writes ``go`` so that all children start together. Each child answers
with one JSON line on stdout: counts, bytes, CPU time and its HDR histogram (encoded).

Measurement rules:

* closed loop: ``concurrency`` workers each send a request, wait for the reply, send
  the next. Latency is reply-complete minus send time.
* open loop: request ``i`` is due at ``start + i / rate``. Latency is measured from that
  intended send time, so a slow server that delays later sends is charged for the
  delay (no coordinated omission). ``concurrency`` caps requests in flight; a due request
  that waits for a slot still has its latency measured from its intended time.
* warm-up: requests that start (or are due) before ``start + warmup_s`` are sent but not
  recorded. The measured window ends when the last recorded request completes.
* bounds: no request starts after ``start + warmup_s + duration_s`` or after
  ``max_requests`` measured requests; each request has a total timeout; the parent
  kills a child (by PID) that overruns.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mmap
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from bench.histogram import LatencyHistogram, LatencySummary, merge_encoded

STREAM_THRESHOLD_BYTES = 1024 * 1024  # bodies larger than this are streamed, not held
SYNTHETIC_BLOCK_BYTES = 256 * 1024
READ_ALL_LIMIT_BYTES = 1024 * 1024  # replies at most this large are read whole and checked
MAX_ERROR_KINDS = 20
CHILD_GRACE_S = 15.0


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """One request shape. ``body_size`` > 0 with an empty ``body`` sends synthetic bytes."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    body_size: int = 0
    body_file: str = ""  # streamed from this file (``body_size`` bytes of it) when set

    @property
    def payload_bytes(self) -> int:
        return len(self.body) if self.body else self.body_size

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": [list(h) for h in self.headers],
            "body": base64.b64encode(self.body).decode("ascii"),
            "body_size": self.body_size,
            "body_file": self.body_file,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RequestTemplate:
        return cls(
            method=obj["method"],
            path=obj["path"],
            headers=tuple((str(k), str(v)) for k, v in obj["headers"]),
            body=base64.b64decode(obj["body"]),
            body_size=int(obj["body_size"]),
            body_file=str(obj.get("body_file", "")),
        )


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What to send, how, and for how long. ``target`` is a base URL such as ``http://127.0.0.1:8080``."""

    target: str
    requests: tuple[RequestTemplate, ...]
    mode: Literal["closed", "open"] = "closed"
    concurrency: int = 1
    rate: float = 0.0
    duration_s: float = 2.0
    warmup_s: float = 0.5
    max_requests: int = 0  # measured requests; 0 = bounded by time only
    processes: int = 1
    expect_status: tuple[int, ...] = (200,)
    expect_contains: bytes = b""
    timeout_s: float = 60.0
    keepalive: bool = True

    def to_json(self) -> dict[str, Any]:
        obj = {k: getattr(self, k) for k in self.__dataclass_fields__}
        obj["requests"] = [r.to_json() for r in self.requests]
        obj["expect_status"] = list(self.expect_status)
        obj["expect_contains"] = base64.b64encode(self.expect_contains).decode("ascii")
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LoadPlan:
        obj = dict(obj)
        obj["requests"] = tuple(RequestTemplate.from_json(r) for r in obj["requests"])
        obj["expect_status"] = tuple(obj["expect_status"])
        obj["expect_contains"] = base64.b64decode(obj["expect_contains"])
        return cls(**obj)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Totals of one run over its measured window (merged across processes)."""

    mode: str
    concurrency: int
    processes: int
    requests: int
    errors: int
    error_kinds: dict[str, int]
    bytes_sent: int
    bytes_received: int
    elapsed_s: float
    client_cpu_s: float
    latency: LatencySummary
    histogram: str = field(repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        """Payload megabytes (10**6) per second: the larger of the two directions."""
        moved = max(self.bytes_sent, self.bytes_received)
        return moved / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def client_cores(self) -> float:
        """CPU cores the load generator itself used during the run."""
        return self.client_cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        obj = asdict(self)
        obj.update(rps=self.rps, mb_per_s=self.mb_per_s, client_cores=self.client_cores)
        return obj


class LoadError(RuntimeError):
    """A load-generator process failed to start, report or finish."""


# --------------------------------------------------------------------------- child side

_BLOCK = os.urandom(SYNTHETIC_BLOCK_BYTES)


def synthetic_bytes(size: int) -> bytes:
    """``size`` bytes of the process's random block, repeated."""
    reps, rest = divmod(size, SYNTHETIC_BLOCK_BYTES)
    return _BLOCK * reps + _BLOCK[:rest]


_MAPPED: dict[str, mmap.mmap] = {}


def _mapped(path: str) -> mmap.mmap:
    """The file mapped read-only, once per process (kept open: slices of it may still be queued
    in the transport when a request ends)."""
    mapped = _MAPPED.get(path)
    if mapped is None:
        with open(path, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        mapped.madvise(mmap.MADV_SEQUENTIAL)
        _MAPPED[path] = mapped
    return mapped


async def _file_stream(path: str, size: int) -> AsyncIterator[memoryview]:
    """``size`` bytes of the file as slices of its mapping: no copy and no allocation per block,
    so the client sends a file as cheaply as synthetic bytes."""
    view = memoryview(_mapped(path))
    end = min(size, len(view))
    for start in range(0, end, SYNTHETIC_BLOCK_BYTES):
        yield view[start : min(start + SYNTHETIC_BLOCK_BYTES, end)]


async def _synthetic_stream(size: int) -> AsyncIterator[bytes]:
    view = memoryview(_BLOCK)
    left = size
    while left > 0:
        n = min(left, SYNTHETIC_BLOCK_BYTES)
        yield bytes(view[:n]) if n < SYNTHETIC_BLOCK_BYTES else _BLOCK
        left -= n


class _Run:
    """State of one child's run; all of it lives on one event loop."""

    def __init__(self, plan: LoadPlan) -> None:
        import aiohttp

        self.plan = plan
        self.hist = LatencyHistogram()
        self.errors: Counter[str] = Counter()
        self.ok = 0
        self.sent = 0
        self.received = 0
        self.issued = 0
        self.last_done = 0.0
        self.bodies: list[bytes | None] = []
        self.headers: list[dict[str, str]] = []
        for t in plan.requests:
            hdrs = dict(t.headers)
            if t.body:
                self.bodies.append(t.body)
            elif t.body_file and t.body_size > 0:
                self.bodies.append(None)  # streamed from the file's mapping
            elif 0 < t.body_size <= STREAM_THRESHOLD_BYTES and not t.body_file:
                self.bodies.append(synthetic_bytes(t.body_size))
            else:
                self.bodies.append(None)
            if t.body_size > 0 and not t.body:
                hdrs.setdefault("Content-Length", str(t.body_size))
            self.headers.append(hdrs)
        self.urls = [plan.target.rstrip("/") + t.path for t in plan.requests]
        connector = aiohttp.TCPConnector(
            limit=max(plan.concurrency, 1), force_close=not plan.keepalive, ttl_dns_cache=None
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=plan.timeout_s),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def one(self, index: int) -> tuple[bool, int, int, str]:
        """Send request ``index`` (cycling the templates); return ok, sent, received, error."""
        plan = self.plan
        i = index % len(plan.requests)
        tmpl = plan.requests[i]
        body = self.bodies[i]
        data: Any = body
        if body is None and tmpl.body_size:
            data = (_file_stream(tmpl.body_file, tmpl.body_size) if tmpl.body_file
                    else _synthetic_stream(tmpl.body_size))
        try:
            async with self.session.request(
                tmpl.method, self.urls[i], headers=self.headers[i], data=data
            ) as resp:
                length = resp.content_length
                if length is not None and length <= READ_ALL_LIMIT_BYTES:
                    payload = await resp.read()
                    got = len(payload)
                    if plan.expect_contains and plan.expect_contains not in payload:
                        return False, tmpl.payload_bytes, got, f"{resp.status} unexpected body"
                else:
                    got = 0
                    async for chunk in resp.content.iter_any():
                        got += len(chunk)
                if resp.status not in plan.expect_status:
                    return False, tmpl.payload_bytes, got, f"HTTP {resp.status}"
                return True, tmpl.payload_bytes, got, ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure of one request is counted, the run goes on
            return False, 0, 0, type(exc).__name__

    def account(self, ok: bool, sent: int, received: int, error: str, latency_s: float) -> None:
        if ok:
            self.ok += 1
            self.sent += sent
            self.received += received
            self.hist.record_seconds(latency_s)
        elif len(self.errors) < MAX_ERROR_KINDS or error in self.errors:
            self.errors[error] += 1
        else:
            self.errors["other"] += 1

    def take_ticket(self) -> bool:
        """One more measured request allowed? (count bound)"""
        if self.plan.max_requests and self.issued >= self.plan.max_requests:
            return False
        self.issued += 1
        return True

    async def closed(self, warm_end: float, end: float) -> None:
        counter = iter(range(sys.maxsize))

        async def worker() -> None:
            while True:
                start = time.perf_counter()
                if start >= end:
                    return
                measured = start >= warm_end
                if measured and not self.take_ticket():
                    return
                ok, sent, rcvd, err = await self.one(next(counter))
                done = time.perf_counter()
                if measured:
                    self.account(ok, sent, rcvd, err, done - start)
                    self.last_done = max(self.last_done, done)

        await asyncio.gather(*(worker() for _ in range(self.plan.concurrency)))

    async def open(self, start: float, warm_end: float, end: float, phase: float) -> None:
        plan = self.plan
        interval = 1.0 / plan.rate
        slots = asyncio.Semaphore(plan.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def fire(index: int, intended: float, measured: bool) -> None:
            async with slots:
                ok, sent, rcvd, err = await self.one(index)
            done = time.perf_counter()
            if measured:
                self.account(ok, sent, rcvd, err, done - intended)
                self.last_done = max(self.last_done, done)

        index = 0
        while True:
            intended = start + phase + index * interval
            if intended >= end:
                break
            measured = intended >= warm_end
            if measured and not self.take_ticket():
                break
            now = time.perf_counter()
            if intended > now:
                await asyncio.sleep(intended - now)
            task = asyncio.create_task(fire(index, intended, measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
            if index % 64 == 0:
                await asyncio.sleep(0)  # let replies in while catching up on a backlog
        if tasks:
            await asyncio.gather(*tasks)

    async def run(self, phase: float) -> dict[str, Any]:
        plan = self.plan
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        warm_end = start + plan.warmup_s
        end = warm_end + plan.duration_s
        try:
            if plan.mode == "open":
                await self.open(start, warm_end, end, phase)
            else:
                await self.closed(warm_end, end)
        finally:
            await self.session.close()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        finished = time.perf_counter()
        last = self.last_done or finished
        elapsed = max(last - warm_end, 1e-9) if self.ok else max(finished - warm_end, 1e-9)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        # CPU is charged to the measured window in proportion to its share of the run.
        cpu_window = cpu * min(1.0, elapsed / max(finished - start, 1e-9))
        return {
            "requests": self.ok,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "bytes_sent": self.sent,
            "bytes_received": self.received,
            "elapsed_s": elapsed,
            "client_cpu_s": cpu_window,
            "histogram": self.hist.encode(),
        }


def child_main() -> None:
    """Entry of one load-generator process: plan line in, ``ready``, ``go`` line, result line out."""
    import uvloop

    line = sys.stdin.readline()
    spec = json.loads(line)
    plan = LoadPlan.from_json(spec["plan"])
    phase = float(spec.get("phase", 0.0))

    async def main() -> dict[str, Any]:
        run = _Run(plan)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        go = await loop.run_in_executor(None, sys.stdin.readline)
        if go.strip() != "go":
            await run.session.close()
            raise SystemExit(2)
        return await run.run(phase)

    result = uvloop.run(main())
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- parent side


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def child_plans(plan: LoadPlan) -> list[tuple[LoadPlan, float]]:
    """Divide a plan among its processes: concurrency, rate and request count; open-loop phases."""
    n = max(plan.processes, 1)
    conc = _split(max(plan.concurrency, n), n)
    counts = _split(plan.max_requests, n) if plan.max_requests else [0] * n
    if plan.max_requests and plan.max_requests < n:
        n = plan.max_requests
        conc, counts = conc[:n], [1] * n
    rate = plan.rate / n if plan.rate else 0.0
    out = []
    for i in range(n):
        phase = (i / plan.rate) if plan.rate else 0.0
        out.append((replace(plan, concurrency=conc[i], rate=rate, max_requests=counts[i], processes=1), phase))
    return out


def run_load(plan: LoadPlan, python: str = sys.executable) -> LoadResult:
    """Run ``plan`` in ``plan.processes`` child processes and merge their results."""
    if not plan.requests:
        raise ValueError("a load plan needs at least one request template")
    if plan.mode == "open" and plan.rate <= 0:
        raise ValueError("an open-loop plan needs a positive rate")
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = repo_root + os.pathsep + env.get("PYTHONPATH", "")
    parts = child_plans(plan)
    procs: list[subprocess.Popen[str]] = []
    try:
        for sub, phase in parts:
            proc = subprocess.Popen(
                [python, "-m", "bench.loadgen"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=repo_root,
            )
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"plan": sub.to_json(), "phase": phase}) + "\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise LoadError(f"load generator {proc.pid} did not start")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        deadline = time.monotonic() + plan.warmup_s + plan.duration_s + plan.timeout_s + CHILD_GRACE_S
        results = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired as exc:
                raise LoadError(f"load generator {proc.pid} overran its bound") from exc
            if proc.returncode != 0 or not out.strip():
                raise LoadError(f"load generator {proc.pid} exited with {proc.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return merge_results(plan, [sub.concurrency for sub, _ in parts], results)


def merge_results(plan: LoadPlan, concurrency: list[int], results: list[dict[str, Any]]) -> LoadResult:
    """Merge child results: counts add; the window is the longest child window."""
    hist = merge_encoded([r["histogram"] for r in results])
    kinds: Counter[str] = Counter()
    for r in results:
        kinds.update(r["error_kinds"])
    return LoadResult(
        mode=plan.mode,
        concurrency=sum(concurrency),
        processes=len(results),
        requests=sum(r["requests"] for r in results),
        errors=sum(r["errors"] for r in results),
        error_kinds=dict(kinds),
        bytes_sent=sum(r["bytes_sent"] for r in results),
        bytes_received=sum(r["bytes_received"] for r in results),
        elapsed_s=max(r["elapsed_s"] for r in results),
        client_cpu_s=sum(r["client_cpu_s"] for r in results),
        latency=hist.summary(),
        histogram=hist.encode(),
    )


if __name__ == "__main__":
    child_main()
