"""Key lifecycle operations: create, describe, list, enable/disable, deletion, description, tags, policy."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from typing import Any


from kmsgate.auth.policy import parse_policy
from kmsgate.auth.key_policies import default_key_policy
from kmsgate.core.errors import (
    KmsInvalidStateError,
    TagError,
    UnsupportedOperationError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms import differences, keyspecs
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.keyspecs import KEY_SPECS
from kmsgate.kms.model import (
    ORIGIN_AWS_KMS,
    ORIGIN_EXTERNAL,
    SYMMETRIC_DEFAULT,
    KeyMaterial,
    KeyState,
    KmsKey,
)
from kmsgate.kms.pagination import check_limit, paginate
from kmsgate.kms.transaction import Transaction

MAX_TAGS_PER_KEY = 50  # also ListResourceTags' default and largest page
ORIGIN_AWS_CLOUDHSM = "AWS_CLOUDHSM"
ORIGIN_EXTERNAL_KEY_STORE = "EXTERNAL_KEY_STORE"
DEFAULT_PENDING_WINDOW_DAYS = 30
MIN_PENDING_WINDOW_DAYS = 7
MAX_PENDING_WINDOW_DAYS = 30
DAY_SECONDS = 86400.0
DEFAULT_POLICY_NAME = "default"


def new_material_id() -> str:
    return os.urandom(32).hex()


def check_tags(tags: Sequence[dict[str, str]]) -> dict[str, str]:
    """The tags of one CreateKey or TagResource request, as AWS checks them: no key with the
    reserved ``aws:`` prefix (in any case), and no tag key twice in one request (keys are
    case-sensitive); ``TagException`` otherwise."""
    parsed: dict[str, str] = {}
    for tag in tags:
        tag_key, tag_value = tag["tag_key"], tag["tag_value"]
        if tag_key[:4].lower() == "aws:":
            raise TagError("Tag keys beginning with 'aws:' are reserved")
        if tag_key in parsed:
            raise TagError(f"Duplicate tag key '{tag_key}' in one request: each tag key may appear once")
        parsed[tag_key] = tag_value
    return parsed


def check_pending_window(days: int) -> None:
    """The waiting period AWS allows (7-30 days); the service model alone allows 1-365."""
    if days < MIN_PENDING_WINDOW_DAYS:
        bound = f"greater than or equal to {MIN_PENDING_WINDOW_DAYS}"
    elif days > MAX_PENDING_WINDOW_DAYS:
        bound = f"less than or equal to {MAX_PENDING_WINDOW_DAYS}"
    else:
        return
    raise ValidationError(
        f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy "
        f"constraint: Member must have value {bound}"
    )


class KeyOperations(ServiceBase):
    def describe(self, key: KmsKey) -> dict[str, Any]:
        """KeyMetadata as AWS returns it (snake_case; the protocol edge renames)."""
        metadata: dict[str, Any] = {
            "aws_account_id": key.account_id,
            "key_id": key.key_id,
            "arn": key.arn,
            "creation_date": key.creation_date,
            "enabled": key.enabled,
            "description": key.description,
            "key_usage": key.key_usage,
            "key_state": key.state.value,
            "origin": key.origin,
            "key_manager": "CUSTOMER",
            "key_spec": key.key_spec,
            "multi_region": False,
        }
        spec = KEY_SPECS[key.key_spec]
        if spec.customer_master_key_spec:  # the deprecated member, whose enum lacks the newer specs
            metadata["customer_master_key_spec"] = key.key_spec
        metadata.update(spec.metadata(key.key_usage))
        # PendingDeletionWindowInDays belongs to multi-Region keys (PendingReplicaDeletion), so a
        # single-Region key in PendingDeletion reports only its DeletionDate, as AWS does.
        if key.deletion_date is not None:
            metadata["deletion_date"] = key.deletion_date
        if key.origin == ORIGIN_EXTERNAL:
            metadata["expiration_model"] = key.expiration_model
            if key.valid_to is not None:
                metadata["valid_to"] = key.valid_to
        if key.current_version:
            metadata["current_key_material_id"] = self._material(key).material_id
        return metadata

    async def create_key(
        self,
        *,
        caller: Caller,
        policy: str | None = None,
        description: str = "",
        key_usage: str = "ENCRYPT_DECRYPT",
        customer_master_key_spec: str | None = None,
        key_spec: str | None = None,
        origin: str = ORIGIN_AWS_KMS,
        bypass_policy_lockout_safety_check: bool = False,
        tags: Sequence[dict[str, str]] = (),
        multi_region: bool = False,
        custom_key_store_id: str | None = None,
        xks_key_id: str | None = None,
    ) -> dict[str, Any]:
        if key_spec and customer_master_key_spec and key_spec != customer_master_key_spec:
            raise ValidationError("KeySpec and CustomerMasterKeySpec must not differ")
        spec = keyspecs.key_spec(key_spec or customer_master_key_spec or SYMMETRIC_DEFAULT)
        keyspecs.check_usage(spec, key_usage)
        if origin in (ORIGIN_AWS_CLOUDHSM, ORIGIN_EXTERNAL_KEY_STORE) or custom_key_store_id or xks_key_id:
            raise UnsupportedOperationError(differences.CUSTOM_KEY_STORE)
        if origin not in (ORIGIN_AWS_KMS, ORIGIN_EXTERNAL):
            raise UnsupportedOperationError(f"Origin {origin} is not supported")
        if multi_region:
            raise UnsupportedOperationError(differences.MULTI_REGION)
        parsed_tags = check_tags(tags)
        if len(parsed_tags) > MAX_TAGS_PER_KEY:
            raise TagError(f"A key may have at most {MAX_TAGS_PER_KEY} tags")
        self._authorize(caller, "kms:CreateKey", None)
        key_id = str(uuid.uuid4())
        now = self._clock.now()
        key = KmsKey(
            key_id=key_id,
            arn=self.namespace.key_arn(key_id),
            account_id=self.account_id,
            creation_date=now,
            description=description,
            key_usage=key_usage,
            key_spec=spec.name,
            origin=origin,
            state=KeyState.ENABLED if origin == ORIGIN_AWS_KMS else KeyState.PENDING_IMPORT,
            current_version=1 if origin == ORIGIN_AWS_KMS else 0,
            policy=policy or default_key_policy(self.account_id),
            expiration_model=None,
            tags=parsed_tags,
        )
        # The default policy is exempt from the lockout check, as in AWS.
        self._check_new_policy(caller, key, bypass_policy_lockout_safety_check or policy is None)
        material = None
        if origin == ORIGIN_AWS_KMS:
            # An RSA 4096 key pair takes a while to find: never on the event loop.
            secret = (
                await asyncio.to_thread(keyspecs.generate_material, spec)
                if spec.asymmetric
                else keyspecs.generate_material(spec)
            )
            material = KeyMaterial(
                key_id=key_id,
                version=1,
                material_id=new_material_id(),
                secret=secret,
                created=now,
                rotation_type=None,
            )

        def change(tx: Transaction) -> None:
            tx.put_key(key)
            if material is not None:
                tx.put_material(material)

        await self._mutate(change)
        return {"key_metadata": self.describe(self._snapshot.keys[key_id])}

    def _check_new_policy(self, caller: Caller, key: KmsKey, bypass: bool) -> None:
        """MalformedPolicyDocumentException for a policy that does not parse, or that fails the
        lockout safety check (unless ``bypass``), as the authorizer decides; without a
        policy-aware authorizer the policy is still parsed."""
        check = getattr(self._authorizer, "check_new_policy", None)
        if check is not None:
            check(caller, key.arn, key.policy, bypass)
        else:
            parse_policy(key.policy)

    async def describe_key(self, *, caller: Caller, key_id: str, grant_tokens: Sequence[str] = ()) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=True)
        self._authorize(
            caller, "kms:DescribeKey", key, grant_tokens=grant_tokens, request_alias=self._request_alias(key_id)
        )
        return {"key_metadata": self.describe(key)}

    async def list_keys(self, *, caller: Caller, limit: int | None = None, marker: str | None = None) -> dict[str, Any]:
        self._authorize(caller, "kms:ListKeys", None)
        keys = list((await self._refresh()).keys.values())
        page, more = paginate(keys, lambda k: k.key_id, limit, marker)
        return {"keys": [{"key_id": k.key_id, "key_arn": k.arn} for k in page], **more}

    async def _set_state(self, caller: Caller, key_id: str, action: str, target: KeyState) -> None:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, action, key)

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)
            self._require_state(current, KeyState.ENABLED, KeyState.DISABLED)
            tx.put_key(current.evolve(state=target))

        await self._mutate(change)

    async def enable_key(self, *, caller: Caller, key_id: str) -> dict[str, Any]:
        await self._set_state(caller, key_id, "kms:EnableKey", KeyState.ENABLED)
        return {}

    async def disable_key(self, *, caller: Caller, key_id: str) -> dict[str, Any]:
        await self._set_state(caller, key_id, "kms:DisableKey", KeyState.DISABLED)
        return {}

    async def schedule_key_deletion(
        self, *, caller: Caller, key_id: str, pending_window_in_days: int | None = None
    ) -> dict[str, Any]:
        window = DEFAULT_PENDING_WINDOW_DAYS if pending_window_in_days is None else pending_window_in_days
        check_pending_window(window)
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:ScheduleKeyDeletion", key)
        deletion_date = self._clock.now() + window * DAY_SECONDS

        def change(tx: Transaction) -> KmsKey:
            current = self._load_key(tx, key.key_id)
            if current.state is KeyState.PENDING_DELETION:
                raise KmsInvalidStateError(f"{current.arn} is pending deletion.")
            updated = current.evolve(
                state=KeyState.PENDING_DELETION, deletion_date=deletion_date, pending_window_days=window
            )
            tx.put_key(updated)
            return updated

        updated = await self._mutate(change)
        return {
            "key_id": updated.arn,
            "deletion_date": deletion_date,
            "key_state": updated.state.value,
            "pending_window_in_days": window,
        }

    async def cancel_key_deletion(self, *, caller: Caller, key_id: str) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:CancelKeyDeletion", key)

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)
            self._require_state(current, KeyState.PENDING_DELETION)
            # AWS returns a cancelled key Disabled; an imported key without material stays PendingImport.
            target = KeyState.DISABLED if current.current_version else KeyState.PENDING_IMPORT
            tx.put_key(current.evolve(state=target, deletion_date=None, pending_window_days=None))

        await self._mutate(change)
        return {"key_id": key.arn}

    async def update_key_description(self, *, caller: Caller, key_id: str, description: str) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:UpdateKeyDescription", key)

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)
            self._require_state(current, KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT)
            tx.put_key(current.evolve(description=description))

        await self._mutate(change)
        return {}

    async def tag_resource(self, *, caller: Caller, key_id: str, tags: Sequence[dict[str, str]]) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:TagResource", key)
        new_tags = check_tags(tags)

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)
            self._require_state(current, KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT)
            merged = {**current.tags, **new_tags}
            if len(merged) > MAX_TAGS_PER_KEY:
                raise TagError(f"A key may have at most {MAX_TAGS_PER_KEY} tags")
            tx.put_key(current.evolve(tags=merged))

        await self._mutate(change)
        return {}

    async def untag_resource(self, *, caller: Caller, key_id: str, tag_keys: Sequence[str]) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:UntagResource", key)

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)
            self._require_state(current, KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT)
            tx.put_key(current.evolve(tags={k: v for k, v in current.tags.items() if k not in set(tag_keys)}))

        await self._mutate(change)
        return {}

    async def list_resource_tags(
        self, *, caller: Caller, key_id: str, limit: int | None = None, marker: str | None = None
    ) -> dict[str, Any]:
        check_limit(limit, MAX_TAGS_PER_KEY)
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:ListResourceTags", key)
        page, more = paginate(list(key.tags.items()), lambda item: item[0], limit, marker, MAX_TAGS_PER_KEY)
        return {"tags": [{"tag_key": k, "tag_value": v} for k, v in page], **more}

    async def get_key_policy(self, *, caller: Caller, key_id: str, policy_name: str | None = None) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:GetKeyPolicy", key)
        self._check_policy_name(policy_name)
        return {"policy": key.policy, "policy_name": DEFAULT_POLICY_NAME}

    async def list_key_policies(
        self, *, caller: Caller, key_id: str, limit: int | None = None, marker: str | None = None
    ) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:ListKeyPolicies", key)
        page, more = paginate([DEFAULT_POLICY_NAME], lambda name: name, limit, marker)
        return {"policy_names": page, **more}

    async def put_key_policy(
        self,
        *,
        caller: Caller,
        key_id: str,
        policy: str,
        policy_name: str | None = None,
        bypass_policy_lockout_safety_check: bool = False,
    ) -> dict[str, Any]:
        key = await self._resolve(key_id, allow_alias=False)
        self._authorize(caller, "kms:PutKeyPolicy", key)
        self._check_policy_name(policy_name)
        self._check_new_policy(caller, key.evolve(policy=policy), bypass_policy_lockout_safety_check)

        def change(tx: Transaction) -> None:
            current = self._load_key(tx, key.key_id)  # any key state: AWS allows PutKeyPolicy in all
            tx.put_key(current.evolve(policy=policy))

        await self._mutate(change)
        return {}

    @staticmethod
    def _check_policy_name(policy_name: str | None) -> None:
        if policy_name is not None and policy_name != DEFAULT_POLICY_NAME:
            raise ValidationError("PolicyName must be 'default'")
