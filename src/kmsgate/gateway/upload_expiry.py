"""Abandoned multipart uploads, aborted in the background once older than ``--multipart-max-age``.

Each worker runs its own sweep (``expire_abandoned_uploads``): aborting an upload is idempotent
in every storage backend, so two workers sweeping at once only repeat work, and there is no
process-group leader to elect or to lose. A sweep is ``MultipartService.expire``; it runs
every ``sweep_interval(max_age)`` seconds, a quarter of the age (so an upload is removed at
most 1.25 times its age after it started), at least ``MIN_SWEEP_SECONDS`` and at most
``MAX_SWEEP_SECONDS`` apart. A failing sweep is logged and retried at the next interval.
"""

from __future__ import annotations

import asyncio
import logging

from kmsgate.gateway.multipart_service import MultipartService

log = logging.getLogger("kmsgate.gateway")

MIN_SWEEP_SECONDS = 1.0
MAX_SWEEP_SECONDS = 3600.0


def sweep_interval(max_age_seconds: float) -> float:
    """Seconds between sweeps for uploads that may live ``max_age_seconds``."""
    return min(max(max_age_seconds / 4, MIN_SWEEP_SECONDS), MAX_SWEEP_SECONDS)


async def expire_abandoned_uploads(multipart: MultipartService, max_age_seconds: float) -> None:
    """Abort uploads older than ``max_age_seconds``, every ``sweep_interval``, until cancelled."""
    interval = sweep_interval(max_age_seconds)
    while True:
        try:
            expired = await multipart.expire(max_age_seconds)
        except Exception:  # a storage outage must not end the sweeps; the next one retries
            log.exception("expiring abandoned multipart uploads failed")
        else:
            if expired:
                log.info("expired abandoned multipart uploads", extra={"uploads": expired})
        await asyncio.sleep(interval)
