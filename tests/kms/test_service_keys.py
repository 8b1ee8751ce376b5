"""Service-layer tests (no HTTP) for key lifecycle, key-id forms, state rules, tags, aliases and deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kmsgate.core.errors import (
    AlreadyExistsError,
    DisabledError,
    InvalidAliasNameError,
    InvalidArnError,
    InvalidMarkerError,
    KmsInvalidStateError,
    NotFoundError,
    TagError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.service import KmsService

from .helpers import ACCOUNT_ID, REGION

DAY = 86400.0
STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingImport")


async def new_key(service: KmsService, caller: Caller, **kwargs: Any) -> dict[str, Any]:
    return (await service.create_key(caller=caller, **kwargs))["key_metadata"]  # type: ignore[no-any-return]


async def key_in_state(service: KmsService, caller: Caller, state: str) -> str:
    if state == "PendingImport":
        return (await new_key(service, caller, origin="EXTERNAL"))["key_id"]  # type: ignore[no-any-return]
    key_id = (await new_key(service, caller))["key_id"]
    if state == "Disabled":
        await service.disable_key(caller=caller, key_id=key_id)
    elif state == "PendingDeletion":
        await service.schedule_key_deletion(caller=caller, key_id=key_id, pending_window_in_days=7)
    return key_id  # type: ignore[no-any-return]


async def state_of(service: KmsService, caller: Caller, key_id: str) -> str:
    return (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]["key_state"]  # type: ignore[no-any-return]


async def test_create_key_returns_full_metadata(service: KmsService, caller: Caller, clock: FakeClock) -> None:
    meta = await new_key(service, caller, description="orders")
    key_id = meta["key_id"]
    assert meta["arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key_id}"
    assert meta["aws_account_id"] == ACCOUNT_ID
    assert meta["creation_date"] == clock.now()
    assert meta["enabled"] is True
    assert meta["key_state"] == "Enabled"
    assert meta["description"] == "orders"
    assert meta["key_usage"] == "ENCRYPT_DECRYPT"
    assert meta["origin"] == "AWS_KMS"
    assert meta["key_manager"] == "CUSTOMER"
    assert meta["key_spec"] == meta["customer_master_key_spec"] == "SYMMETRIC_DEFAULT"
    assert meta["encryption_algorithms"] == ["SYMMETRIC_DEFAULT"]
    assert meta["multi_region"] is False
    assert len(meta["current_key_material_id"]) == 64
    int(meta["current_key_material_id"], 16)
    assert "deletion_date" not in meta and "expiration_model" not in meta


async def test_external_key_starts_pending_import_without_material(service: KmsService, caller: Caller) -> None:
    meta = await new_key(service, caller, origin="EXTERNAL")
    assert meta["key_state"] == "PendingImport"
    assert meta["enabled"] is False
    assert meta["origin"] == "EXTERNAL"
    assert "current_key_material_id" not in meta


async def test_every_key_id_form_names_the_same_key(service: KmsService, caller: Caller) -> None:
    meta = await new_key(service, caller)
    await service.create_alias(caller=caller, alias_name="alias/forms", target_key_id=meta["key_id"])
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:alias/forms"
    for form in (meta["key_id"], meta["arn"], "alias/forms", alias_arn):
        described = (await service.describe_key(caller=caller, key_id=form))["key_metadata"]
        assert described["key_id"] == meta["key_id"], form


async def test_operations_that_take_only_keys_reject_aliases(service: KmsService, caller: Caller) -> None:
    meta = await new_key(service, caller)
    await service.create_alias(caller=caller, alias_name="alias/only-keys", target_key_id=meta["key_id"])
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:alias/only-keys"
    for form in ("alias/only-keys", alias_arn):
        with pytest.raises(NotFoundError):
            await service.disable_key(caller=caller, key_id=form)
        with pytest.raises(NotFoundError):
            await service.schedule_key_deletion(caller=caller, key_id=form)
        with pytest.raises(NotFoundError):
            await service.enable_key_rotation(caller=caller, key_id=form)
        with pytest.raises(NotFoundError):
            await service.create_alias(caller=caller, alias_name="alias/other", target_key_id=form)
    assert await state_of(service, caller, meta["key_id"]) == "Enabled"


async def test_bad_references_raise_the_aws_errors(service: KmsService, caller: Caller) -> None:
    meta = await new_key(service, caller)
    other_region = meta["arn"].replace(REGION, "eu-west-1")
    other_account = meta["arn"].replace(ACCOUNT_ID, "999988887777")
    for missing in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", other_region, other_account, "alias/none"):
        with pytest.raises(NotFoundError):
            await service.describe_key(caller=caller, key_id=missing)
    for malformed in ("arn:aws:kms", f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:thing/x"):
        with pytest.raises(InvalidArnError):
            await service.describe_key(caller=caller, key_id=malformed)


# -- state rules ---------------------------------------------------------------------------------

CRYPTO_ERRORS = {
    "Enabled": None,
    "Disabled": DisabledError,
    "PendingDeletion": KmsInvalidStateError,
    "PendingImport": KmsInvalidStateError,
}


@pytest.mark.parametrize("state", STATES)
async def test_cryptographic_operations_need_an_enabled_key(service: KmsService, caller: Caller, state: str) -> None:
    key_id = await key_in_state(service, caller, state)
    expected = CRYPTO_ERRORS[state]
    calls = (
        lambda: service.encrypt(caller=caller, key_id=key_id, plaintext=b"x"),
        lambda: service.generate_data_key(caller=caller, key_id=key_id, key_spec="AES_256"),
        lambda: service.generate_data_key_without_plaintext(caller=caller, key_id=key_id, number_of_bytes=8),
    )
    for call in calls:
        if expected is None:
            await call()
        else:
            with pytest.raises(expected):
                await call()


# PendingImport is covered in test_service_import: a key without material has made no ciphertext.
@pytest.mark.parametrize("state", ["Enabled", "Disabled", "PendingDeletion"])
async def test_decrypt_and_reencrypt_follow_the_key_state(service: KmsService, caller: Caller, state: str) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    target = (await new_key(service, caller))["key_id"]
    blob = (await service.encrypt(caller=caller, key_id=key_id, plaintext=b"secret")).ciphertext_blob
    if state == "Disabled":
        await service.disable_key(caller=caller, key_id=key_id)
    elif state == "PendingDeletion":
        await service.schedule_key_deletion(caller=caller, key_id=key_id)
    expected = CRYPTO_ERRORS[state]
    if expected is None:
        assert (await service.decrypt(caller=caller, ciphertext_blob=blob)).plaintext == b"secret"
        await service.re_encrypt(caller=caller, ciphertext_blob=blob, destination_key_id=target)
    else:
        with pytest.raises(expected):
            await service.decrypt(caller=caller, ciphertext_blob=blob)
        with pytest.raises(expected):
            await service.re_encrypt(caller=caller, ciphertext_blob=blob, destination_key_id=target)
    # a disabled destination refuses too
    await service.disable_key(caller=caller, key_id=target)
    if expected is None:
        with pytest.raises(DisabledError):
            await service.re_encrypt(caller=caller, ciphertext_blob=blob, destination_key_id=target)


@pytest.mark.parametrize("state", STATES)
async def test_enable_and_disable_by_state(service: KmsService, caller: Caller, state: str) -> None:
    key_id = await key_in_state(service, caller, state)
    if state in ("Enabled", "Disabled"):
        await service.disable_key(caller=caller, key_id=key_id)
        assert await state_of(service, caller, key_id) == "Disabled"
        await service.disable_key(caller=caller, key_id=key_id)  # idempotent
        await service.enable_key(caller=caller, key_id=key_id)
        assert await state_of(service, caller, key_id) == "Enabled"
        await service.enable_key(caller=caller, key_id=key_id)
        assert (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]["enabled"] is True
    else:
        with pytest.raises(KmsInvalidStateError):
            await service.enable_key(caller=caller, key_id=key_id)
        with pytest.raises(KmsInvalidStateError):
            await service.disable_key(caller=caller, key_id=key_id)
        assert await state_of(service, caller, key_id) == state


@pytest.mark.parametrize("state", STATES)
async def test_management_operations_by_state(service: KmsService, caller: Caller, state: str) -> None:
    key_id = await key_in_state(service, caller, state)
    # Allowed in every state.
    await service.describe_key(caller=caller, key_id=key_id)
    await service.list_resource_tags(caller=caller, key_id=key_id)
    await service.get_key_policy(caller=caller, key_id=key_id)
    policy = (await service.get_key_policy(caller=caller, key_id=key_id))["policy"]
    await service.put_key_policy(caller=caller, key_id=key_id, policy=policy)
    await service.list_aliases(caller=caller, key_id=key_id)
    # Refused while pending deletion, allowed otherwise.
    changes = (
        lambda: service.update_key_description(caller=caller, key_id=key_id, description="d"),
        lambda: service.tag_resource(caller=caller, key_id=key_id, tags=[{"tag_key": "k", "tag_value": "v"}]),
        lambda: service.untag_resource(caller=caller, key_id=key_id, tag_keys=["k"]),
        lambda: service.create_alias(caller=caller, alias_name=f"alias/state-{state}", target_key_id=key_id),
        lambda: service.schedule_key_deletion(caller=caller, key_id=key_id),
    )
    for change in changes:
        if state == "PendingDeletion":
            with pytest.raises(KmsInvalidStateError):
                await change()
        else:
            await change()


@pytest.mark.parametrize("state", STATES)
async def test_cancel_key_deletion_only_when_pending(service: KmsService, caller: Caller, state: str) -> None:
    key_id = await key_in_state(service, caller, state)
    if state != "PendingDeletion":
        with pytest.raises(KmsInvalidStateError):
            await service.cancel_key_deletion(caller=caller, key_id=key_id)
        return
    result = await service.cancel_key_deletion(caller=caller, key_id=key_id)
    assert result["key_id"].endswith(key_id)
    meta = (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]
    assert meta["key_state"] == "Disabled"  # AWS returns a cancelled key Disabled
    assert "deletion_date" not in meta


async def test_cancelled_deletion_of_a_key_without_material_is_pending_import(
    service: KmsService, caller: Caller
) -> None:
    key_id = await key_in_state(service, caller, "PendingImport")
    await service.schedule_key_deletion(caller=caller, key_id=key_id)
    assert await state_of(service, caller, key_id) == "PendingDeletion"
    await service.cancel_key_deletion(caller=caller, key_id=key_id)
    assert await state_of(service, caller, key_id) == "PendingImport"


# -- deletion ------------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [0, 1, 6, 31, 365])
async def test_pending_window_outside_7_to_30_is_a_validation_error(
    service: KmsService, caller: Caller, days: int
) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    with pytest.raises(ValidationError, match="pendingWindowInDays"):
        await service.schedule_key_deletion(caller=caller, key_id=key_id, pending_window_in_days=days)
    assert await state_of(service, caller, key_id) == "Enabled"


async def test_schedule_key_deletion_reports_the_date(service: KmsService, caller: Caller, clock: FakeClock) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    result = await service.schedule_key_deletion(caller=caller, key_id=key_id)
    assert result["key_state"] == "PendingDeletion"
    assert result["pending_window_in_days"] == 30
    assert result["deletion_date"] == clock.now() + 30 * DAY
    assert result["key_id"] == f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key_id}"
    meta = (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]
    assert meta["key_state"] == "PendingDeletion" and meta["enabled"] is False
    assert meta["deletion_date"] == clock.now() + 30 * DAY
    assert "pending_deletion_window_in_days" not in meta  # a multi-Region-only field


def _rows(count_stored: Callable[[str, str], int], key_id: str) -> dict[str, int]:
    return {table: count_stored(table, key_id) for table in ("keys", "materials", "aliases")}


async def test_deletion_after_the_window_destroys_key_material(
    service: KmsService, caller: Caller, clock: FakeClock, count_stored: Callable[[str, str], int]
) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    await service.rotate_key_on_demand(caller=caller, key_id=key_id)
    await service.create_alias(caller=caller, alias_name="alias/doomed", target_key_id=key_id)
    blob = (await service.encrypt(caller=caller, key_id=key_id, plaintext=b"gone")).ciphertext_blob
    await service.schedule_key_deletion(caller=caller, key_id=key_id, pending_window_in_days=7)
    assert _rows(count_stored, key_id) == {"keys": 1, "materials": 2, "aliases": 1}

    clock.advance(7 * DAY - 1)
    assert (await service.run_due()).deleted == ()
    assert await state_of(service, caller, key_id) == "PendingDeletion"

    clock.advance(1)
    assert (await service.run_due()).deleted == (key_id,)
    assert _rows(count_stored, key_id) == {"keys": 0, "materials": 0, "aliases": 0}
    with pytest.raises(NotFoundError):
        await service.describe_key(caller=caller, key_id=key_id)
    with pytest.raises(NotFoundError):
        await service.describe_key(caller=caller, key_id="alias/doomed")
    with pytest.raises(NotFoundError, match="does not exist"):
        await service.decrypt(caller=caller, ciphertext_blob=blob)
    listed = await service.list_keys(caller=caller)
    assert key_id not in {k["key_id"] for k in listed["keys"]}
    assert (await service.run_due()).deleted == ()


async def test_cancelled_deletion_is_not_carried_out(service: KmsService, caller: Caller, clock: FakeClock) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    await service.schedule_key_deletion(caller=caller, key_id=key_id, pending_window_in_days=7)
    await service.cancel_key_deletion(caller=caller, key_id=key_id)
    clock.advance(8 * DAY)
    assert (await service.run_due()).deleted == ()
    await service.enable_key(caller=caller, key_id=key_id)
    await service.encrypt(caller=caller, key_id=key_id, plaintext=b"alive")


# -- descriptions, tags, policies ------------------------------------------------------------------


async def test_update_key_description(service: KmsService, caller: Caller) -> None:
    key_id = (await new_key(service, caller, description="before"))["key_id"]
    await service.update_key_description(caller=caller, key_id=key_id, description="after")
    meta = (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]
    assert meta["description"] == "after"


async def test_tags_add_replace_remove_and_limits(service: KmsService, caller: Caller) -> None:
    key_id = (await new_key(service, caller, tags=[{"tag_key": "team", "tag_value": "a"}]))["key_id"]
    await service.tag_resource(
        caller=caller, key_id=key_id, tags=[{"tag_key": "team", "tag_value": "b"}, {"tag_key": "env", "tag_value": ""}]
    )
    tags = (await service.list_resource_tags(caller=caller, key_id=key_id))["tags"]
    assert tags == [{"tag_key": "env", "tag_value": ""}, {"tag_key": "team", "tag_value": "b"}]
    await service.untag_resource(caller=caller, key_id=key_id, tag_keys=["team", "absent"])
    tags = (await service.list_resource_tags(caller=caller, key_id=key_id))["tags"]
    assert tags == [{"tag_key": "env", "tag_value": ""}]
    with pytest.raises(TagError):
        await service.tag_resource(caller=caller, key_id=key_id, tags=[{"tag_key": "aws:x", "tag_value": "v"}])
    many = [{"tag_key": f"k{i:02d}", "tag_value": "v"} for i in range(50)]
    with pytest.raises(TagError):
        await service.tag_resource(caller=caller, key_id=key_id, tags=many)
    with pytest.raises(TagError):
        await service.create_key(caller=caller, tags=[*many, {"tag_key": "one-more", "tag_value": "v"}])
    page = await service.list_resource_tags(caller=caller, key_id=key_id, limit=1)
    assert page["truncated"] is False


async def test_key_policy_defaults_to_account_root(service: KmsService, caller: Caller) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    result = await service.get_key_policy(caller=caller, key_id=key_id)
    assert result["policy_name"] == "default"
    assert f"arn:aws:iam::{ACCOUNT_ID}:root" in result["policy"]
    assert (await service.list_key_policies(caller=caller, key_id=key_id))["policy_names"] == ["default"]
    with pytest.raises(ValidationError):
        await service.get_key_policy(caller=caller, key_id=key_id, policy_name="other")


# -- aliases ---------------------------------------------------------------------------------------


async def test_alias_lifecycle(service: KmsService, caller: Caller, clock: FakeClock) -> None:
    first = (await new_key(service, caller))["key_id"]
    second = (await new_key(service, caller))["key_id"]
    await service.create_alias(caller=caller, alias_name="alias/app", target_key_id=first)
    with pytest.raises(AlreadyExistsError):
        await service.create_alias(caller=caller, alias_name="alias/app", target_key_id=second)
    blob = (await service.encrypt(caller=caller, key_id="alias/app", plaintext=b"one")).ciphertext_blob
    assert (await service.decrypt(caller=caller, ciphertext_blob=blob)).key_id.endswith(first)

    clock.advance(60)
    await service.update_alias(caller=caller, alias_name="alias/app", target_key_id=second)
    listed = (await service.list_aliases(caller=caller))["aliases"]
    (entry,) = [a for a in listed if a["alias_name"] == "alias/app"]
    assert entry["target_key_id"] == second
    assert entry["alias_arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:alias/app"
    assert entry["last_updated_date"] == entry["creation_date"] + 60
    assert (await service.list_aliases(caller=caller, key_id=first))["aliases"] == []
    by_arn = await service.list_aliases(caller=caller, key_id=f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{second}")
    assert [a["alias_name"] for a in by_arn["aliases"]] == ["alias/app"]

    await service.delete_alias(caller=caller, alias_name="alias/app")
    with pytest.raises(NotFoundError):
        await service.delete_alias(caller=caller, alias_name="alias/app")
    with pytest.raises(NotFoundError):
        await service.update_alias(caller=caller, alias_name="alias/app", target_key_id=first)
    with pytest.raises(NotFoundError):
        await service.encrypt(caller=caller, key_id="alias/app", plaintext=b"x")


@pytest.mark.parametrize(
    "alias_name", ["alias/aws/mine", "alias/", "alias/has space", "alias/ünicode", "nope/prefix", "alias/a:b"]
)
async def test_invalid_alias_names(service: KmsService, caller: Caller, alias_name: str) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    with pytest.raises(InvalidAliasNameError):
        await service.create_alias(caller=caller, alias_name=alias_name, target_key_id=key_id)


async def test_alias_cannot_target_an_alias_or_a_key_pending_deletion(service: KmsService, caller: Caller) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    await service.create_alias(caller=caller, alias_name="alias/base", target_key_id=key_id)
    with pytest.raises(NotFoundError):
        await service.create_alias(caller=caller, alias_name="alias/chained", target_key_id="alias/base")
    doomed = (await new_key(service, caller))["key_id"]
    await service.schedule_key_deletion(caller=caller, key_id=doomed)
    with pytest.raises(KmsInvalidStateError):
        await service.update_alias(caller=caller, alias_name="alias/base", target_key_id=doomed)


# -- pagination ------------------------------------------------------------------------------------


async def test_list_keys_pages_through_every_key_once(service: KmsService, caller: Caller) -> None:
    created = {(await new_key(service, caller))["key_id"] for _ in range(7)}
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        page = await service.list_keys(caller=caller, limit=3, marker=marker)
        pages += 1
        assert len(page["keys"]) <= 3
        seen.extend(k["key_id"] for k in page["keys"])
        for entry in page["keys"]:
            assert entry["key_arn"].endswith(entry["key_id"])
        if not page["truncated"]:
            assert "next_marker" not in page
            break
        marker = page["next_marker"]
    assert pages == 3
    assert sorted(seen) == sorted(created)
    with pytest.raises(InvalidMarkerError):
        await service.list_keys(caller=caller, marker="%%%not-a-marker")


async def test_list_aliases_pages(service: KmsService, caller: Caller) -> None:
    key_id = (await new_key(service, caller))["key_id"]
    names = [f"alias/page-{i}" for i in range(5)]
    for name in names:
        await service.create_alias(caller=caller, alias_name=name, target_key_id=key_id)
    first = await service.list_aliases(caller=caller, key_id=key_id, limit=2)
    assert first["truncated"] is True
    second = await service.list_aliases(caller=caller, key_id=key_id, limit=2, marker=first["next_marker"])
    third = await service.list_aliases(caller=caller, key_id=key_id, limit=2, marker=second["next_marker"])
    assert third["truncated"] is False
    got = [a["alias_name"] for page in (first, second, third) for a in page["aliases"]]
    assert got == sorted(names)
