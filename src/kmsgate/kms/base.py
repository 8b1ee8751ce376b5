"""State shared by the KMS operations: the in-memory view of the store, key resolution, state rules.

The service serves every read from an in-memory ``Snapshot``, so Encrypt/Decrypt/GenerateDataKey
do no database or root-key work per request, yet a change made by another worker process is
seen by the next request. Every change goes through ``_mutate``: one durable transaction in a
worker thread, then a reload. The store (``kmsgate.kms.store``) is SQLite or PostgreSQL; this
code does not know which.

A request starts with ``await self._refresh()``. It reads the store's ``data_version`` (SQLite's
``PRAGMA data_version``; for PostgreSQL the last change notified, an attribute) at most once
per event-loop turn: the first ``_refresh`` of a turn reads it and schedules (``call_soon``) the
end of that reading's validity. A request that reaches this process after another process
committed is handled in callbacks scheduled after its bytes arrived, which run after the expiry
of any reading taken before they arrived (the ready queue is FIFO), so it still sees the commit;
requests handled in the same turn share one reading.

When the version moved, the request waits for a reload that started after its reading. A reload
reads only what changed since the view it replaces (``KeyStore.load_changes``), in a worker
thread, so the event loop keeps serving; one reload runs at a time and every request that needs
it waits on the same one. The new view is swapped in with one assignment when it is complete.

A reload that finds the key store unreachable (``DependencyTimeoutError``: PostgreSQL down or
cut off after it notified a change) does not fail the requests: they are served from the view
held, as they would be had the notification come a moment later. Until a reload succeeds, no
request waits on one: each is served from the held view at once, and a reload is retried in
the background every ``RELOAD_RETRY_SECONDS``. Writes still fail on their own, in ``mutate``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from kmsgate.core.errors import (
    DependencyTimeoutError,
    DisabledError,
    InvalidKeyUsageError,
    KmsInternalError,
    KmsInvalidStateError,
    NotFoundError,
)
from kmsgate.auth.authorizer import Authorization
from kmsgate.auth.grants import Grant
from kmsgate.core.principal import Caller
from kmsgate.kms.audit_context import REQUEST_AUTHORIZATION, REQUEST_KEY_ARN
from kmsgate.kms.clock import Clock
from kmsgate.kms.keyref import Namespace
from kmsgate.kms.model import SYMMETRIC_DEFAULT, KeyMaterial, KeyState, KmsKey
from kmsgate.kms.slow_operations import SlowOperations
from kmsgate.kms.snapshot import Snapshot
from kmsgate.kms.store import KeyStore
from kmsgate.kms.transaction import Transaction
from kmsgate.kms.usage import UsageRecorder

T = TypeVar("T")
RELOAD_RETRY_SECONDS = 1.0  # while the key store is unreachable, how often a reload is tried again


class Authorizer(Protocol):
    """Decides whether ``caller`` may perform ``action`` (``kms:Encrypt``…) on ``key``.

    ``key`` is ``None`` for account-level actions (CreateKey, ListKeys, ListAliases…).
    ``conditions`` carries request facts for policy conditions (encryption context, alias…).
    Returns what allowed the action (``None``: an authorizer that does not say) or raises
    ``AccessDeniedError``.
    """

    def authorize(
        self, caller: Caller, action: str, key: KmsKey | None, conditions: Mapping[str, Any]
    ) -> Authorization | None: ...


class AllowAll:
    """Authorizer for embedded use where the caller is already trusted."""

    def authorize(
        self, caller: Caller, action: str, key: KmsKey | None, conditions: Mapping[str, Any]
    ) -> Authorization | None:
        return None


class ServiceBase:
    def __init__(
        self,
        store: KeyStore,
        namespace: Namespace,
        clock: Clock,
        authorizer: Authorizer | None = None,
        slow_operations: SlowOperations | None = None,
    ) -> None:
        self._store = store
        # Slow private-key operations (RSA) run here, in helper processes (see ``_run_slow``).
        self._slow_operations = slow_operations or SlowOperations()
        self.namespace = namespace
        self._clock = clock
        self._authorizer: Authorizer = authorizer or AllowAll()
        self._version = store.data_version()  # read before the load: a later commit moves it
        self._version_current = False  # True until the end of the loop turn that read it
        self._loaded = store.load()  # at start-up, before serving
        self._snapshot = self._loaded.snapshot
        self._reload: asyncio.Task[None] | None = None
        self._reloads_started = 0
        self._reloads_finished = 0
        self._reload_failed_at: float | None = None  # monotonic time the last reload found the store unreachable
        self._usage = UsageRecorder()

    @property
    def account_id(self) -> str:
        return self.namespace.account_id

    def set_authorizer(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    def grants_for(self, key_arn: str) -> tuple[Grant, ...]:
        """The live grants of a key, from the in-memory view (the authorizer's ``grants_for``)."""
        return self._snapshot.grants.get(key_arn.rsplit("/", 1)[-1], ())

    # -- the in-memory view -------------------------------------------------------------

    async def _refresh(self) -> Snapshot:
        """The current view: this turn's, or one reloaded after this call read the version."""
        if self._version_current:
            return self._snapshot
        version = self._store.data_version()
        if version == self._version:
            self._version_current = True
            asyncio.get_running_loop().call_soon(self._expire_version)
            return self._snapshot
        loop = asyncio.get_running_loop()
        if self._reload_failed_at is not None:
            # The key store did not answer the last reload: serve what is held, retry behind it.
            if self._reload is None and time.monotonic() - self._reload_failed_at >= RELOAD_RETRY_SECONDS:
                self._reload = loop.create_task(self._run_reload())
            return self._snapshot
        wanted = self._reloads_started + 1  # the first reload to start after this reading
        while self._reloads_finished < wanted and self._reload_failed_at is None:
            if self._reload is None:
                self._reload = loop.create_task(self._run_reload())
            # Shielded: a request that goes away must not cancel the reload others wait on.
            await asyncio.shield(self._reload)
        return self._snapshot

    async def _run_reload(self) -> None:
        self._reloads_started += 1
        version = self._store.data_version()
        try:
            loaded = await asyncio.to_thread(self._store.load_changes, self._loaded)
            self._loaded, self._snapshot, self._version = loaded, loaded.snapshot, version
            self._reload_failed_at = None
        except DependencyTimeoutError:
            self._reload_failed_at = time.monotonic()
        finally:
            self._reloads_finished += 1
            self._reload = None

    def _expire_version(self) -> None:
        self._version_current = False

    async def _mutate(self, change: Callable[[Transaction], T]) -> T:
        result = await asyncio.to_thread(self._store.mutate, change)
        self._version_current = False
        self._reload_failed_at = None  # the store just answered: this request waits for a view with its write
        await self._refresh()
        return result

    # -- resolution -----------------------------------------------------------------------

    async def _resolve(self, key_ref: str, *, allow_alias: bool) -> KmsKey:
        """The key a reference names, in a fresh view."""
        return self._resolve_in(await self._refresh(), key_ref, allow_alias=allow_alias)

    def _resolve_in(self, snapshot: Snapshot, key_ref: str, *, allow_alias: bool) -> KmsKey:
        """The key a reference names in ``snapshot`` (a view this request already refreshed)."""
        ref = self.namespace.parse(key_ref, allow_alias=allow_alias)
        key_id = ref.key_id
        if ref.alias_name is not None:
            alias = snapshot.aliases.get(ref.alias_name)
            if alias is None:
                raise NotFoundError(f"Alias {self.namespace.alias_arn(ref.alias_name)} is not found.")
            key_id = alias.key_id
        key = snapshot.keys.get(key_id or "")
        if key is None:
            raise NotFoundError(f"Key '{self.namespace.key_arn(key_id or '')}' does not exist")
        return key

    def _material(self, key: KmsKey, version: int | None = None) -> KeyMaterial:
        wanted = key.current_version if version is None else version
        material = self._snapshot.materials.get((key.key_id, wanted))
        if material is None:
            raise KmsInternalError("Key material is unavailable")
        return material

    @staticmethod
    def _load_key(tx: Transaction, key_id: str) -> KmsKey:
        """Re-read a key inside a transaction: another process may have changed it."""
        key = tx.get_key(key_id)
        if key is None:
            raise NotFoundError(f"Key '{key_id}' does not exist")
        return key

    # -- state rules (AWS "key states" table) ------------------------------------------------

    @staticmethod
    def _require_usable(key: KmsKey) -> None:
        """Cryptographic operations need an Enabled key."""
        if key.state is KeyState.ENABLED:
            return
        if key.state is KeyState.DISABLED:
            raise DisabledError(f"{key.arn} is disabled.")
        raise KmsInvalidStateError(f"{key.arn} is {_state_phrase(key.state)}.")

    @staticmethod
    def _require_key_usage(key: KmsKey, operation: str, key_usage: str, *, symmetric: bool = False) -> None:
        """``InvalidKeyUsageException`` unless ``key`` has ``key_usage`` (and, if asked, is SYMMETRIC_DEFAULT)."""
        if key.key_usage != key_usage or (symmetric and key.key_spec != SYMMETRIC_DEFAULT):
            raise InvalidKeyUsageError(
                f"{key.arn} key usage is {key.key_usage} and key spec is {key.key_spec}, "
                f"which is not valid for {operation}."
            )

    @staticmethod
    def _require_state(key: KmsKey, *allowed: KeyState) -> None:
        if key.state not in allowed:
            raise KmsInvalidStateError(f"{key.arn} is {_state_phrase(key.state)}.")

    def _authorize(
        self, caller: Caller, action: str, key: KmsKey | None, **conditions: Any
    ) -> None:
        if key is not None:
            REQUEST_KEY_ARN.set(key.arn)
            # The key's own facts, which every key-scoped request carries (kms:KeySpec, kms:KeyUsage).
            conditions["extra"] = {"kms:KeySpec": key.key_spec, "kms:KeyUsage": key.key_usage,
                                   **conditions.get("extra", {})}
        REQUEST_AUTHORIZATION.set(None)  # a denial leaves none, even after an earlier allowed action
        REQUEST_AUTHORIZATION.set(self._authorizer.authorize(caller, action, key, conditions))

    def _request_alias(self, key_ref: str | None) -> str | None:
        """The alias name a request used to name its key (``kms:RequestAlias``), if any."""
        if key_ref is None or "alias/" not in key_ref:
            return None
        return self.namespace.parse(key_ref, allow_alias=True).alias_name

    async def _run_slow(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` where slow private-key operations run (``kmsgate.kms.slow_operations``).

        Raises ``ThrottlingError`` when too many are already waiting.
        """
        return await self._slow_operations.run(function, *args)

    def _note_use(self, key: KmsKey, operation: str) -> None:
        """Record a successful cryptographic use (memory only; see ``kmsgate.kms.usage``)."""
        self._usage.note(key.key_id, self._clock.now(), operation)


def _state_phrase(state: KeyState) -> str:
    return {
        KeyState.ENABLED: "enabled",
        KeyState.DISABLED: "disabled",
        KeyState.PENDING_DELETION: "pending deletion",
        KeyState.PENDING_IMPORT: "pending import",
    }[state]
