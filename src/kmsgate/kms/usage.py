"""Key last usage, recorded in memory on the hot path and flushed to the key store in batches.

Every successful cryptographic operation notes ``(time, operation)`` for its key in a dict: no
lock, no I/O, no database write per request. ``drain`` hands the pending entries to the
service's periodic flush (and the one at shutdown), which writes them in one transaction that
keeps the newest use per key. A crash loses at most the uses since the last flush, so
GetKeyLastUsage may under-report by one flush interval after a ``kill -9``; with several worker
processes, a use shows in another process's answer after the next flush.
"""

from __future__ import annotations

from collections.abc import Mapping


class UsageRecorder:
    """The last use of each key since the last drain. Event-loop thread only."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, tuple[float, str]] = {}

    def note(self, key_id: str, when: float, operation: str) -> None:
        self._pending[key_id] = (when, operation)

    def peek(self, key_id: str) -> tuple[float, str] | None:
        return self._pending.get(key_id)

    def drain(self) -> dict[str, tuple[float, str]]:
        pending, self._pending = self._pending, {}
        return pending

    def restore(self, pending: Mapping[str, tuple[float, str]]) -> None:
        """Put back entries a failed flush did not write, keeping anything newer noted since."""
        for key_id, entry in pending.items():
            current = self._pending.get(key_id)
            if current is None or current[0] < entry[0]:
                self._pending[key_id] = entry


def latest(*entries: tuple[float, str] | None) -> tuple[float, str] | None:
    """The newest of several (time, operation) entries, ignoring ``None``."""
    present = [entry for entry in entries if entry is not None]
    return max(present, key=lambda entry: entry[0]) if present else None
