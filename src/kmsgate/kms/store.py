"""The key store seam: what the KMS service needs from wherever keys, aliases, material and grants are kept.

Two implementations: ``SqliteKeyStore`` (``kmsgate.kms.sqlite_store``, embedded, the default)
and ``PgKeyStore`` (``kmsgate.kms.pg_store``, shared by several nodes); ``kmsgate.kms.stores``
picks one from a ``--key-store`` URL. The service above never knows which.

The contract both keep:

- ``mutate`` runs its function in one durable transaction that no other writer, in any process
  or on any node, runs beside; the function's reads see every earlier commit. An exception rolls
  everything back. Key material is written only wrapped under the root key.
- ``mutate``, ``load``, ``load_changes``, ``last_usage``, ``usage_tracking_start``,
  ``was_deleted``, ``prune_changes`` and ``check`` block: call them from a worker thread, never the event
  loop.
- ``data_version`` is cheap enough for every request (no database round trip on PostgreSQL) and
  changes after any commit that changed served rows, by this store or another: SQLite sees it
  at once; PostgreSQL within a second (a notification, or the periodic check behind it).
- ``load_changes(held)`` returns ``held`` brought up to date with every commit ``data_version``
  has shown, reading only what changed when the change log still reaches back to ``held``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from kmsgate.kms.loader import Loaded
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.transaction import Transaction

T = TypeVar("T")


class KeyStore(Protocol):
    @property
    def root_key(self) -> RootKey: ...

    @property
    def rows_loaded(self) -> int:
        """How many rows the loads of this store have read so far (what a reload costs)."""
        ...

    def close(self) -> None: ...

    def check(self) -> None:
        """Read from the database now; raise ``DependencyTimeoutError`` saying why if it cannot answer."""
        ...

    def data_version(self) -> int: ...

    def last_usage(self, key_id: str) -> tuple[float, str] | None:
        """The stored (time, operation) of a key's last successful cryptographic use."""
        ...

    def usage_tracking_start(self) -> float:
        """When this key store began recording key usage."""
        ...

    def was_deleted(self, key_id: str) -> bool:
        """Whether a key with this id existed and was deleted."""
        ...

    def mutate(self, change: Callable[[Transaction], T]) -> T: ...

    def prune_changes(self, older_than: float) -> None: ...

    def load(self) -> Loaded: ...

    def load_changes(self, held: Loaded) -> Loaded: ...
