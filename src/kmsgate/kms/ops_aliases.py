"""Alias operations: friendly names that point at one key each."""

from __future__ import annotations

from typing import Any

from kmsgate.core.errors import AlreadyExistsError, KmsInvalidStateError, NotFoundError
from kmsgate.core.principal import Caller
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.keyref import check_alias_name
from kmsgate.kms.model import KeyState, KmsKey
from kmsgate.kms.pagination import check_limit, paginate
from kmsgate.kms.snapshot import Alias
from kmsgate.kms.transaction import Transaction

MAX_LIST_ALIASES_LIMIT = 100  # AWS's documented bounds for ListAliases' Limit
DEFAULT_LIST_ALIASES_LIMIT = 50


class AliasOperations(ServiceBase):
    async def _alias_target(self, target_key_id: str) -> KmsKey:
        """An alias targets a key named by id or ARN, never by another alias."""
        key = await self._resolve(target_key_id, allow_alias=False)
        if key.state is KeyState.PENDING_DELETION:
            raise KmsInvalidStateError(f"{key.arn} is pending deletion.")
        return key

    async def create_alias(self, *, caller: Caller, alias_name: str, target_key_id: str) -> dict[str, Any]:
        check_alias_name(alias_name)
        key = await self._alias_target(target_key_id)
        self._authorize(caller, "kms:CreateAlias", key, request_alias=alias_name)
        now = self._clock.now()

        def change(tx: Transaction) -> None:
            if tx.get_alias(alias_name) is not None:
                raise AlreadyExistsError(f"An alias with the name {self.namespace.alias_arn(alias_name)} already exists")
            self._load_key(tx, key.key_id)
            tx.put_alias(Alias(alias_name=alias_name, key_id=key.key_id, created=now, updated=now))

        await self._mutate(change)
        return {}

    async def update_alias(self, *, caller: Caller, alias_name: str, target_key_id: str) -> dict[str, Any]:
        check_alias_name(alias_name)
        existing = (await self._refresh()).aliases.get(alias_name)
        if existing is None:
            raise NotFoundError(f"Alias {self.namespace.alias_arn(alias_name)} is not found.")
        key = await self._alias_target(target_key_id)
        old_key = self._snapshot.keys.get(existing.key_id)
        if old_key is not None:
            self._authorize(caller, "kms:UpdateAlias", old_key, request_alias=alias_name)
        self._authorize(caller, "kms:UpdateAlias", key, request_alias=alias_name)
        now = self._clock.now()

        def change(tx: Transaction) -> None:
            current = tx.get_alias(alias_name)
            if current is None:
                raise NotFoundError(f"Alias {self.namespace.alias_arn(alias_name)} is not found.")
            self._load_key(tx, key.key_id)
            tx.put_alias(Alias(alias_name=alias_name, key_id=key.key_id, created=current.created, updated=now))

        await self._mutate(change)
        return {}

    async def delete_alias(self, *, caller: Caller, alias_name: str) -> dict[str, Any]:
        if not alias_name.startswith("alias/"):
            check_alias_name(alias_name)
        existing = (await self._refresh()).aliases.get(alias_name)
        if existing is None:
            raise NotFoundError(f"Alias {self.namespace.alias_arn(alias_name)} is not found.")
        key = self._snapshot.keys.get(existing.key_id)
        if key is not None:
            self._authorize(caller, "kms:DeleteAlias", key, request_alias=alias_name)

        def change(tx: Transaction) -> None:
            if tx.get_alias(alias_name) is None:
                raise NotFoundError(f"Alias {self.namespace.alias_arn(alias_name)} is not found.")
            tx.delete_alias(alias_name)

        await self._mutate(change)
        return {}

    async def list_aliases(
        self, *, caller: Caller, key_id: str | None = None, limit: int | None = None, marker: str | None = None
    ) -> dict[str, Any]:
        check_limit(limit, MAX_LIST_ALIASES_LIMIT)
        snapshot = await self._refresh()
        aliases = list(snapshot.aliases.values())
        if key_id is not None:
            key = await self._resolve(key_id, allow_alias=False)
            self._authorize(caller, "kms:ListAliases", None)
            aliases = [alias for alias in aliases if alias.key_id == key.key_id]
        else:
            self._authorize(caller, "kms:ListAliases", None)
        page, more = paginate(aliases, lambda alias: alias.alias_name, limit, marker, DEFAULT_LIST_ALIASES_LIMIT)
        return {
            "aliases": [
                {
                    "alias_name": alias.alias_name,
                    "alias_arn": self.namespace.alias_arn(alias.alias_name),
                    "target_key_id": alias.key_id,
                    "creation_date": alias.created,
                    "last_updated_date": alias.updated,
                }
                for alias in page
            ],
            **more,
        }
