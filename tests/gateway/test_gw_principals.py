"""Per-caller data-key caches (``kmsgate.gateway.principals``) over an in-process KMS service.

The service is real (``open_service`` on a temporary directory, no authorizer: every caller is
allowed), so these tests see which identity each KMS call acted as and how the caches are kept
apart and bounded; who is *allowed* what is tested against a real server in ``tests/gateway_auth``.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway_harness import ACCOUNT_ID, REGION, create_key

from kmsgate.core.principal import Caller
from kmsgate.envelope.kms_client import InProcessKmsClient, KmsClient
from kmsgate.envelope.materials import decrypt_message, encrypt_message
from kmsgate.gateway.principals import CallerMaterials
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import open_service


def caller(name: str, source_ip: str = "127.0.0.1", access_key_id: str | None = None) -> Caller:
    return Caller(f"arn:aws:iam::{ACCOUNT_ID}:user/{name}", ACCOUNT_ID, access_key_id, source_ip)


async def test_each_identity_gets_its_own_caches_and_kms_identity(tmp_path: Path) -> None:
    service = open_service(tmp_path / "kms", RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID)
    key_arn = await create_key(service)
    asked: list[Caller] = []

    def kms_for(who: Caller) -> KmsClient:
        asked.append(who)
        return InProcessKmsClient(service, who)

    shared = InProcessKmsClient(service, caller("gateway"))
    materials = CallerMaterials(shared_kms=shared, kms_for=kms_for)
    alice = caller("alice", access_key_id="AKIAALICE00000000001")
    a1 = materials.for_caller(alice)
    assert materials.for_caller(caller("alice", access_key_id="AKIAALICE00000000002")) is a1
    assert materials.for_caller(caller("alice", source_ip="10.0.0.9")) is not a1
    b = materials.for_caller(caller("bob"))
    assert b is not a1
    # The KMS sees the principal and source address, never which access key signed the first request.
    assert [(c.arn, c.source_ip, c.access_key_id) for c in asked] == [
        (alice.arn, "127.0.0.1", None), (alice.arn, "10.0.0.9", None), (caller("bob").arn, "127.0.0.1", None)]

    message = await encrypt_message(a1, b"alice's data", key_id=key_arn)
    assert (await decrypt_message(a1, message)).plaintext == b"alice's data"
    assert len(a1.cache) == 1 and len(a1.decrypt_cache) == 1
    assert len(b.cache) == 0 and len(b.decrypt_cache) == 0
    assert (await decrypt_message(b, message)).plaintext == b"alice's data"
    assert b.stats.kms_calls == 1  # bob's read went to the KMS as bob
    await materials.aclose()
    service.close()


async def test_identities_are_bounded_and_evicted_counters_still_count(tmp_path: Path) -> None:
    service = open_service(tmp_path / "kms", RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID)
    key_arn = await create_key(service)
    materials = CallerMaterials(shared_kms=InProcessKmsClient(service, caller("gateway")),
                                kms_for=lambda who: InProcessKmsClient(service, who), max_identities=2)
    first = materials.for_caller(caller("u0"))
    await encrypt_message(first, b"x", key_id=key_arn)
    await encrypt_message(first, b"y", key_id=key_arn)
    for i in range(1, 4):
        await encrypt_message(materials.for_caller(caller(f"u{i}")), b"z", key_id=key_arn)
    assert len(materials) == 2
    assert materials.for_caller(caller("u0")) is not first  # evicted, built anew
    delta = materials.take_stats()
    assert (delta.misses, delta.hits) == (4, 1)  # u0's miss and hit survive its eviction
    assert materials.take_stats().misses == 0
    await materials.aclose()
    service.close()


async def test_without_a_per_caller_factory_everyone_shares_one_cache(tmp_path: Path) -> None:
    service = open_service(tmp_path / "kms", RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID)
    materials = CallerMaterials(shared_kms=InProcessKmsClient(service, caller("gateway")))
    assert materials.for_caller(caller("a")) is materials.for_caller(caller("b", source_ip="10.1.1.1"))
    assert not materials.per_caller and len(materials) == 0
    await materials.aclose()
    service.close()
