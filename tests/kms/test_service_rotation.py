"""Service-layer tests (no HTTP) for automatic and on-demand rotation, on a FakeClock."""

from __future__ import annotations

import pytest

from kmsgate.core.errors import DisabledError, KmsInvalidStateError, LimitExceededError, UnsupportedOperationError
from kmsgate.core.principal import Caller
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.service import KmsService

DAY = 86400.0


async def new_key_id(service: KmsService, caller: Caller) -> str:
    return (await service.create_key(caller=caller))["key_metadata"]["key_id"]  # type: ignore[no-any-return]


async def current_material(service: KmsService, caller: Caller, key_id: str) -> str:
    return (await service.describe_key(caller=caller, key_id=key_id))["key_metadata"]["current_key_material_id"]  # type: ignore[no-any-return]


async def test_rotation_status_defaults_off(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    status = await service.get_key_rotation_status(caller=caller, key_id=key_id)
    assert status["key_rotation_enabled"] is False
    assert status["key_id"].endswith(key_id)
    assert "next_rotation_date" not in status
    assert (await service.list_key_rotations(caller=caller, key_id=key_id))["rotations"] == []


async def test_automatic_rotation_on_schedule(service: KmsService, caller: Caller, clock: FakeClock) -> None:
    key_id = await new_key_id(service, caller)
    first_material = await current_material(service, caller, key_id)
    old = await service.encrypt(caller=caller, key_id=key_id, plaintext=b"old", encryption_context={"c": "1"})
    await service.enable_key_rotation(caller=caller, key_id=key_id, rotation_period_in_days=90)
    status = await service.get_key_rotation_status(caller=caller, key_id=key_id)
    assert status["key_rotation_enabled"] is True
    assert status["rotation_period_in_days"] == 90
    assert status["next_rotation_date"] == clock.now() + 90 * DAY

    clock.advance(90 * DAY - 1)
    assert (await service.run_due()).rotated == ()
    clock.advance(1)
    assert (await service.run_due()).rotated == (key_id,)
    assert (await service.run_due()).rotated == ()

    second_material = await current_material(service, caller, key_id)
    assert second_material != first_material
    status = await service.get_key_rotation_status(caller=caller, key_id=key_id)
    assert status["next_rotation_date"] == clock.now() + 90 * DAY
    (entry,) = (await service.list_key_rotations(caller=caller, key_id=key_id))["rotations"]
    assert entry["rotation_type"] == "AUTOMATIC"
    assert entry["key_material_id"] == second_material
    assert entry["rotation_date"] == clock.now()

    # the old ciphertext still decrypts under the old material; new ones use the new material
    decrypted = await service.decrypt(caller=caller, ciphertext_blob=old.ciphertext_blob, encryption_context={"c": "1"})
    assert decrypted.plaintext == b"old" and decrypted.key_material_id == first_material
    new = await service.generate_data_key(caller=caller, key_id=key_id, key_spec="AES_256")
    assert new.key_material_id == second_material


async def test_disabled_rotation_and_disabled_keys_do_not_rotate(
    service: KmsService, caller: Caller, clock: FakeClock
) -> None:
    off = await new_key_id(service, caller)
    disabled = await new_key_id(service, caller)
    for key_id in (off, disabled):
        await service.enable_key_rotation(caller=caller, key_id=key_id, rotation_period_in_days=90)
    await service.disable_key_rotation(caller=caller, key_id=off)
    await service.disable_key(caller=caller, key_id=disabled)
    clock.advance(400 * DAY)
    assert (await service.run_due()).rotated == ()
    assert (await service.get_key_rotation_status(caller=caller, key_id=off))["key_rotation_enabled"] is False
    await service.enable_key(caller=caller, key_id=disabled)
    assert (await service.run_due()).rotated == (disabled,)


async def test_on_demand_rotation_and_reencrypt_to_newest(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    materials = [await current_material(service, caller, key_id)]
    blobs = []
    for round_ in range(3):
        blobs.append((await service.encrypt(caller=caller, key_id=key_id, plaintext=b"v%d" % round_)).ciphertext_blob)
        result = await service.rotate_key_on_demand(caller=caller, key_id=key_id)
        assert result["key_id"].endswith(key_id)
        materials.append(await current_material(service, caller, key_id))
    assert len(set(materials)) == 4
    for round_, blob in enumerate(blobs):
        decrypted = await service.decrypt(caller=caller, ciphertext_blob=blob)
        assert decrypted.plaintext == b"v%d" % round_ and decrypted.key_material_id == materials[round_]
        moved = await service.re_encrypt(caller=caller, ciphertext_blob=blob, destination_key_id=key_id)
        assert moved.source_key_material_id == materials[round_]
        assert moved.destination_key_material_id == materials[-1]
        assert (await service.decrypt(caller=caller, ciphertext_blob=moved.ciphertext_blob)).key_material_id == materials[-1]
    rotations = (await service.list_key_rotations(caller=caller, key_id=key_id))["rotations"]
    assert [r["key_material_id"] for r in rotations] == materials[1:]
    assert {r["rotation_type"] for r in rotations} == {"ON_DEMAND"}
    every = await service.list_key_rotations(caller=caller, key_id=key_id, include_key_material="ALL_KEY_MATERIAL")
    states = [r["key_material_state"] for r in every["rotations"]]
    assert states == ["NON_CURRENT"] * 3 + ["CURRENT"]


async def test_list_key_rotations_pages(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    for _ in range(5):
        await service.rotate_key_on_demand(caller=caller, key_id=key_id)
    ids: list[str] = []
    marker = None
    while True:
        page = await service.list_key_rotations(caller=caller, key_id=key_id, limit=2, marker=marker)
        ids.extend(r["key_material_id"] for r in page["rotations"])
        if not page["truncated"]:
            break
        marker = page["next_marker"]
    assert len(ids) == len(set(ids)) == 5


async def test_on_demand_rotation_limit(service: KmsService, caller: Caller) -> None:
    key_id = await new_key_id(service, caller)
    for _ in range(25):
        await service.rotate_key_on_demand(caller=caller, key_id=key_id)
    with pytest.raises(LimitExceededError):
        await service.rotate_key_on_demand(caller=caller, key_id=key_id)


async def test_rotation_state_rules(service: KmsService, caller: Caller) -> None:
    disabled = await new_key_id(service, caller)
    await service.disable_key(caller=caller, key_id=disabled)
    for call in (service.enable_key_rotation, service.disable_key_rotation, service.rotate_key_on_demand):
        with pytest.raises(DisabledError):
            await call(caller=caller, key_id=disabled)
    pending = await new_key_id(service, caller)
    await service.schedule_key_deletion(caller=caller, key_id=pending)
    for call in (service.enable_key_rotation, service.disable_key_rotation, service.rotate_key_on_demand):
        with pytest.raises(KmsInvalidStateError):
            await call(caller=caller, key_id=pending)
    external = (await service.create_key(caller=caller, origin="EXTERNAL"))["key_metadata"]["key_id"]
    for call in (
        service.enable_key_rotation,
        service.disable_key_rotation,
        service.rotate_key_on_demand,
        service.get_key_rotation_status,
    ):
        with pytest.raises(UnsupportedOperationError):
            await call(caller=caller, key_id=external)
