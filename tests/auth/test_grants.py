"""Grant validation, constraints, idempotency, tokens and retirement rules."""

from __future__ import annotations

import pytest

from kmsgate.auth.grants import (
    check_grant_tokens,
    find_same_grant,
    grant_id_of_token,
    grant_list_entry,
    grant_permits,
    grant_token,
    may_retire,
    new_grant,
    permits_child_grant,
)
from kmsgate.core.errors import InvalidGrantTokenError, ValidationError

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:role/bob"


def grant(**kwargs):
    args = {"key_arn": KEY, "grantee_principal": ALICE, "operations": ["Encrypt", "Decrypt"],
            "account_id": ACCOUNT, "now": 1_700_000_000.0}
    args.update(kwargs)
    return new_grant(**args)


def test_grant_permits_exactly_its_operations():
    g = grant()
    assert grant_permits(g, "Encrypt", None)
    assert grant_permits(g, "kms:Decrypt", {"a": "b"})
    assert not grant_permits(g, "GenerateDataKey", None)
    assert not grant_permits(g, "ReEncryptFrom", None)
    assert not grant_permits(g, "DescribeKey", None)


def test_encryption_context_subset():
    g = grant(encryption_context_subset={"Tenant": "acme"})
    assert grant_permits(g, "Decrypt", {"Tenant": "acme"})
    assert grant_permits(g, "Decrypt", {"Tenant": "acme", "extra": "x"})
    assert not grant_permits(g, "Decrypt", {"tenant": "acme"})  # keys case-sensitive, as AWS documents
    assert not grant_permits(g, "Decrypt", {"Tenant": "ACME"})  # values case-sensitive
    assert not grant_permits(g, "Decrypt", {"other": "acme"})
    assert not grant_permits(g, "Decrypt", None)


def test_encryption_context_equals():
    g = grant(encryption_context_equals={"Tenant": "acme", "app": "web"})
    assert grant_permits(g, "Encrypt", {"app": "web", "Tenant": "acme"})
    assert not grant_permits(g, "Encrypt", {"APP": "web", "tenant": "acme"})
    assert not grant_permits(g, "Encrypt", {"Tenant": "acme"})
    assert not grant_permits(g, "Encrypt", {"Tenant": "acme", "app": "web", "x": "y"})
    assert not grant_permits(g, "Encrypt", {"Tenant": "acme", "app": "WEB"})


def test_constraints_do_not_apply_to_describe_key_or_retire_grant():
    g = grant(operations=["Decrypt", "DescribeKey", "RetireGrant"], encryption_context_equals={"a": "b"})
    assert grant_permits(g, "DescribeKey", None)
    assert grant_permits(g, "RetireGrant", None)
    assert not grant_permits(g, "Decrypt", None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"grantee_principal": "alice"}, "not a valid principal"),
        ({"grantee_principal": ""}, "1 to 256"),
        ({"retiring_principal": "arn:aws:iam::1:user/x"}, "not a valid principal"),
        ({"operations": []}, "at least one"),
        ({"operations": ["Encrypt", "Launch"]}, "invalid value: Launch"),
        ({"name": "has space"}, "Name"),
        ({"name": "x" * 257}, "Name"),
        ({"encryption_context_subset": {str(i): "v" for i in range(9)}}, "more than 8"),
        ({"encryption_context_subset": {"k": "v" * 385}}, "384"),
        ({"encryption_context_equals": {"k": 1}}, "strings"),
        ({"operations": ["Sign"], "encryption_context_subset": {"a": "b"}}, "no encryption context"),
    ],
)
def test_invalid_create_grant_inputs(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        grant(**kwargs)


def test_service_principal_and_dedup_operations():
    g = grant(grantee_principal="rds.amazonaws.com", operations=["Encrypt", "Encrypt"])
    assert g.operations == ("Encrypt",)
    assert len(g.grant_id) == 64 and g.issuing_account == f"arn:aws:iam::{ACCOUNT}:root"


def test_named_grant_idempotency():
    first = grant(name="app-grant", retiring_principal=BOB, encryption_context_subset={"a": "b"})
    again = grant(name="app-grant", retiring_principal=BOB, encryption_context_subset={"a": "b"},
                  operations=["Decrypt", "Encrypt"])
    assert find_same_grant([first], again) is first
    assert find_same_grant([first], grant(name="app-grant", retiring_principal=BOB)) is None
    assert find_same_grant([first], grant(name="other", retiring_principal=BOB,
                                          encryption_context_subset={"a": "b"})) is None
    unnamed = grant()
    assert find_same_grant([unnamed], grant()) is None


def test_tokens_name_their_grant_and_differ_each_time():
    g = grant()
    t1, t2 = grant_token(g.grant_id), grant_token(g.grant_id)
    assert t1 != t2
    assert grant_id_of_token(t1) == grant_id_of_token(t2) == g.grant_id
    assert check_grant_tokens([t1, t2]) == (g.grant_id, g.grant_id)


@pytest.mark.parametrize("token", ["", "not-a-token", "A" * 20, "x" * 9000, "@@@@"])
def test_garbled_tokens_are_invalid(token):
    with pytest.raises(InvalidGrantTokenError):
        grant_id_of_token(token)


def test_too_many_tokens():
    token = grant_token(grant().grant_id)
    with pytest.raises(ValidationError):
        check_grant_tokens([token] * 11)


def test_child_grants_need_subset_operations_and_stricter_constraints():
    parent = grant(operations=["Decrypt", "CreateGrant"], encryption_context_subset={"tenant": "acme"})
    assert permits_child_grant(parent, grant(grantee_principal=BOB, operations=["Decrypt"],
                                             encryption_context_subset={"tenant": "acme", "x": "y"}))
    assert permits_child_grant(parent, grant(grantee_principal=BOB, operations=["Decrypt"],
                                             encryption_context_equals={"tenant": "acme"}))
    assert not permits_child_grant(parent, grant(grantee_principal=BOB, operations=["Decrypt"]))
    assert not permits_child_grant(parent, grant(grantee_principal=BOB, operations=["Encrypt"],
                                                 encryption_context_subset={"tenant": "acme"}))
    assert not permits_child_grant(parent, grant(grantee_principal=BOB, operations=["Decrypt"],
                                                 encryption_context_subset={"tenant": "other"}))
    equals_parent = grant(operations=["Decrypt", "CreateGrant"], encryption_context_equals={"a": "b"})
    assert permits_child_grant(equals_parent, grant(operations=["Decrypt"], encryption_context_equals={"a": "b"}))
    assert not permits_child_grant(equals_parent, grant(operations=["Decrypt"], encryption_context_subset={"a": "b"}))
    no_create = grant(operations=["Decrypt"])
    assert not permits_child_grant(no_create, grant(operations=["Decrypt"]))


@pytest.mark.parametrize(
    "context",
    [
        {"TENANT": "alice", "tenant": "bob"},
        {"tenant": "bob", "TENANT": "alice"},
        {"Tenant": "alice"},
    ],
)
def test_a_key_differing_in_case_does_not_satisfy_a_subset_constraint(context):
    g = grant(encryption_context_subset={"tenant": "alice"})
    assert not grant_permits(g, "Encrypt", context)


def test_an_equals_constraint_compares_keys_exactly():
    g = grant(encryption_context_equals={"tenant": "alice"})
    assert grant_permits(g, "Encrypt", {"tenant": "alice"})
    assert not grant_permits(g, "Encrypt", {"Tenant": "alice"})
    assert not grant_permits(g, "Encrypt", {"tenant": "alice", "TENANT": "alice"})


@pytest.mark.parametrize(
    "parent, child, allowed",
    [
        # A parent with Equals admits one context: the child must admit only that one.
        ({"encryption_context_equals": {"a": "1"}}, {"encryption_context_equals": {"a": "1"}}, True),
        ({"encryption_context_equals": {"a": "1"}}, {"encryption_context_equals": {"A": "1"}}, False),
        ({"encryption_context_equals": {"a": "1"}}, {"encryption_context_equals": {"a": "1", "A": "1"}}, False),
        ({"encryption_context_equals": {"a": "1"}}, {"encryption_context_subset": {"a": "1"}}, False),
        ({"encryption_context_equals": {"a": "1"}}, {}, False),
        ({"encryption_context_equals": {"a": "1"}},
         {"encryption_context_equals": {"a": "1"}, "encryption_context_subset": {"a": "1"}}, True),
        # A parent with Subset: every context the child admits must hold the parent's pairs.
        ({"encryption_context_subset": {"a": "1"}}, {"encryption_context_subset": {"a": "1", "b": "2"}}, True),
        ({"encryption_context_subset": {"a": "1"}}, {"encryption_context_equals": {"a": "1", "b": "2"}}, True),
        ({"encryption_context_subset": {"a": "1"}}, {"encryption_context_subset": {"A": "1"}}, False),
        ({"encryption_context_subset": {"a": "1"}}, {"encryption_context_equals": {"A": "1"}}, False),
        ({"encryption_context_subset": {"a": "1"}}, {"encryption_context_subset": {"b": "2"}}, False),
        ({"encryption_context_subset": {"a": "1"}},
         {"encryption_context_equals": {"b": "2"}, "encryption_context_subset": {"a": "1"}}, True),
        ({"encryption_context_subset": {"a": "1"}}, {}, False),
        # Both on the parent: both must carry over.
        ({"encryption_context_subset": {"a": "1"}, "encryption_context_equals": {"a": "1", "b": "2"}},
         {"encryption_context_equals": {"a": "1", "b": "2"}}, True),
        ({"encryption_context_subset": {"a": "1"}, "encryption_context_equals": {"a": "1", "b": "2"}},
         {"encryption_context_subset": {"a": "1"}}, False),
        # An unconstrained parent allows any constraints.
        ({}, {}, True),
        ({}, {"encryption_context_subset": {"a": "1"}}, True),
    ],
)
def test_a_child_grant_is_never_looser_than_its_parent(parent, child, allowed):
    parent_grant = grant(operations=["Decrypt", "CreateGrant"], **parent)
    child_grant = grant(grantee_principal=BOB, operations=["Decrypt"], **child)
    assert permits_child_grant(parent_grant, child_grant) is allowed


def test_who_may_retire():
    g = grant(retiring_principal=BOB)
    assert may_retire(g, BOB)
    assert not may_retire(g, ALICE)
    with_retire = grant(operations=["Decrypt", "RetireGrant"])
    assert may_retire(with_retire, ALICE)
    assert not may_retire(with_retire, BOB)


def test_list_entry_wire_form():
    g = grant(name="n", retiring_principal=BOB, encryption_context_subset={"a": "b"})
    entry = grant_list_entry(g)
    assert entry == {
        "KeyId": KEY, "GrantId": g.grant_id, "CreationDate": 1_700_000_000.0, "GranteePrincipal": ALICE,
        "IssuingAccount": f"arn:aws:iam::{ACCOUNT}:root", "Operations": ["Encrypt", "Decrypt"], "Name": "n",
        "RetiringPrincipal": BOB, "Constraints": {"EncryptionContextSubset": {"a": "b"}},
    }
