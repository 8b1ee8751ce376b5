"""The audit log: one JSON line per KMS request, allowed or denied, appended to a file.

Line format (UTF-8 JSON object, keys in this order, then ``\\n``; absent values are ``null``)::

    {"time": "2026-01-31T12:00:00.123Z",      request time, UTC, milliseconds
     "request_id": "…",                        the id returned in x-amzn-RequestId
     "operation": "Decrypt",                   KMS operation (from X-Amz-Target)
     "outcome": "success" | "denied" | "error",
     "error_code": "AccessDeniedException",    AWS error code when not a success
     "principal_arn": "arn:aws:iam::…",        authenticated caller (null if unauthenticated)
     "access_key_id": "AKIA…",                 credential named by the request (not a secret)
     "source_ip": "127.0.0.1",
     "key_arn": "arn:aws:kms:…:key/…",
     "encryption_context": {"k": "v"},         as AWS CloudTrail logs it; never secret by contract
     "authorized_by": "root" | "policy" | "grant" | "identity",
     "grant_id": "…"}                          the grant that allowed the request, if one did

There is no field for plaintext, data keys, key material, ciphertext, signatures, secrets or
tokens, so none can be written. Every string is truncated to ``MAX_FIELD_CHARS`` and the context to
``MAX_CONTEXT_PAIRS`` pairs: denied requests are logged before their input is validated, and a
caller must not be able to write unbounded lines. JSON escaping keeps each record on one line.
Lines are serialised with orjson (UTF-8, control characters escaped, no other escaping), on the
event loop when the record is queued; the writer thread only joins, writes and syncs bytes.

Durability (``fsync``):

* ``"batch"`` (default) — group commit. Records are queued; one writer task appends everything
  queued while the previous write was in flight, then ``fsync``\\s, then wakes the requests
  awaiting ``write``. A request that awaited ``write`` before answering is on disk even after a
  power loss. Records passed to ``record`` (not awaited) may be lost if the process or machine
  dies before their batch is written.
* ``"none"`` — batches are written without ``fsync``: a process crash loses only records not yet
  written; a machine crash may lose what the OS had not flushed.

Batching: a batch holding an awaited record is written at once. A batch of queued records only
lingers up to ``LINGER_SECONDS`` (or until ``MAX_LINGER_RECORDS`` are queued) so that one write and
one ``fsync`` carry many requests: under light load each request would otherwise pay a thread
hand-off, a write and an ``fsync`` of its own, which costs more CPU than the request itself.

A crash can leave a torn last line. Readers skip a final line without ``\\n``; on reopening, the
writer first ends such a line so the next record starts on a line of its own. The file is created
with mode 0600 and only appended to; rotation is left to the operator (copy-truncate is safe with
O_APPEND).

A failed write (disk full…) fails closed but not for good: the callers awaiting that batch get
``KmsInternalError``, and so does every new record while the log is not ``writable`` (the KMS
refuses requests rather than serve them unaudited). The lines of the failed batch are kept and the
writer retries them, after ``RETRY_SECONDS`` and then twice as long each time up to
``MAX_RETRY_SECONDS``, until a write succeeds; then the log is writable again. A line the failure
cut in two is ended with ``\\n`` and written again whole, so a reader may find one fragment line
before it (as after a crash). ``failed_writes`` counts failed attempts for the metrics, and
``writable`` is what readiness reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from kmsgate.core.errors import AccessDeniedError, KmsError, KmsInternalError

MAX_FIELD_CHARS = 2048
MAX_CONTEXT_PAIRS = 64
AUDIT_FILE_NAME = "audit.log"
FSYNC_POLICIES = ("batch", "none")
LINGER_SECONDS = 0.01  # longest wait for more queued records before a batch is written
MAX_LINGER_RECORDS = 1024  # a batch this large is written without waiting out the linger
RETRY_SECONDS = 0.1  # first wait before a failed batch is written again
MAX_RETRY_SECONDS = 5.0  # longest wait between attempts while the log cannot be written

log = logging.getLogger(__name__)

# Authentication failures count as denials, like AccessDeniedException.
DENIAL_CODES = frozenset(
    {
        AccessDeniedError.code, "UnrecognizedClientException", "InvalidSignatureException",
        "IncompleteSignatureException", "MissingAuthenticationTokenException",
    }
)


def _cap(value: str | None) -> str | None:
    if value is None or len(value) <= MAX_FIELD_CHARS:
        return value
    return value[:MAX_FIELD_CHARS] + "…"


class _SecondStamp:
    """``2026-01-31T12:00:00.`` for a whole second, formatted once per second."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = (-1, "")  # one tuple, replaced whole: safe to read from any thread

    def format(self, moment: float) -> str:
        second = int(moment // 1)
        micros = round((moment - second) * 1_000_000)  # rounded as datetime.fromtimestamp rounds
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        last_second, text = self._last
        if second != last_second:
            text = datetime.datetime.fromtimestamp(second, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
            self._last = (second, text)
        return f"{text}{micros // 1000:03d}Z"


_STAMP = _SecondStamp()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One request's audit entry. ``time`` is seconds since the epoch."""

    time: float
    request_id: str
    operation: str
    outcome: str
    error_code: str | None = None
    principal_arn: str | None = None
    access_key_id: str | None = None
    source_ip: str | None = None
    key_arn: str | None = None
    encryption_context: Mapping[str, str] | None = None
    authorized_by: str | None = None
    grant_id: str | None = None

    def to_line(self) -> bytes:
        return audit_line(
            self.time, self.request_id, self.operation, self.outcome, self.error_code, self.principal_arn,
            self.access_key_id, self.source_ip, self.key_arn, self.encryption_context, self.authorized_by,
            self.grant_id,
        )


def audit_line(
    time: float,
    request_id: str,
    operation: str,
    outcome: str,
    error_code: str | None = None,
    principal_arn: str | None = None,
    access_key_id: str | None = None,
    source_ip: str | None = None,
    key_arn: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    authorized_by: str | None = None,
    grant_id: str | None = None,
) -> bytes:
    """One line in the format above: ``AuditRecord(...).to_line()`` without building the record."""
    context = None
    if encryption_context is not None:
        pairs = list(encryption_context.items())[:MAX_CONTEXT_PAIRS]
        context = {_cap(str(k)): _cap(str(v)) for k, v in pairs}
    fields = {
        "time": _STAMP.format(time),
        "request_id": _cap(request_id),
        "operation": _cap(operation),
        "outcome": outcome,
        "error_code": _cap(error_code),
        "principal_arn": _cap(principal_arn),
        "access_key_id": _cap(access_key_id),
        "source_ip": _cap(source_ip),
        "key_arn": _cap(key_arn),
        "encryption_context": context,
        "authorized_by": _cap(authorized_by),
        "grant_id": _cap(grant_id),
    }
    return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)


def outcome_of_code(error_code: str | None) -> str:
    """``success``, ``denied`` (authorization or authentication failure) or ``error``."""
    if error_code is None:
        return "success"
    return "denied" if error_code in DENIAL_CODES else "error"


def outcome_of(error: BaseException | None) -> tuple[str, str | None]:
    """(outcome, error_code) for a request that ended with ``error`` (``None``: success)."""
    if error is None:
        return "success", None
    code = error.code if isinstance(error, KmsError) else KmsInternalError.code
    return outcome_of_code(code), code


class _WriteFailed(Exception):
    """A batch write failed; ``remaining`` is what must still be written (see ``_unwritten_lines``)."""

    def __init__(self, remaining: bytes) -> None:
        super().__init__("audit write failed")
        self.remaining = remaining


def _unwritten_lines(data: bytes, written: int) -> bytes:
    """What to write again after the first ``written`` bytes of ``data`` reached the file: the rest,
    or, when the failure cut a line, ``\\n`` to end the fragment and that whole line onwards."""
    if written <= 0:
        return data
    if written >= len(data):
        return b""
    start = data.rfind(b"\n", 0, written) + 1
    if start == written:
        return data[written:]
    return b"\n" + data[start:]


class AuditLog:
    """Append-only JSON-lines audit file with group-committed writes off the event loop.

    Use inside a running loop: ``await start()``, then ``await write(record)`` (durable before
    it returns, per the fsync policy) or ``record(record)`` (queued), and ``await close()``.
    ``echo`` receives each line too (e.g. ``sys.stdout.buffer.write``), from the writer thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync: str = "batch",
        echo: Callable[[bytes], object] | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}")
        self._path = path
        self._fsync = fsync
        self._echo = echo
        self._fd: int | None = None
        self._pending: list[tuple[bytes, asyncio.Future[None] | None]] = []
        self._wakeup = asyncio.Event()
        self._urgent = asyncio.Event()  # set when a batch must not linger (awaited record, size, close)
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._unwritten = b""  # what a failed write left to write again, ahead of anything queued
        self._failed_writes = 0
        self._retry_seconds = RETRY_SECONDS
        self._closing = False

    @property
    def path(self) -> Path:
        return self._path

    @property
    def writable(self) -> bool:
        """False from a failed write until a retry succeeds; records are refused meanwhile."""
        return self._failure is None

    @property
    def failed_writes(self) -> int:
        """Write attempts that failed since the log was opened."""
        return self._failed_writes

    async def start(self) -> None:
        self._fd = await asyncio.to_thread(self._open)
        self._task = asyncio.create_task(self._run(), name="audit-log-writer")

    def _open(self) -> int:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        size = os.fstat(fd).st_size
        if size:
            with open(self._path, "rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    os.write(fd, b"\n")
        return fd

    def record(self, record: AuditRecord) -> None:
        """Queue ``record`` without waiting for it to be written."""
        self._enqueue(record.to_line(), None)

    def record_line(self, line: bytes) -> None:
        """Queue a line made by ``audit_line`` (the same as ``record`` of its record, minus the record)."""
        self._enqueue(line, None)

    async def write(self, record: AuditRecord) -> None:
        """Queue ``record`` and return once its batch is written (and fsync'd under ``batch``)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(record.to_line(), future)
        await future

    def _enqueue(self, line: bytes, future: asyncio.Future[None] | None) -> None:
        if self._task is None or self._closing:
            raise KmsInternalError("The audit log is not open.")
        if self._failure is not None:
            raise KmsInternalError("The audit log cannot be written.")
        self._pending.append((line, future))
        self._wakeup.set()
        if future is not None or len(self._pending) >= MAX_LINGER_RECORDS:
            self._urgent.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LINGER_SECONDS):
                        await self._urgent.wait()
            self._wakeup.clear()
            self._urgent.clear()
            await self._flush()
            if self._failure is not None:
                if self._closing:  # the last attempt failed too: what is left cannot be written
                    log.error("audit log closed with unwritten lines", extra={"bytes": len(self._unwritten)})
                    return
                with contextlib.suppress(TimeoutError):  # close() cuts the wait short
                    async with asyncio.timeout(self._retry_seconds):
                        await self._urgent.wait()
                self._retry_seconds = min(self._retry_seconds * 2, MAX_RETRY_SECONDS)
                self._wakeup.set()
                continue
            if self._closing and not self._pending:
                return

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch and self._failure is None:
            return
        data = self._unwritten + b"".join(line for line, _ in batch)
        try:
            await asyncio.to_thread(self._write_all, data)
        except _WriteFailed as failed:
            self._unwritten = failed.remaining
            self._failed_writes += 1
            if self._failure is None:
                log.error("audit log write failed; refusing KMS requests and retrying",
                          extra={"error": str(failed.__cause__)})
            self._failure = failed.__cause__ or failed
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_exception(KmsInternalError("The audit log cannot be written."))
            return
        self._unwritten = b""
        if self._failure is not None:
            log.warning("audit log writable again", extra={"failed_writes": self._failed_writes})
            self._failure = None
            self._retry_seconds = RETRY_SECONDS
        for _, future in batch:
            if future is not None and not future.done():
                future.set_result(None)

    def _write_all(self, data: bytes) -> None:
        """Append ``data`` (and fsync under ``batch``); ``_WriteFailed`` says what is left to write."""
        written = 0
        try:
            if self._fd is None:
                raise OSError("audit log is closed")
            view = memoryview(data)
            while written < len(data):
                written += os.write(self._fd, view[written:])
            if self._fsync == "batch":
                os.fsync(self._fd)
        except OSError as exc:
            raise _WriteFailed(_unwritten_lines(data, written)) from exc
        if self._echo is not None:
            self._echo(data)

    async def close(self) -> None:
        """Write everything queued, then close the file."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        self._urgent.set()
        await self._task
        self._task = None
        if self._fd is not None:
            fd, self._fd = self._fd, None
            await asyncio.to_thread(os.close, fd)
