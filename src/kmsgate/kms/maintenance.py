"""Work that falls due with time: scheduled deletions, automatic rotations, expiring imported material.

``run_due`` is idempotent and transactional, so every worker process may run it; the first to
commit does the work and the others find nothing left to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmsgate.kms.base import ServiceBase
from kmsgate.kms.model import KeyState
from kmsgate.kms.ops_import import expire_imported
from kmsgate.kms.ops_keys import DAY_SECONDS
from kmsgate.kms.ops_rotation import AUTOMATIC, add_material_version
from kmsgate.kms.transaction import Transaction

MAINTENANCE_INTERVAL_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    deleted: tuple[str, ...] = ()
    rotated: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()


class Maintenance(ServiceBase):
    async def _due(self, now: float) -> bool:
        for key in (await self._refresh()).keys.values():
            if key.state is KeyState.PENDING_DELETION and key.deletion_date is not None and key.deletion_date <= now:
                return True
            if (
                key.rotation_enabled
                and key.state is KeyState.ENABLED
                and key.next_rotation_date is not None
                and key.next_rotation_date <= now
            ):
                return True
            if key.valid_to is not None and key.valid_to <= now:
                return True
        return False

    async def run_due(self) -> MaintenanceReport:
        now = self._clock.now()
        if not await self._due(now):
            return MaintenanceReport()

        def change(tx: Transaction) -> MaintenanceReport:
            deleted, rotated, expired = [], [], []
            for key in tx.all_keys():
                if key.state is KeyState.PENDING_DELETION and key.deletion_date is not None:
                    if key.deletion_date <= now:
                        tx.delete_key(key.key_id, now)
                        deleted.append(key.key_id)
                        continue
                if key.valid_to is not None and key.valid_to <= now:
                    tx.put_key(expire_imported(tx, key))
                    expired.append(key.key_id)
                    continue
                if (
                    key.rotation_enabled
                    and key.state is KeyState.ENABLED
                    and key.next_rotation_date is not None
                    and key.next_rotation_date <= now
                ):
                    period = (key.rotation_period_days or 365) * DAY_SECONDS
                    rotated_key = add_material_version(tx, key, AUTOMATIC, now)
                    tx.put_key(rotated_key.evolve(next_rotation_date=now + period))
                    rotated.append(key.key_id)
            return MaintenanceReport(tuple(deleted), tuple(rotated), tuple(expired))

        return await self._mutate(change)
