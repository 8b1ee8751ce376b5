"""``KmsService``: the KMS as an async object with one method per AWS KMS operation.

It knows nothing about HTTP: the protocol adapter (``kmsgate.web.kms_api``) maps JSON requests
onto these methods. Each method takes keyword-only snake_case arguments and ``caller``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from kmsgate.kms.base import Authorizer
from kmsgate.kms.clock import Clock, SystemClock
from kmsgate.kms.keyref import Namespace
from kmsgate.kms.maintenance import Maintenance
from kmsgate.kms.ops_aliases import AliasOperations
from kmsgate.kms.ops_asymmetric import AsymmetricOperations
from kmsgate.kms.ops_crypto import CryptoOperations
from kmsgate.kms.ops_data_key_pairs import DataKeyPairOperations
from kmsgate.kms.ops_grants import GrantOperations
from kmsgate.kms.ops_import import ImportOperations
from kmsgate.kms.ops_kem import KemOperations
from kmsgate.kms.ops_keys import KeyOperations
from kmsgate.kms.ops_rotation import RotationOperations
from kmsgate.kms.ops_usage import UsageOperations
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.slow_operations import SlowOperations
from kmsgate.kms.stores import open_store


class KmsService(
    KeyOperations,
    AliasOperations,
    DataKeyPairOperations,
    CryptoOperations,
    AsymmetricOperations,
    KemOperations,
    RotationOperations,
    ImportOperations,
    GrantOperations,
    UsageOperations,
    Maintenance,
):
    """The whole KMS. Build it with ``open_service``."""

    def close(self) -> None:
        self._store.close()
        self._slow_operations.close()

    async def check_key_store(self) -> None:
        """Whether the key store answers now (readiness); raises ``DependencyTimeoutError`` saying why not."""
        await asyncio.to_thread(self._store.check)


def open_service(
    data_dir: Path,
    root_key: RootKey,
    *,
    region: str,
    account_id: str,
    clock: Clock | None = None,
    authorizer: Authorizer | None = None,
    key_store: str | None = None,
    slow_operations: SlowOperations | None = None,
) -> KmsService:
    """The KMS on the key store ``key_store`` names (``kmsgate.kms.stores``; default SQLite in ``data_dir``)."""
    store = open_store(key_store, data_dir, root_key)
    return KmsService(
        store, Namespace(region=region, account_id=account_id), clock or SystemClock(), authorizer, slow_operations
    )
