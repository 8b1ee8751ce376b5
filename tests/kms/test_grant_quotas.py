"""CreateGrant's quota of grants per key, at the service (50,000 grants through real calls would
only measure the disk): the store is filled directly, then CreateGrant is asked for one more."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kmsgate.auth.grants import new_grant
from kmsgate.core.errors import LimitExceededError
from kmsgate.core.principal import Caller
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.keyref import Namespace
from kmsgate.kms.ops_grants import MAX_GRANTS_PER_GRANTEE, MAX_GRANTS_PER_KEY
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService
from kmsgate.kms.sqlite_store import SqliteKeyStore
from kmsgate.kms.transaction import Transaction

from .helpers import ACCOUNT_ID, REGION


def _user(n: int) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:user/u{n}"


async def test_create_grant_beyond_50000_grants_on_a_key_is_limit_exceeded(tmp_path: Path, caller: Caller) -> None:
    store = SqliteKeyStore(tmp_path, RootKey(os.urandom(32)))
    service = KmsService(store, Namespace(region=REGION, account_id=ACCOUNT_ID), FakeClock())
    try:
        key_id = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
        key_arn = service.namespace.key_arn(key_id)

        def fill(tx: Transaction) -> None:
            # As many grantees as the per-grantee quota allows the per-key quota to hold.
            for n in range(MAX_GRANTS_PER_KEY):
                grantee = _user(n // MAX_GRANTS_PER_GRANTEE)
                tx.put_grant(key_id, new_grant(key_arn=key_arn, grantee_principal=grantee, operations=["Encrypt"],
                                               account_id=ACCOUNT_ID, now=0.0))

        store.mutate(fill)
        await asyncio.sleep(0)  # let the event-loop turn end: the fill was committed outside the service
        await asyncio.sleep(0)
        with pytest.raises(LimitExceededError, match=r"Grants per KMS key \(50000\)"):
            await service.create_grant(caller=caller, key_id=key_id, grantee_principal=_user(-1),
                                       operations=["Decrypt"])
        assert len(service.grants_for(key_arn)) == MAX_GRANTS_PER_KEY
        other = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
        await service.create_grant(caller=caller, key_id=other, grantee_principal=_user(-1), operations=["Decrypt"])
    finally:
        service.close()
