"""Key policies enforced by a real server: per-principal allow/deny for each operation class,
Deny over Allow, encryption-context and alias conditions, validation and the lockout check."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import ALICE, BOB, CAROL, ROOT_ARN, AuthzServer, allow, deny, error_code, key_policy

ADMIN_CALLS = ("DescribeKey", "DisableKey", "EnableKey", "GetKeyPolicy", "UpdateKeyDescription", "ListResourceTags")
CRYPTO_CALLS = ("Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "Decrypt", "ReEncrypt")


def _key(authz: AuthzServer, policy: str) -> str:
    return str(authz.client().create_key(Policy=policy)["KeyMetadata"]["KeyId"])


def _call(client: Any, operation: str, key_id: str, blob: bytes, context: dict[str, str] | None = None) -> str | None:
    ctx = {"EncryptionContext": context} if context is not None else {}
    calls = {
        "DescribeKey": lambda: client.describe_key(KeyId=key_id),
        "DisableKey": lambda: client.disable_key(KeyId=key_id),
        "EnableKey": lambda: client.enable_key(KeyId=key_id),
        "GetKeyPolicy": lambda: client.get_key_policy(KeyId=key_id, PolicyName="default"),
        "UpdateKeyDescription": lambda: client.update_key_description(KeyId=key_id, Description="d"),
        "ListResourceTags": lambda: client.list_resource_tags(KeyId=key_id),
        "Encrypt": lambda: client.encrypt(KeyId=key_id, Plaintext=b"secret", **ctx),
        "GenerateDataKey": lambda: client.generate_data_key(KeyId=key_id, KeySpec="AES_256", **ctx),
        "GenerateDataKeyWithoutPlaintext": lambda: client.generate_data_key_without_plaintext(
            KeyId=key_id, KeySpec="AES_256", **ctx
        ),
        "Decrypt": lambda: client.decrypt(CiphertextBlob=blob, **ctx),
        "ReEncrypt": lambda: client.re_encrypt(
            CiphertextBlob=blob, DestinationKeyId=key_id,
            **({"SourceEncryptionContext": context, "DestinationEncryptionContext": context} if context else {}),
        ),
    }
    return error_code(calls[operation])


@pytest.fixture(scope="module")
def split_key(authz: AuthzServer) -> tuple[str, bytes]:
    """alice administers, bob uses, carol is not named; a ciphertext under the key."""
    admin_actions = ["kms:Describe*", "kms:Enable*", "kms:Disable*", "kms:Get*", "kms:Update*", "kms:List*"]
    user_actions = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]
    key_id = _key(authz, key_policy(allow(ALICE, admin_actions, "Admins"), allow(BOB, user_actions, "Users")))
    blob = authz.client().encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    return key_id, blob


@pytest.mark.parametrize("operation", ADMIN_CALLS + CRYPTO_CALLS)
def test_each_operation_follows_the_key_policy_per_principal(
    authz: AuthzServer, split_key: tuple[str, bytes], operation: str
) -> None:
    key_id, blob = split_key
    outcomes = {who.name: _call(authz.client(who), operation, key_id, blob) for who in (ALICE, BOB, CAROL)}
    admin_allowed = operation in ADMIN_CALLS
    assert outcomes["alice"] == (None if admin_allowed else "AccessDeniedException")
    assert outcomes["bob"] == ("AccessDeniedException" if admin_allowed else None)
    assert outcomes["carol"] == "AccessDeniedException"
    assert _call(authz.client(), operation, key_id, blob) is None  # the account root may do everything


def test_account_actions_follow_the_identities_file(authz: AuthzServer) -> None:
    # alice has kms:CreateKey and kms:List*; carol has the defaults (listing, no CreateKey).
    assert error_code(authz.client(ALICE).create_key, Policy=key_policy(allow(ALICE, "kms:*"))) is None
    assert error_code(authz.client(CAROL).create_key) == "AccessDeniedException"
    assert error_code(authz.client(CAROL).list_keys) is None
    assert error_code(authz.client(CAROL).list_aliases) is None


def test_explicit_deny_overrides_allow(authz: AuthzServer) -> None:
    key_id = _key(authz, key_policy(allow(BOB, "kms:*"), deny(BOB, ["kms:Decrypt", "kms:Disable*"])))
    bob = authz.client(BOB)
    blob = bob.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert error_code(bob.decrypt, CiphertextBlob=blob) == "AccessDeniedException"
    assert error_code(bob.disable_key, KeyId=key_id) == "AccessDeniedException"
    assert error_code(bob.describe_key, KeyId=key_id) is None
    assert error_code(authz.client().decrypt, CiphertextBlob=blob) is None  # the root is never denied


def test_not_action_allows_everything_else(authz: AuthzServer) -> None:
    statement = {"Sid": "AllButDecrypt", "Effect": "Allow", "Principal": {"AWS": BOB.arn},
                 "NotAction": "kms:Decrypt", "Resource": "*"}
    key_id = _key(authz, key_policy(statement))
    bob = authz.client(BOB)
    blob = bob.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert error_code(bob.decrypt, CiphertextBlob=blob) == "AccessDeniedException"


def test_encryption_context_conditions(authz: AuthzServer) -> None:
    only_tenant_a = allow(
        BOB, ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "TenantA",
        Condition={"StringEquals": {"kms:EncryptionContext:tenant": "a"}},
    )
    keys_limited = allow(
        CAROL, "kms:Encrypt", "KnownKeys",
        Condition={"ForAllValues:StringLike": {"kms:EncryptionContextKeys": ["tenant", "app-*"]},
                   "Null": {"kms:EncryptionContextKeys": "false"}},
    )
    key_id = _key(authz, key_policy(only_tenant_a, keys_limited))
    bob, carol = authz.client(BOB), authz.client(CAROL)
    blob = bob.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"})["CiphertextBlob"]
    assert error_code(bob.decrypt, CiphertextBlob=blob, EncryptionContext={"tenant": "a"}) is None
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "b"}) == (
        "AccessDeniedException"
    )
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"
    assert error_code(bob.generate_data_key, KeyId=key_id, KeySpec="AES_256", EncryptionContext={"tenant": "a"}) is None
    assert error_code(carol.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "z", "app-x": "1"}) is None
    assert error_code(carol.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"other": "1"}) == (
        "AccessDeniedException"
    )
    assert error_code(carol.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"


def test_a_context_key_sent_in_two_cases_must_satisfy_the_condition_in_both(authz: AuthzServer) -> None:
    alice_writes = allow(ALICE, ["kms:Encrypt", "kms:Decrypt"], "TenantAlice",
                         Condition={"StringEquals": {"kms:EncryptionContext:tenant": "alice"}})
    bob_reads = allow(BOB, "kms:Decrypt", "TenantBob",
                      Condition={"StringEquals": {"kms:EncryptionContext:tenant": "bob"}})
    key_id = _key(authz, key_policy(alice_writes, bob_reads))
    alice, bob = authz.client(ALICE), authz.client(BOB)
    for forged in ({"tenant": "bob", "TENANT": "alice"}, {"TENANT": "alice", "tenant": "bob"}):
        assert error_code(alice.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext=forged) == (
            "AccessDeniedException"
        )
        # Made by the root, such a ciphertext does not pass for tenant=bob either.
        blob = authz.client().encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext=forged)["CiphertextBlob"]
        assert error_code(bob.decrypt, CiphertextBlob=blob, EncryptionContext=forged) == "AccessDeniedException"
    # Each tenant's own context still works, and a key sent twice with the same value passes.
    twice = {"tenant": "alice", "Tenant": "alice"}
    blob = alice.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext=twice)["CiphertextBlob"]
    assert error_code(alice.decrypt, CiphertextBlob=blob, EncryptionContext=twice) is None
    blob = authz.client().encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "bob"})["CiphertextBlob"]
    assert error_code(bob.decrypt, CiphertextBlob=blob, EncryptionContext={"tenant": "bob"}) is None


def test_a_pattern_built_to_backtrack_is_matched_at_once(authz: AuthzServer) -> None:
    # As a regular expression, this pattern against a long run of "a" never finishes.
    pattern = "a*" * 2000 + "b"
    statement = allow(BOB, "kms:Encrypt", "Backtracking",
                      Condition={"StringLike": {"kms:EncryptionContext:tenant": pattern}})
    key_id = _key(authz, key_policy(statement))
    bob = authz.client(BOB)
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a" * 6000}) == (
        "AccessDeniedException"
    )
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a" * 6000 + "b"}) is None
    assert error_code(authz.client().describe_key, KeyId=key_id) is None


def test_an_oversized_encryption_context_is_refused_before_any_policy_reads_it(authz: AuthzServer) -> None:
    statement = allow(BOB, "kms:Encrypt", "AnyTenant", Condition={"StringLike": {"kms:EncryptionContext:tenant": "*"}})
    key_id = _key(authz, key_policy(statement))
    oversized = {"tenant": "a" * 9000}
    for who in (BOB, CAROL):  # carol has no Allow: the size is checked first all the same
        assert error_code(authz.client(who).encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext=oversized) == (
            "ValidationException"
        )


def test_request_alias_condition(authz: AuthzServer) -> None:
    statement = allow(BOB, ["kms:Encrypt", "kms:DescribeKey"], "ByAliasOnly",
                      Condition={"StringEquals": {"kms:RequestAlias": "alias/authz-by-alias"}})
    key_id = _key(authz, key_policy(statement))
    authz.client().create_alias(AliasName="alias/authz-by-alias", TargetKeyId=key_id)
    bob = authz.client(BOB)
    assert error_code(bob.encrypt, KeyId="alias/authz-by-alias", Plaintext=b"x") is None
    assert error_code(bob.describe_key, KeyId="alias/authz-by-alias") is None
    assert error_code(bob.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"


def test_policies_are_validated(authz: AuthzServer) -> None:
    root = authz.client()
    key_id = _key(authz, key_policy())
    for bad in ("not json", "{}", json.dumps({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]})):
        assert error_code(root.put_key_policy, KeyId=key_id, PolicyName="default", Policy=bad) == (
            "MalformedPolicyDocumentException"
        )
        assert error_code(root.create_key, Policy=bad) == "MalformedPolicyDocumentException"


def test_lockout_safety_check(authz: AuthzServer) -> None:
    key_id = _key(authz, key_policy(allow(ALICE, "kms:*", "AliceAdmin")))
    alice = authz.client(ALICE)
    locks_alice_out = key_policy(allow(ALICE, "kms:Describe*", "AliceReadOnly"))
    assert error_code(alice.put_key_policy, KeyId=key_id, PolicyName="default", Policy=locks_alice_out) == (
        "MalformedPolicyDocumentException"
    )
    # Keeping kms:PutKeyPolicy passes; so does an explicit bypass, after which alice is locked out.
    keeps_put = key_policy(allow(ALICE, ["kms:PutKeyPolicy", "kms:Describe*"], "AliceKeeps"))
    assert error_code(alice.put_key_policy, KeyId=key_id, PolicyName="default", Policy=keeps_put) is None
    assert error_code(
        alice.put_key_policy, KeyId=key_id, PolicyName="default", Policy=locks_alice_out,
        BypassPolicyLockoutSafetyCheck=True,
    ) is None
    assert error_code(alice.put_key_policy, KeyId=key_id, PolicyName="default", Policy=keeps_put) == (
        "AccessDeniedException"
    )
    # The account root can always repair the key.
    assert error_code(authz.client().put_key_policy, KeyId=key_id, PolicyName="default", Policy=keeps_put) is None
    # CreateKey runs the same check for the creator.
    assert error_code(alice.create_key, Policy=key_policy(allow(BOB, "kms:*"))) == "MalformedPolicyDocumentException"
    assert error_code(alice.create_key, Policy=key_policy(allow(BOB, "kms:*")), BypassPolicyLockoutSafetyCheck=True) is None


def test_put_key_policy_takes_effect_at_once(authz: AuthzServer) -> None:
    key_id = _key(authz, key_policy())
    bob = authz.client(BOB)
    assert error_code(bob.describe_key, KeyId=key_id) == "AccessDeniedException"
    authz.client().put_key_policy(KeyId=key_id, PolicyName="default", Policy=key_policy(allow(BOB, "kms:DescribeKey")))
    assert error_code(bob.describe_key, KeyId=key_id) is None
    assert error_code(bob.get_key_policy, KeyId=key_id, PolicyName="default") == "AccessDeniedException"
    stored = json.loads(authz.client().get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert stored["Statement"][0]["Principal"]["AWS"] == ROOT_ARN


def test_aws_cli_allows_and_denies_per_principal(authz: AuthzServer) -> None:
    key_id = _key(authz, key_policy(allow(BOB, ["kms:Encrypt", "kms:DescribeKey"])))
    allowed = authz.aws(BOB, "describe-key", "--key-id", key_id)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["KeyMetadata"]["KeyId"] == key_id
    denied = authz.aws(CAROL, "describe-key", "--key-id", key_id)
    assert denied.returncode != 0
    assert "AccessDeniedException" in denied.stderr
