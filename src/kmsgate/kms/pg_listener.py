"""Following the PostgreSQL change log: LISTEN for each commit's sequence number, with a periodic check behind it.

Every write transaction of the PostgreSQL store ``NOTIFY``s ``CHANNEL`` with the change-log
sequence number it committed (``kmsgate.kms.pg_store``). A ``ChangeListener`` holds one
connection of its own in a daemon thread: it reports each notified number, and every
``FALLBACK_CHECK_SECONDS`` it also reads the last committed number, so that a notification lost
with a dropped connection delays a change by at most that long. While the database is
unreachable it retries with back-off and reports ``connected = False``; on reconnecting it reads
the last number first, catching up on everything missed.

The thread never touches the event loop: the service reads the number through the store's
``data_version``, a plain attribute read.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from kmsgate.kms import changelog
from kmsgate.kms.pg_sql import PgConnection

CHANNEL = "kmsgate_changes"
FALLBACK_CHECK_SECONDS = 0.5  # a change reaches every node within this even when a notification is lost
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.1, 5.0
log = logging.getLogger("kmsgate.kms")


class ChangeListener:
    """Calls ``on_seq`` with each change-log sequence number committed by any node (from its own thread)."""

    def __init__(self, conninfo: str, kwargs: Mapping[str, Any], on_seq: Callable[[int], None]) -> None:
        self._conninfo = conninfo
        self._kwargs = dict(kwargs)
        self._on_seq = on_seq
        self._wake_channel = f"kmsgate_wake_{uuid.uuid4().hex}"  # this listener's own, for close()
        self._stopping = threading.Event()
        self.connected = False
        self._thread = threading.Thread(target=self._run, name="kmsgate-key-store-listener", daemon=True)
        self._thread.start()

    def close(self, wake: Callable[[str], None]) -> None:
        """Stop the thread; ``wake(channel)`` sends a NOTIFY there, so the wait ends now rather than at its timeout."""
        self._stopping.set()
        try:
            wake(self._wake_channel)
        except psycopg.Error:
            pass  # the database is gone: the wait ends at its timeout instead
        self._thread.join(timeout=FALLBACK_CHECK_SECONDS + RETRY_MAX_SECONDS)

    def _run(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, **self._kwargs) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._wake_channel)))
                    self.connected, delay = True, RETRY_FIRST_SECONDS
                    self._follow(conn)
            except psycopg.Error as exc:
                if self.connected or delay == RETRY_FIRST_SECONDS:
                    log.warning("key store notifications lost; retrying", extra={"error": type(exc).__name__})
                self.connected = False
                self._stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
        self.connected = False

    def _follow(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        while not self._stopping.is_set():
            self._on_seq(_last_committed(conn))
            for notify in conn.notifies(timeout=FALLBACK_CHECK_SECONDS):
                if self._stopping.is_set():
                    return
                if notify.channel == CHANNEL and notify.payload.isdigit():
                    self._on_seq(int(notify.payload))


def _last_committed(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    return changelog.last_seq(PgConnection(conn))
