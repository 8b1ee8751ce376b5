"""Logging set-up: one JSON object per line on stderr.

A record may carry its extra fields ready-made as a ``_json_fields`` dict (the gateway's
access log does): the formatter then copies that dict instead of walking the record's
attributes; the line is the same either way.

Lines logged on an event-loop thread are gathered and written once per loop turn (one
``write`` for all the access lines of a busy turn), which keeps per-request logging cheap; a
crash can lose at most the lines of the turn in progress. Lines from other threads, or when no
loop is running, are written at once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, TextIO

import orjson

JSON_FIELDS = "_json_fields"  # record attribute: the extra fields as one dict, in line order
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        attributes = record.__dict__
        fields = attributes.get(JSON_FIELDS)
        if fields is None:
            fields = {name: value for name, value in attributes.items()
                      if name not in _STANDARD and name[0] != "_"}
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(record.created, record.levelname.lower(), record.name, record.getMessage(), fields,
                         exception)

    def line(self, created: float, level: str, logger: str, message: str, fields: dict[str, Any],
             exception: str | None = None) -> str:
        """The line of a record with these parts (``format`` of a record gives the same)."""
        entry: dict[str, Any] = {"time": self._time(created), "level": level, "logger": logger, "message": message}
        entry.update(fields)
        if exception is not None:
            entry["exception"] = exception
        return orjson.dumps(entry, default=str).decode("utf-8")


class LoopBatchingHandler(logging.Handler):
    """Writes formatted lines to ``stream``, batched per event-loop turn on loop threads."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging must never take the request down with it
            self.handleError(record)
            return
        self.emit_line(line)

    def emit_line(self, line: str) -> None:
        """Queue (or on a thread without a running loop, write) one formatted line."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write(line + "\n")
            return
        self._pending.append(line)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._pending:
            lines, self._pending = self._pending, []
            self._write("\n".join(lines) + "\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed or full: dropping a log line is better than failing a request

    def close(self) -> None:
        self.flush()
        super().close()


def configure_logging(level: str = "info") -> None:
    # The JSON lines carry none of these, so do not compute them per record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk for the calling line (the documented optimisation)
    handler = LoopBatchingHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
