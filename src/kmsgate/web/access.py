"""The access log of every front (KMS API, ``/v1``, S3 API): one JSON line per request on the
``kmsgate.gateway.access`` logger (the name logging configurations select it by).

Each line carries ``method``, ``route``, ``path`` (at most ``MAX_LOGGED_PATH_CHARS``),
``status``, ``error`` (the AWS-style code or null), ``bytes_in``, ``bytes_out``,
``duration_ms``, ``remote`` and ``principal`` (the caller's ARN or null), as extra
attributes of an INFO record whose message is ``request``; never a header value, a body
byte, a key or a credential.

When the line can only reach kmsgate's own handler (``configure_logging``'s: a
``LoopBatchingHandler`` with the ``JsonFormatter``, no filters on the way, nothing else
attached), it is formatted by that formatter and queued on that handler directly, without a
``LogRecord``: the same line for a fraction of the cost, which matters at one line per request.
Otherwise a record is made, the one ``Logger.info(..., extra=...)`` would make, built for less:
the attributes every record of this line shares (level, source location, process and thread)
are taken once per process from a record made the ordinary way, and each request copies
them and adds its time and its fields, which it also hands the JSON formatter as one
ready dict (``kmsgate.logs.JSON_FIELDS``). That record goes through ``Logger.handle``, so
the logger's level, filters, handlers and propagation apply as usual.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from kmsgate.logs import JSON_FIELDS, JsonFormatter, LoopBatchingHandler

ACCESS_LOG = logging.getLogger("kmsgate.gateway.access")
MAX_LOGGED_PATH_CHARS = 256
_TIME_FIELDS = ("created", "msecs", "relativeCreated")


class AccessLog:
    """Makes and hands over access records; one per process (see the module docstring)."""

    __slots__ = ("_logger", "_template", "_owner")

    def __init__(self, logger: logging.Logger = ACCESS_LOG) -> None:
        self._logger = logger
        self._template: dict[str, Any] | None = None
        self._owner: tuple[int, int] = (0, 0)

    def _shared(self) -> dict[str, Any]:
        """The per-process, per-thread attributes, rebuilt after a fork or on another thread."""
        owner = (os.getpid(), threading.get_ident())
        template = self._template
        if template is None or owner != self._owner:
            record = self._logger.makeRecord(self._logger.name, logging.INFO, __file__, 0, "request", (), None,
                                             "access")
            template = {k: v for k, v in vars(record).items() if k not in _TIME_FIELDS}
            self._template, self._owner = template, owner
        return template

    def record(self, *, method: str, route: str, path: str, status: int, error: str | None, bytes_in: int,
               bytes_out: int, seconds: float, remote: str | None, principal: str | None) -> logging.LogRecord:
        """The record of one request (not yet handed to the logger)."""
        now = time.time()
        record = logging.LogRecord.__new__(logging.LogRecord)
        fields = record.__dict__
        fields.update(self._shared())
        fields["created"] = now
        fields["msecs"] = int((now - int(now)) * 1000) + 0.0
        fields["relativeCreated"] = (now - logging._startTime) * 1000  # type: ignore[attr-defined]
        extra = {
            "method": method, "route": route, "path": path[:MAX_LOGGED_PATH_CHARS], "status": status,
            "error": error, "bytes_in": bytes_in, "bytes_out": bytes_out,
            "duration_ms": round(seconds * 1000, 3), "remote": remote, "principal": principal,
        }
        fields.update(extra)
        fields[JSON_FIELDS] = extra  # the formatter copies this instead of walking the record
        return record

    def log(self, *, method: str, route: str, path: str, status: int, error: str | None, bytes_in: int,
            bytes_out: int, seconds: float, remote: str | None, principal: str | None) -> None:
        """Log one request's line, if INFO is enabled for the access logger."""
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        direct = _only_json_handler(logger)
        if direct is None:
            logger.handle(self.record(method=method, route=route, path=path, status=status, error=error,
                                      bytes_in=bytes_in, bytes_out=bytes_out, seconds=seconds, remote=remote,
                                      principal=principal))
            return
        handler, formatter = direct
        fields = {
            "method": method, "route": route, "path": path[:MAX_LOGGED_PATH_CHARS], "status": status,
            "error": error, "bytes_in": bytes_in, "bytes_out": bytes_out,
            "duration_ms": round(seconds * 1000, 3), "remote": remote, "principal": principal,
        }
        handler.emit_line(formatter.line(time.time(), "info", logger.name, "request", fields))


def _only_json_handler(logger: logging.Logger) -> tuple[LoopBatchingHandler, JsonFormatter] | None:
    """The handler an INFO record of ``logger`` would reach, if it is the only one and nothing on
    the way (a filter, another handler, a handler level above INFO) would see or change the record."""
    if logger.filters or logger.disabled:
        return None
    found: logging.Handler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    if (type(found) is not LoopBatchingHandler or found.filters or found.level > logging.INFO
            or type(found.formatter) is not JsonFormatter):
        return None
    return found, found.formatter
