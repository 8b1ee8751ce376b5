"""GetKeyLastUsage: when, and by which operation, a key was last used for cryptography.

Uses are noted in memory by the cryptographic operations (``kmsgate.kms.usage``) and written to
the key store by ``flush_usage``, which the application calls on its maintenance tick and at
shutdown. An answer combines the stored use with this process's unflushed one. Where kmsgate
differs from AWS: ``KmsRequestId`` and ``CloudTrailEventId`` are not reported (the request id
is in the audit log), and ``TrackingStartDate`` is when this key store began tracking usage or
the key's creation, whichever is later.
"""

from __future__ import annotations

import asyncio

from typing import Any

from kmsgate.core.principal import Caller
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.transaction import Transaction
from kmsgate.kms.usage import latest


class UsageOperations(ServiceBase):
    async def get_key_last_usage(self, *, caller: Caller, key_id: str) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:GetKeyLastUsage", key)
        stored = await asyncio.to_thread(self._store.last_usage, key.key_id)
        last = latest(stored, self._usage.peek(key.key_id))
        usage = {} if last is None else {"timestamp": last[0], "operation": last[1]}
        return {
            "key_id": key.key_id,
            "key_last_usage": usage,
            "tracking_start_date": max(key.creation_date, await asyncio.to_thread(self._store.usage_tracking_start)),
            "key_creation_date": key.creation_date,
        }

    async def flush_usage(self) -> int:
        """Write the uses noted since the last flush in one transaction; returns how many keys."""
        pending = self._usage.drain()
        if not pending:
            return 0

        def change(tx: Transaction) -> None:
            for key_id, (used, operation) in pending.items():
                tx.record_usage(key_id, used, operation)

        try:
            await self._mutate(change)
        except BaseException:
            self._usage.restore(pending)
            raise
        return len(pending)
