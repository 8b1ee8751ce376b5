"""Grants over a real server: a grant permits exactly its operations under its constraints,
retiring and revoking take it away, and the grant operations follow AWS's rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kmsgate.core.principal import account_root
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import open_service
from tests.conftest import ACCOUNT_ID, REGION, start_server

from .conftest import ALICE, BOB, CAROL, AuthzServer, allow, client_as, error_code, key_policy, write_identities


@pytest.fixture
def key_id(authz: AuthzServer) -> str:
    """A key only the root may use; alice may manage grants on it."""
    policy = key_policy(allow(ALICE, ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "GrantAdmin"))
    return str(authz.client().create_key(Policy=policy)["KeyMetadata"]["KeyId"])


def test_a_grant_permits_exactly_its_operations(authz: AuthzServer, key_id: str) -> None:
    bob = authz.client(BOB)
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"
    authz.client(ALICE).create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt", "DescribeKey"])
    blob = bob.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert error_code(bob.describe_key, KeyId=key_id) is None
    assert error_code(bob.decrypt, CiphertextBlob=blob) == "AccessDeniedException"
    assert error_code(bob.generate_data_key, KeyId=key_id, KeySpec="AES_256") == "AccessDeniedException"
    assert error_code(bob.disable_key, KeyId=key_id) == "AccessDeniedException"
    # Only the grantee: carol gains nothing.
    assert error_code(authz.client(CAROL).encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"


def test_encryption_context_subset_constraint(authz: AuthzServer, key_id: str) -> None:
    authz.client().create_grant(
        KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["GenerateDataKey", "Decrypt"],
        Constraints={"EncryptionContextSubset": {"tenant": "a"}},
    )
    bob = authz.client(BOB)
    ok = bob.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"tenant": "a", "file": "1"})
    assert error_code(bob.decrypt, CiphertextBlob=ok["CiphertextBlob"],
                      EncryptionContext={"tenant": "a", "file": "1"}) is None
    assert error_code(bob.generate_data_key, KeyId=key_id, KeySpec="AES_256",
                      EncryptionContext={"tenant": "b"}) == "AccessDeniedException"
    assert error_code(bob.generate_data_key, KeyId=key_id, KeySpec="AES_256") == "AccessDeniedException"


def test_encryption_context_equals_constraint(authz: AuthzServer, key_id: str) -> None:
    authz.client().create_grant(
        KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt"],
        Constraints={"EncryptionContextEquals": {"tenant": "a"}},
    )
    bob = authz.client(BOB)
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"}) is None
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x",
                      EncryptionContext={"tenant": "a", "extra": "1"}) == "AccessDeniedException"
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "A"}) == (
        "AccessDeniedException"
    )


def test_retire_grant_by_token_then_denied(authz: AuthzServer, key_id: str) -> None:
    created = authz.client().create_grant(
        KeyId=key_id, GranteePrincipal=BOB.arn, RetiringPrincipal=CAROL.arn, Operations=["Encrypt"]
    )
    bob = authz.client(BOB)
    # The token can be used at once, as AWS's eventual-consistency workaround.
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x", GrantTokens=[created["GrantToken"]]) is None
    # The grantee without RetireGrant in the grant may not retire it; the retiring principal may.
    assert error_code(bob.retire_grant, GrantToken=created["GrantToken"]) == "AccessDeniedException"
    authz.client(CAROL).retire_grant(GrantToken=created["GrantToken"])
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"
    assert error_code(authz.client(CAROL).retire_grant, GrantToken=created["GrantToken"]) == "NotFoundException"


def test_grantee_retires_by_key_and_grant_id_when_the_grant_allows(authz: AuthzServer, key_id: str) -> None:
    created = authz.client().create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt", "RetireGrant"])
    key_arn = authz.client().describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    bob = authz.client(BOB)
    bob.retire_grant(KeyId=key_arn, GrantId=created["GrantId"])
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"


def test_a_principal_cannot_retire_another_principals_grant(authz: AuthzServer, key_id: str) -> None:
    root, bob, carol = authz.client(), authz.client(BOB), authz.client(CAROL)
    key_arn = root.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    bobs = root.create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt", "RetireGrant"])
    carols = root.create_grant(KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["Encrypt", "RetireGrant"])
    # Bob's grant lets him retire his own grant only, however carol's grant is named.
    assert error_code(bob.retire_grant, KeyId=key_arn, GrantId=carols["GrantId"]) == "AccessDeniedException"
    assert error_code(bob.retire_grant, GrantToken=carols["GrantToken"]) == "AccessDeniedException"
    # A token names one grant: bob's own token does not reach carol's grant.
    assert error_code(bob.retire_grant, GrantToken=bobs["GrantToken"], GrantId=carols["GrantId"]) == (
        "ValidationException"
    )
    assert error_code(carol.encrypt, KeyId=key_id, Plaintext=b"x") is None
    assert {g["GrantId"] for g in root.list_grants(KeyId=key_id)["Grants"]} == {bobs["GrantId"], carols["GrantId"]}
    carol.retire_grant(GrantToken=carols["GrantToken"])
    bob.retire_grant(KeyId=key_arn, GrantId=bobs["GrantId"])
    assert root.list_grants(KeyId=key_id)["Grants"] == []


def test_the_key_policy_may_allow_retiring_any_grant_on_the_key(authz: AuthzServer) -> None:
    root = authz.client()
    policy = key_policy(allow(ALICE, ["kms:RetireGrant"], "GrantJanitor"))
    key_arn = root.create_key(Policy=policy)["KeyMetadata"]["Arn"]
    for_bob = root.create_grant(KeyId=key_arn, GranteePrincipal=BOB.arn, Operations=["Encrypt"])
    for_carol = root.create_grant(KeyId=key_arn, GranteePrincipal=CAROL.arn, Operations=["Decrypt"])
    alice = authz.client(ALICE)
    alice.retire_grant(KeyId=key_arn, GrantId=for_bob["GrantId"])
    alice.retire_grant(GrantToken=for_carol["GrantToken"])
    assert root.list_grants(KeyId=key_arn)["Grants"] == []
    # The account root may always retire (kmsgate never locks the root out).
    again = root.create_grant(KeyId=key_arn, GranteePrincipal=BOB.arn, Operations=["Encrypt"])
    root.retire_grant(KeyId=key_arn, GrantId=again["GrantId"])
    assert error_code(authz.client(BOB).encrypt, KeyId=key_arn, Plaintext=b"x") == "AccessDeniedException"


def test_revoke_grant_then_denied(authz: AuthzServer, key_id: str) -> None:
    alice, bob = authz.client(ALICE), authz.client(BOB)
    grant_id = alice.create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt"])["GrantId"]
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x") is None
    assert error_code(bob.revoke_grant, KeyId=key_id, GrantId=grant_id) == "AccessDeniedException"
    alice.revoke_grant(KeyId=key_id, GrantId=grant_id)
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"
    assert error_code(alice.revoke_grant, KeyId=key_id, GrantId=grant_id) == "NotFoundException"
    assert error_code(alice.revoke_grant, KeyId=key_id, GrantId="not-a-grant-id") == "InvalidGrantIdException"


def test_create_grant_needs_permission(authz: AuthzServer, key_id: str) -> None:
    assert error_code(
        authz.client(CAROL).create_grant, KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["Decrypt"]
    ) == "AccessDeniedException"


def test_a_grantee_with_create_grant_may_only_pass_on_narrower_grants(authz: AuthzServer, key_id: str) -> None:
    authz.client().create_grant(
        KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt", "Decrypt", "CreateGrant"],
        Constraints={"EncryptionContextSubset": {"tenant": "a"}},
    )
    bob = authz.client(BOB)
    assert error_code(bob.create_grant, KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["Encrypt"],
                      Constraints={"EncryptionContextSubset": {"tenant": "a"}}) is None
    assert error_code(bob.create_grant, KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["Encrypt"]) == (
        "AccessDeniedException"
    )
    assert error_code(bob.create_grant, KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["GenerateDataKey"],
                      Constraints={"EncryptionContextSubset": {"tenant": "a"}}) == "AccessDeniedException"
    carol = authz.client(CAROL)
    assert error_code(carol.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"}) is None


def test_grant_constraints_do_not_accept_a_context_key_in_another_case(authz: AuthzServer, key_id: str) -> None:
    root = authz.client()
    root.create_grant(KeyId=key_id, GranteePrincipal=ALICE.arn, Operations=["Encrypt"],
                      Constraints={"EncryptionContextSubset": {"tenant": "alice"}})
    root.create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Decrypt"],
                      Constraints={"EncryptionContextSubset": {"tenant": "bob"}})
    alice, bob = authz.client(ALICE), authz.client(BOB)
    # alice, limited to tenant=alice, cannot make a ciphertext that bob's grant takes for tenant=bob.
    for forged in ({"tenant": "bob", "TENANT": "alice"}, {"TENANT": "alice", "tenant": "bob"}, {"Tenant": "alice"}):
        assert error_code(alice.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext=forged) == (
            "AccessDeniedException"
        )
    blob = root.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"TENANT": "bob"})["CiphertextBlob"]
    assert error_code(bob.decrypt, CiphertextBlob=blob, EncryptionContext={"TENANT": "bob"}) == "AccessDeniedException"
    assert error_code(alice.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "alice"}) is None


def test_a_grantee_cannot_create_a_grant_looser_than_its_own(authz: AuthzServer, key_id: str) -> None:
    authz.client().create_grant(
        KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Decrypt", "CreateGrant"],
        Constraints={"EncryptionContextEquals": {"tenant": "a"}},
    )
    bob = authz.client(BOB)
    for looser in ({"EncryptionContextEquals": {"TENANT": "a"}}, {"EncryptionContextSubset": {"tenant": "a"}}, None):
        constraints = {} if looser is None else {"Constraints": looser}
        assert error_code(bob.create_grant, KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["Decrypt"],
                          **constraints) == "AccessDeniedException"
    assert error_code(bob.create_grant, KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["Decrypt"],
                      Constraints={"EncryptionContextEquals": {"tenant": "a"}}) is None


def test_name_makes_create_grant_idempotent(authz: AuthzServer, key_id: str) -> None:
    root = authz.client()
    request = dict(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt"], Name="app-encrypt")
    first, second = root.create_grant(**request), root.create_grant(**request)
    assert first["GrantId"] == second["GrantId"]
    other = root.create_grant(**{**request, "Operations": ["Decrypt"]})
    assert other["GrantId"] != first["GrantId"]
    assert len(root.list_grants(KeyId=key_id)["Grants"]) == 2


def test_create_grant_beyond_500_grants_for_one_grantee_on_a_key_is_limit_exceeded(authz: AuthzServer) -> None:
    root = authz.client()
    key_id = root.create_key()["KeyMetadata"]["KeyId"]
    named = root.create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt"], Name="first")
    for _ in range(499):
        root.create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt"])
    try:
        root.create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Decrypt"])
    except root.exceptions.LimitExceededException as exc:
        assert "Grants for a given principal per KMS key (500)" in exc.response["Error"]["Message"]
    else:
        raise AssertionError("the 501st grant for one grantee was created")
    # A named repeat of an existing grant counts nothing; other grantees are not affected.
    again = root.create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt"], Name="first")
    assert again["GrantId"] == named["GrantId"]
    assert error_code(root.create_grant, KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["Decrypt"]) is None
    # Retiring one makes room for one.
    root.retire_grant(GrantToken=named["GrantToken"])
    assert error_code(root.create_grant, KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Decrypt"]) is None
    assert error_code(root.create_grant, KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Decrypt"]) == (
        "LimitExceededException"
    )
    listed = root.get_paginator("list_grants").paginate(KeyId=key_id, GranteePrincipal=BOB.arn)
    assert sum(len(page["Grants"]) for page in listed) == 500


def test_list_grants_filters_and_pages(authz: AuthzServer, key_id: str) -> None:
    alice = authz.client(ALICE)
    ids = {
        alice.create_grant(KeyId=key_id, GranteePrincipal=who.arn, Operations=["Encrypt"],
                           Constraints={"EncryptionContextEquals": {"n": str(n)}})["GrantId"]
        for n, who in enumerate((BOB, BOB, CAROL))
    }
    listed = alice.list_grants(KeyId=key_id)["Grants"]
    assert {grant["GrantId"] for grant in listed} == ids
    entry = listed[0]
    assert entry["KeyId"].startswith("arn:aws:kms:") and entry["Operations"] == ["Encrypt"]
    assert entry["IssuingAccount"].endswith(":root") and "EncryptionContextEquals" in entry["Constraints"]
    assert len(alice.list_grants(KeyId=key_id, GranteePrincipal=BOB.arn)["Grants"]) == 2
    one = next(iter(ids))
    assert [g["GrantId"] for g in alice.list_grants(KeyId=key_id, GrantId=one)["Grants"]] == [one]
    first = alice.list_grants(KeyId=key_id, Limit=2)
    assert first["Truncated"] and len(first["Grants"]) == 2
    rest = alice.list_grants(KeyId=key_id, Limit=2, Marker=first["NextMarker"])
    assert not rest["Truncated"]
    assert {g["GrantId"] for g in first["Grants"] + rest["Grants"]} == ids
    paginated = [g["GrantId"] for page in alice.get_paginator("list_grants").paginate(KeyId=key_id) for g in page["Grants"]]
    assert set(paginated) == ids
    assert error_code(authz.client(BOB).list_grants, KeyId=key_id) == "AccessDeniedException"


def test_list_retirable_grants_lists_only_the_callers_own(authz: AuthzServer, key_id: str) -> None:
    grant_id = authz.client().create_grant(
        KeyId=key_id, GranteePrincipal=BOB.arn, RetiringPrincipal=CAROL.arn, Operations=["Decrypt"]
    )["GrantId"]
    carol = authz.client(CAROL)
    own = carol.list_retirable_grants(RetiringPrincipal=CAROL.arn)["Grants"]
    assert grant_id in {grant["GrantId"] for grant in own}
    assert all(grant["RetiringPrincipal"] == CAROL.arn for grant in own)
    assert error_code(authz.client(BOB).list_retirable_grants, RetiringPrincipal=CAROL.arn) == "AccessDeniedException"
    root_view = authz.client().list_retirable_grants(RetiringPrincipal=CAROL.arn)["Grants"]
    assert grant_id in {grant["GrantId"] for grant in root_view}


def test_grant_requests_are_validated(authz: AuthzServer, key_id: str) -> None:
    root = authz.client()
    assert error_code(root.create_grant, KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Fly"]) == (
        "ValidationException"
    )
    assert error_code(root.create_grant, KeyId=key_id, GranteePrincipal="bob", Operations=["Encrypt"]) == (
        "ValidationException"
    )
    assert error_code(authz.client(BOB).encrypt, KeyId=key_id, Plaintext=b"x", GrantTokens=["not-a-token"]) == (
        "InvalidGrantTokenException"
    )
    assert error_code(root.create_grant, KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["Encrypt"],
                      DryRun=True) == "DryRunOperationException"
    assert root.list_grants(KeyId=key_id)["Grants"] == []


def test_grants_survive_a_restart(tmp_path: Path) -> None:
    """Grants are stored: the server restarted on the same data dir still has them."""
    server = start_server(tmp_path / "data", "--identities", str(write_identities(tmp_path)))
    try:
        root = server.kms_client()
        key = root.create_key()["KeyMetadata"]["KeyId"]
        root.create_grant(KeyId=key, GranteePrincipal=BOB.arn, Operations=["Encrypt"])
        server.stop()
        server.start()
        assert len(server.kms_client().list_grants(KeyId=key)["Grants"]) == 1
        assert error_code(client_as(server, BOB).encrypt, KeyId=key, Plaintext=b"x") is None
    finally:
        server.stop()


async def test_grants_are_deleted_with_their_key(tmp_path: Path) -> None:
    """Service level (no server: the 7-day deletion window needs a clock the test can move)."""
    clock = FakeClock()
    service = open_service(tmp_path, RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID, clock=clock)
    try:
        root = account_root(ACCOUNT_ID)
        key_id = (await service.create_key(caller=root))["key_metadata"]["key_id"]
        await service.create_grant(caller=root, key_id=key_id, grantee_principal=BOB.arn, operations=["Encrypt"])
        key_arn = service.namespace.key_arn(key_id)
        assert len(service.grants_for(key_arn)) == 1
        await service.schedule_key_deletion(caller=root, key_id=key_id, pending_window_in_days=7)
        clock.advance(8 * 86400)
        assert key_id in (await service.run_due()).deleted
        assert service.grants_for(key_arn) == ()
        assert service._store.mutate(lambda tx: tx.grants_of(key_id)) == []
    finally:
        service.close()


def test_grant_lifecycle_with_the_aws_cli(authz: AuthzServer, key_id: str) -> None:
    created = authz.aws(ALICE, "create-grant", "--key-id", key_id, "--grantee-principal", BOB.arn,
                        "--operations", "Encrypt", "Decrypt")
    assert created.returncode == 0, created.stderr
    grant_id = json.loads(created.stdout)["GrantId"]
    assert error_code(authz.client(BOB).encrypt, KeyId=key_id, Plaintext=b"x") is None
    listed = authz.aws(ALICE, "list-grants", "--key-id", key_id)
    assert listed.returncode == 0, listed.stderr
    assert [g["GrantId"] for g in json.loads(listed.stdout)["Grants"]] == [grant_id]
    denied = authz.aws(BOB, "revoke-grant", "--key-id", key_id, "--grant-id", grant_id)
    assert denied.returncode != 0 and "AccessDeniedException" in denied.stderr
    revoked = authz.aws(ALICE, "revoke-grant", "--key-id", key_id, "--grant-id", grant_id)
    assert revoked.returncode == 0, revoked.stderr
    assert error_code(authz.client(BOB).encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"
