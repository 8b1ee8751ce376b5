"""Grant operations: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.

Grants live in the key store next to their key (deleted with it) and in the service's in-memory
view, where the authorizer reads them (``ServiceBase.grants_for``). A grant is in force as soon
as CreateGrant returns, in every worker process (each reloads its view when the store changes),
so a grant token is accepted but never needed; tokens are still validated and a token naming a
grant identifies it for RetireGrant.

Key states, as in AWS: CreateGrant needs an Enabled, Disabled or PendingImport key; listing,
retiring and revoking work in every state.

Quotas, as in AWS: at most ``MAX_GRANTS_PER_KEY`` grants on a key and ``MAX_GRANTS_PER_GRANTEE``
for one grantee principal on a key (``LimitExceededException``). They are counted in the store's
indexes inside CreateGrant's write transaction, so workers creating grants at once cannot pass
them; a named CreateGrant that repeats an existing grant returns it and counts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kmsgate.auth.grants import (
    Grant,
    find_same_grant,
    grant_id_of_token,
    grant_list_entry,
    grant_token,
    may_retire,
    new_grant,
)
from kmsgate.auth.authorizer import Authorization
from kmsgate.core.errors import (
    AccessDeniedError,
    DryRunOperationError,
    InvalidGrantIdError,
    LimitExceededError,
    NotFoundError,
    UnsupportedOperationError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms.audit_context import REQUEST_AUTHORIZATION, REQUEST_KEY_ARN
from kmsgate.kms import keyspecs
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.keyspecs import KEY_SPECS
from kmsgate.kms.model import KeyState, KmsKey
from kmsgate.kms.pagination import check_limit, paginate
from kmsgate.kms.transaction import Transaction

MAX_GRANTS_PER_KEY = 50_000  # AWS quota "Grants per KMS key"
MAX_GRANTS_PER_GRANTEE = 500  # AWS quota "Grants for a given principal per KMS key"
MAX_LIST_GRANTS_LIMIT = 100  # AWS's documented bounds for ListGrants' and ListRetirableGrants' Limit
DEFAULT_LIST_GRANTS_LIMIT = 50
QUOTA_MESSAGE = "The request was rejected because a quota was exceeded: {quota} ({limit})."
DRY_RUN_MESSAGE = "The request would have succeeded, but the DryRun option is set."
_GRANT_ID_RE = re.compile(r"[0-9a-f]{64}")


def _check_grant_id(grant_id: str) -> str:
    if not _GRANT_ID_RE.fullmatch(grant_id):
        raise InvalidGrantIdError(f"Invalid grant ID: {grant_id[:128]}")
    return grant_id


def _sort_key(grant: Grant) -> str:
    """Oldest first; the grant id breaks ties and keeps the order total for pagination markers."""
    return f"{grant.creation_date:020.6f}/{grant.grant_id}"


def _constraint_maps(constraints: Mapping[str, Any] | None) -> tuple[Any, Any]:
    if constraints is None:
        return None, None
    if constraints.get("source_arn") is not None:
        raise UnsupportedOperationError("kmsgate does not support the SourceArn grant constraint")
    return constraints.get("encryption_context_subset"), constraints.get("encryption_context_equals")


class GrantOperations(ServiceBase):
    async def _find_grant(self, grant_id: str) -> Grant | None:
        for grants in (await self._refresh()).grants.values():
            for grant in grants:
                if grant.grant_id == grant_id:
                    return grant
        return None

    async def create_grant(
        self,
        *,
        caller: Caller,
        key_id: str,
        operations: Sequence[str],
        grantee_principal: str | None = None,
        retiring_principal: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        grant_tokens: Sequence[str] = (),
        name: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if grantee_principal is None:
            raise ValidationError(
                "1 validation error detected: Value null at 'granteePrincipal' failed to satisfy constraint: "
                "Member must not be null"
            )
        key = await self._resolve(key_id, allow_alias=False)
        subset, equals = _constraint_maps(constraints)
        candidate = new_grant(
            key_arn=key.arn,
            grantee_principal=grantee_principal,
            operations=list(operations),
            account_id=self.account_id,
            now=self._clock.now(),
            retiring_principal=retiring_principal,
            encryption_context_subset=subset,
            encryption_context_equals=equals,
            name=name,
        )
        keyspecs.check_grant(
            KEY_SPECS[key.key_spec], key.key_usage, candidate.operations, constrained=candidate.constraints is not None
        )
        # kms:EncryptionContext* conditions on CreateGrant see the grant's constraint pairs.
        self._authorize(
            caller,
            "kms:CreateGrant",
            key,
            grant_request=candidate,
            encryption_context={**(subset or {}), **(equals or {})},
            grant_tokens=grant_tokens,
        )
        self._require_state(key, KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)

        def change(tx: Transaction) -> Grant:
            current = self._load_key(tx, key.key_id)
            self._require_state(current, KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT)
            if candidate.name is not None:
                same = find_same_grant(tx.grants_named(key.key_id, candidate.name), candidate)
                if same is not None:
                    return same
            if tx.count_grants(key.key_id) >= MAX_GRANTS_PER_KEY:
                raise LimitExceededError(QUOTA_MESSAGE.format(quota="Grants per KMS key", limit=MAX_GRANTS_PER_KEY))
            if tx.count_grants(key.key_id, candidate.grantee_principal) >= MAX_GRANTS_PER_GRANTEE:
                raise LimitExceededError(
                    QUOTA_MESSAGE.format(quota="Grants for a given principal per KMS key", limit=MAX_GRANTS_PER_GRANTEE)
                )
            tx.put_grant(key.key_id, candidate)
            return candidate

        grant = await self._mutate(change)
        return {"grant_token": grant_token(grant.grant_id), "grant_id": grant.grant_id}

    async def list_grants(
        self,
        *,
        caller: Caller,
        key_id: str,
        limit: int | None = None,
        marker: str | None = None,
        grant_id: str | None = None,
        grantee_principal: str | None = None,
    ) -> dict[str, Any]:
        check_limit(limit, MAX_LIST_GRANTS_LIMIT)
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:ListGrants", key)
        grants = list(self.grants_for(key.arn))
        if grant_id is not None:
            _check_grant_id(grant_id)
            grants = [grant for grant in grants if grant.grant_id == grant_id]
        if grantee_principal is not None:
            grants = [grant for grant in grants if grant.grantee_principal == grantee_principal]
        page, more = paginate(grants, _sort_key, limit, marker, DEFAULT_LIST_GRANTS_LIMIT)
        return {"grants": [grant_list_entry(grant) for grant in page], **more}

    async def list_retirable_grants(
        self,
        *,
        caller: Caller,
        retiring_principal: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        if retiring_principal is None:
            raise ValidationError("Specify RetiringPrincipal.")
        check_limit(limit, MAX_LIST_GRANTS_LIMIT)
        self._authorize(caller, "kms:ListRetirableGrants", None)
        if not caller.is_account_root and retiring_principal != caller.arn:
            # kmsgate has no IAM policy to delegate this: a principal may list only its own.
            raise AccessDeniedError(
                f"User: {caller.arn} is not authorized to perform: kms:ListRetirableGrants on resource: "
                f"{retiring_principal[:256]} because no identity-based policy allows the kms:ListRetirableGrants "
                "action"
            )
        grants = [
            grant
            for grants in (await self._refresh()).grants.values()
            for grant in grants
            if grant.retiring_principal == retiring_principal
        ]
        page, more = paginate(grants, _sort_key, limit, marker, DEFAULT_LIST_GRANTS_LIMIT)
        return {"grants": [grant_list_entry(grant) for grant in page], **more}

    async def retire_grant(
        self,
        *,
        caller: Caller,
        grant_token: str | None = None,
        key_id: str | None = None,
        grant_id: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        key: KmsKey | None = None
        if grant_token is not None:
            named = grant_id_of_token(grant_token)
            if grant_id is not None and _check_grant_id(grant_id) != named:
                raise ValidationError("GrantId does not match the grant the GrantToken names.")
            grant_id = named
        elif key_id is None or grant_id is None:
            raise ValidationError("Specify a GrantToken, or both a KeyId and a GrantId.")
        if key_id is not None:
            key = await self._resolve(key_id, allow_alias=False)
        _check_grant_id(grant_id)
        grant = await self._find_grant(grant_id)
        if grant is None or (key is not None and grant.key_arn != key.arn):
            raise NotFoundError(f"Grant ID {grant_id} not found")
        if key is None:
            key = await self._resolve(grant.key_arn, allow_alias=False)
        if may_retire(grant, caller.arn):
            # The grant itself decides: its retiring principal, or its grantee when it includes
            # RetireGrant. Noted as the key this request concerned for the audit entry.
            self._authorize_by_grant(key, grant)
        else:
            tokens = () if grant_token is None else (grant_token,)
            self._authorize(caller, "kms:RetireGrant", key, grant_tokens=tokens)
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        await self._delete_grant(grant)
        return {}

    async def revoke_grant(
        self, *, caller: Caller, key_id: str, grant_id: str, dry_run: bool = False
    ) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:RevokeGrant", key)
        _check_grant_id(grant_id)
        grant = next((grant for grant in self.grants_for(key.arn) if grant.grant_id == grant_id), None)
        if grant is None:
            raise NotFoundError(f"Grant ID {grant_id} not found")
        if dry_run:
            raise DryRunOperationError(DRY_RUN_MESSAGE)
        await self._delete_grant(grant)
        return {}

    @staticmethod
    def _authorize_by_grant(key: KmsKey, grant: Grant) -> None:
        REQUEST_KEY_ARN.set(key.arn)
        REQUEST_AUTHORIZATION.set(Authorization("grant", grant_id=grant.grant_id))

    async def _delete_grant(self, grant: Grant) -> None:
        def change(tx: Transaction) -> None:
            if tx.get_grant(grant.grant_id) is None:
                raise NotFoundError(f"Grant ID {grant.grant_id} not found")
            tx.delete_grant(grant.grant_id)

        await self._mutate(change)
