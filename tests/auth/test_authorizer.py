"""The authorizer: root, key policy, grants, Deny precedence, account actions and the lockout check."""

from __future__ import annotations

import json

import pytest

from kmsgate.auth.authorizer import (
    KeyAccess,
    RequestFacts,
    authorize,
    authorize_account_action,
    authorize_identity_action,
    authorize_list_retirable,
    authorize_retire,
    check_lockout,
    condition_context,
)
from kmsgate.auth.grants import new_grant
from kmsgate.auth.identities import DEFAULT_ACCOUNT_ACTIONS, Principal
from kmsgate.auth.key_policies import admin_user_key_policy, default_key_policy
from kmsgate.auth.policy import parse_identity_policy, parse_policy
from kmsgate.core.errors import AccessDeniedError, MalformedPolicyDocumentError
from kmsgate.core.principal import Caller, account_root

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT = account_root(ACCOUNT)
ALICE = Caller(f"arn:aws:iam::{ACCOUNT}:user/alice", ACCOUNT, "AKIAALICE00000000001", "127.0.0.1")
BOB = Caller(f"arn:aws:iam::{ACCOUNT}:role/ops/bob", ACCOUNT)
CAROL = Caller(f"arn:aws:iam::{ACCOUNT}:user/carol", ACCOUNT)


def key(document: str, grants=()) -> KeyAccess:
    return KeyAccess(KEY, parse_policy(document), tuple(grants))


def statement(effect, principals, actions, **extra):
    return {"Effect": effect, "Principal": {"AWS": principals}, "Action": actions, "Resource": "*", **extra}


def doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def grant(**kwargs):
    args = {"key_arn": KEY, "grantee_principal": CAROL.arn, "operations": ["Decrypt"],
            "account_id": ACCOUNT, "now": 0.0}
    args.update(kwargs)
    return new_grant(**args)


USERS_AND_ADMINS = admin_user_key_policy(ACCOUNT, admins=[BOB.arn], users=[ALICE.arn])
USER_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
ADMIN_ACTIONS = ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
                 "kms:DisableKey", "kms:EnableKey", "kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateKeyDescription",
                 "kms:TagResource", "kms:UntagResource", "kms:ListGrants", "kms:RevokeGrant",
                 "kms:EnableKeyRotation", "kms:DescribeKey", "kms:ListResourceTags", "kms:RotateKeyOnDemand"]


@pytest.mark.parametrize("action", USER_ACTIONS)
def test_user_may_use_key(action):
    assert authorize(ALICE, action, key(USERS_AND_ADMINS)).basis == "policy"


@pytest.mark.parametrize("action", sorted(set(ADMIN_ACTIONS) - {"kms:DescribeKey"}))
def test_user_may_not_administer_key(action):
    with pytest.raises(AccessDeniedError):
        authorize(ALICE, action, key(USERS_AND_ADMINS))


@pytest.mark.parametrize("action", ADMIN_ACTIONS)
def test_admin_may_administer_key(action):
    assert authorize(BOB, action, key(USERS_AND_ADMINS)).basis == "policy"


def test_admin_may_not_create_grants_for_itself_or_anyone():
    for grantee in (BOB.arn, CAROL.arn):
        facts = RequestFacts(grant_request=grant(grantee_principal=grantee, operations=["Decrypt"]))
        with pytest.raises(AccessDeniedError):
            authorize(BOB, "kms:CreateGrant", key(USERS_AND_ADMINS), facts)


@pytest.mark.parametrize("action", sorted(set(USER_ACTIONS) - {"kms:DescribeKey"}))
def test_admin_may_not_use_key(action):
    with pytest.raises(AccessDeniedError):
        authorize(BOB, action, key(USERS_AND_ADMINS))


@pytest.mark.parametrize("action", USER_ACTIONS + ADMIN_ACTIONS)
def test_unlisted_principal_is_denied_everything(action):
    with pytest.raises(AccessDeniedError):
        authorize(CAROL, action, key(USERS_AND_ADMINS))


def test_denial_message_has_awss_shape():
    with pytest.raises(AccessDeniedError) as info:
        authorize(CAROL, "kms:Encrypt", key(default_key_policy(ACCOUNT)))
    assert info.value.message == (
        f"User: {CAROL.arn} is not authorized to perform: kms:Encrypt on resource: {KEY} "
        "because no resource-based policy allows the kms:Encrypt action"
    )
    assert info.value.code == "AccessDeniedException" and info.value.status == 400


def test_root_is_all_powerful_even_against_deny():
    deny_all = doc(statement("Deny", "*", "kms:*"))
    assert authorize(ROOT, "kms:Decrypt", key(deny_all)).basis == "root"


def test_default_policy_admits_only_root():
    assert authorize(ROOT, "kms:Encrypt", key(default_key_policy(ACCOUNT))).basis == "root"
    with pytest.raises(AccessDeniedError):
        authorize(ALICE, "kms:Encrypt", key(default_key_policy(ACCOUNT)))


def test_explicit_deny_overrides_policy_allow_and_grants():
    text = doc(statement("Allow", ALICE.arn, "kms:*"), statement("Deny", "*", "kms:Decrypt"))
    carol_grant = grant()
    assert authorize(ALICE, "kms:Encrypt", key(text)).basis == "policy"
    with pytest.raises(AccessDeniedError, match="with an explicit deny in a resource-based policy"):
        authorize(ALICE, "kms:Decrypt", key(text))
    with pytest.raises(AccessDeniedError, match="explicit deny"):
        authorize(CAROL, "kms:Decrypt", key(text, [carol_grant]))


def test_encryption_context_conditions():
    text = doc(statement("Allow", ALICE.arn, ["kms:Encrypt", "kms:Decrypt"], Condition={
        "StringEquals": {"kms:EncryptionContext:tenant": "acme"},
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenant", "object"]},
    }))
    ok = RequestFacts(encryption_context={"tenant": "acme", "object": "o1"})
    assert authorize(ALICE, "kms:Decrypt", key(text), ok)
    for context in ({"tenant": "evil"}, {"tenant": "acme", "other": "x"}, {}):
        with pytest.raises(AccessDeniedError):
            authorize(ALICE, "kms:Decrypt", key(text), RequestFacts(encryption_context=context))


def test_caller_account_request_alias_and_principal_conditions():
    text = doc(statement("Allow", "*", "kms:Encrypt", Condition={
        "StringEquals": {"kms:CallerAccount": ACCOUNT},
        "StringLike": {"kms:RequestAlias": "alias/app-*"},
        "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"},
    }))
    assert authorize(ALICE, "kms:Encrypt", key(text), RequestFacts(request_alias="alias/app-1"))
    with pytest.raises(AccessDeniedError):
        authorize(ALICE, "kms:Encrypt", key(text), RequestFacts(request_alias="alias/db"))
    with pytest.raises(AccessDeniedError):
        authorize(ALICE, "kms:Encrypt", key(text))
    with pytest.raises(AccessDeniedError):
        authorize(BOB, "kms:Encrypt", key(text), RequestFacts(request_alias="alias/app-1"))


def test_source_ip_condition():
    text = doc(statement("Allow", ALICE.arn, "kms:Encrypt", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))
    assert authorize(ALICE, "kms:Encrypt", key(text))
    remote = Caller(ALICE.arn, ACCOUNT, source_ip="192.0.2.1")
    with pytest.raises(AccessDeniedError):
        authorize(remote, "kms:Encrypt", key(text))


def test_grant_allows_exactly_its_operations_under_constraints():
    g = grant(operations=["Decrypt", "GenerateDataKey"], encryption_context_subset={"tenant": "acme"})
    access = key(default_key_policy(ACCOUNT), [g])
    facts = RequestFacts(encryption_context={"tenant": "acme"})
    assert authorize(CAROL, "kms:Decrypt", access, facts).grant_id == g.grant_id
    assert authorize(CAROL, "kms:GenerateDataKey", access, facts).basis == "grant"
    for action in ("kms:Encrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey", "kms:PutKeyPolicy"):
        with pytest.raises(AccessDeniedError):
            authorize(CAROL, action, access, facts)
    with pytest.raises(AccessDeniedError):
        authorize(CAROL, "kms:Decrypt", access, RequestFacts(encryption_context={"tenant": "other"}))
    with pytest.raises(AccessDeniedError):
        authorize(ALICE, "kms:Decrypt", access, facts)


def test_equals_constraint_through_authorizer():
    g = grant(encryption_context_equals={"tenant": "acme"})
    access = key(default_key_policy(ACCOUNT), [g])
    assert authorize(CAROL, "kms:Decrypt", access, RequestFacts(encryption_context={"tenant": "acme"}))
    with pytest.raises(AccessDeniedError):
        authorize(CAROL, "kms:Decrypt", access, RequestFacts(encryption_context={"tenant": "acme", "x": "y"}))


def test_removed_grant_no_longer_allows():
    g = grant()
    assert authorize(CAROL, "kms:Decrypt", key(default_key_policy(ACCOUNT), [g]))
    with pytest.raises(AccessDeniedError):
        authorize(CAROL, "kms:Decrypt", key(default_key_policy(ACCOUNT), []))


def test_grant_for_another_key_is_ignored():
    g = grant(key_arn=KEY.replace("1234abcd", "9999abcd"))
    with pytest.raises(AccessDeniedError):
        authorize(CAROL, "kms:Decrypt", key(default_key_policy(ACCOUNT), [g]))


def test_create_grant_through_a_grant_needs_a_stricter_child():
    parent = grant(operations=["Decrypt", "CreateGrant"], encryption_context_subset={"t": "1"})
    access = key(default_key_policy(ACCOUNT), [parent])
    good = grant(grantee_principal=BOB.arn, encryption_context_subset={"t": "1"})
    bad = grant(grantee_principal=BOB.arn)
    assert authorize(CAROL, "kms:CreateGrant", access, RequestFacts(grant_request=good)).basis == "grant"
    with pytest.raises(AccessDeniedError):
        authorize(CAROL, "kms:CreateGrant", access, RequestFacts(grant_request=bad))


def test_grant_conditions_in_key_policy():
    text = doc(statement("Allow", ALICE.arn, "kms:CreateGrant", Condition={
        "ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]},
        "Bool": {"kms:GrantIsForAWSResource": "false"},
    }))
    ok = RequestFacts(grant_request=grant(operations=["Decrypt"]))
    assert authorize(ALICE, "kms:CreateGrant", key(text), ok)
    wide = RequestFacts(grant_request=grant(operations=["Decrypt", "CreateGrant"]))
    with pytest.raises(AccessDeniedError):
        authorize(ALICE, "kms:CreateGrant", key(text), wide)


def test_retire_rules():
    g = grant(retiring_principal=BOB.arn)
    assert authorize_retire(BOB, g).basis == "grant"
    assert authorize_retire(ROOT, g).basis == "root"
    with pytest.raises(AccessDeniedError):
        authorize_retire(CAROL, g)
    assert authorize_retire(CAROL, grant(operations=["Decrypt", "RetireGrant"]))


def test_a_grant_with_retire_grant_does_not_authorize_retiring_other_grants():
    holder = grant(operations=["Decrypt", "RetireGrant"])  # carol's grant
    with pytest.raises(AccessDeniedError, match="kms:RetireGrant"):
        authorize(CAROL, "kms:RetireGrant", key(default_key_policy(ACCOUNT), [holder]))
    allowed = doc(statement("Allow", CAROL.arn, "kms:RetireGrant"))
    assert authorize(CAROL, "kms:RetireGrant", key(allowed, [holder])).basis == "policy"


def test_account_actions():
    alice = Principal(ALICE.arn, ACCOUNT)
    bob = Principal(BOB.arn, ACCOUNT, ("kms:CreateKey", "kms:List*"))
    assert authorize_account_action(ALICE, "kms:ListKeys", alice)
    assert "kms:ListAliases" in DEFAULT_ACCOUNT_ACTIONS
    with pytest.raises(AccessDeniedError, match="no identity-based policy allows the kms:CreateKey action"):
        authorize_account_action(ALICE, "kms:CreateKey", alice)
    assert authorize_account_action(BOB, "kms:CreateKey", bob)
    with pytest.raises(AccessDeniedError):
        authorize_account_action(BOB, "kms:GenerateRandom", bob)
    assert authorize_account_action(ROOT, "kms:CreateKey", None).basis == "root"
    with pytest.raises(AccessDeniedError):
        authorize_account_action(CAROL, "kms:ListKeys", None)


def test_list_retirable_only_for_self():
    alice = Principal(ALICE.arn, ACCOUNT)
    assert authorize_list_retirable(ALICE, alice, ALICE.arn)
    with pytest.raises(AccessDeniedError):
        authorize_list_retirable(ALICE, alice, BOB.arn)
    assert authorize_list_retirable(ROOT, None, BOB.arn)


def test_lockout_check():
    no_put = parse_policy(doc(statement("Allow", ALICE.arn, "kms:Encrypt")))
    with pytest.raises(MalformedPolicyDocumentError, match="will not allow you to update the key policy"):
        check_lockout(no_put, ALICE, KEY)
    check_lockout(no_put, ALICE, KEY, bypass=True)
    check_lockout(no_put, ROOT, KEY)
    check_lockout(parse_policy(USERS_AND_ADMINS), BOB, KEY)
    with pytest.raises(MalformedPolicyDocumentError):
        check_lockout(parse_policy(USERS_AND_ADMINS), ALICE, KEY)
    denied = parse_policy(doc(statement("Allow", ALICE.arn, "kms:*"), statement("Deny", "*", "kms:PutKeyPolicy")))
    with pytest.raises(MalformedPolicyDocumentError):
        check_lockout(denied, ALICE, KEY)


def test_condition_context_keys():
    g = grant(operations=["Decrypt"], retiring_principal=BOB.arn, encryption_context_equals={"a": "b"})
    ctx = condition_context(ALICE, RequestFacts(encryption_context={"Tenant": "acme"}, request_alias="alias/x",
                                                grant_request=g, now=0.0, extra={"kms:KeySpec": "SYMMETRIC_DEFAULT"}))
    assert ctx["aws:principalarn"] == (ALICE.arn,)
    assert ctx["aws:principaltype"] == ("User",)
    assert ctx["aws:username"] == ("alice",)
    assert ctx["aws:sourceip"] == ("127.0.0.1",)
    assert ctx["aws:currenttime"] == ("1970-01-01T00:00:00Z",)
    assert ctx["kms:calleraccount"] == (ACCOUNT,)
    assert ctx["kms:grantisforawsresource"] == ("false",)
    assert ctx["kms:encryptioncontext:tenant"] == ("acme",)
    assert ctx["kms:encryptioncontextkeys"] == ("Tenant",)
    assert ctx["kms:requestalias"] == ("alias/x",)
    assert ctx["kms:grantoperations"] == ("Decrypt",)
    assert ctx["kms:retiringprincipal"] == (BOB.arn,)
    assert ctx["kms:grantconstrainttype"] == ("EncryptionContextEquals",)
    assert ctx["kms:keyspec"] == ("SYMMETRIC_DEFAULT",)
    assert condition_context(ROOT)["aws:principaltype"] == ("Account",)
    assert "aws:username" not in condition_context(BOB)


def test_require_an_encryption_context_with_null_condition():
    text = doc(statement("Allow", ALICE.arn, "kms:Encrypt", Condition={"Null": {"kms:EncryptionContextKeys": "false"}}))
    assert authorize(ALICE, "kms:Encrypt", key(text), RequestFacts(encryption_context={"a": "b"}))
    for context in ({}, None):
        with pytest.raises(AccessDeniedError):
            authorize(ALICE, "kms:Encrypt", key(text), RequestFacts(encryption_context=context))


def identity_policy(*statements):
    return parse_identity_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


OBJECT = "arn:aws:s3:::kmsgate/alice/report.pdf"


def test_identity_policy_allows_account_actions_and_its_explicit_deny_beats_the_shorthand():
    policy = identity_policy(
        {"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:ListKeys", "Resource": "*"},
    )
    alice = Principal(ALICE.arn, ACCOUNT, DEFAULT_ACCOUNT_ACTIONS, policy)
    assert authorize_account_action(ALICE, "kms:CreateKey", alice).basis == "identity"
    assert "kms:ListKeys" in alice.account_actions
    with pytest.raises(AccessDeniedError, match="explicit deny in an identity-based policy"):
        authorize_account_action(ALICE, "kms:ListKeys", alice)
    assert authorize_account_action(ALICE, "kms:ListAliases", alice)  # the shorthand still allows


def test_object_actions_need_an_identity_policy_allow():
    policy = identity_policy(
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::kmsgate/alice/*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::kmsgate/alice/private/*"},
    )
    alice = Principal(ALICE.arn, ACCOUNT, policy=policy)
    assert authorize_identity_action(ALICE, "s3:GetObject", OBJECT, alice).basis == "identity"
    with pytest.raises(AccessDeniedError, match="no identity-based policy allows the s3:DeleteObject"):
        authorize_identity_action(ALICE, "s3:DeleteObject", OBJECT, alice)
    with pytest.raises(AccessDeniedError):
        authorize_identity_action(ALICE, "s3:GetObject", "arn:aws:s3:::kmsgate/bob/report.pdf", alice)
    with pytest.raises(AccessDeniedError, match="explicit deny"):
        authorize_identity_action(ALICE, "s3:GetObject", "arn:aws:s3:::kmsgate/alice/private/x", alice)
    with pytest.raises(AccessDeniedError):
        authorize_identity_action(CAROL, "s3:GetObject", OBJECT, Principal(CAROL.arn, ACCOUNT))
    with pytest.raises(AccessDeniedError):
        authorize_identity_action(CAROL, "s3:GetObject", OBJECT, None)
    assert authorize_identity_action(ROOT, "s3:DeleteObject", OBJECT, None).basis == "root"


def test_identity_policy_conditions_see_the_callers_request():
    policy = identity_policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                              "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
    alice = Principal(ALICE.arn, ACCOUNT, policy=policy)
    with pytest.raises(AccessDeniedError):
        authorize_identity_action(ALICE, "s3:GetObject", OBJECT, alice)  # ALICE calls from 127.0.0.1
    inside = Caller(ALICE.arn, ACCOUNT, source_ip="10.1.2.3")
    assert authorize_identity_action(inside, "s3:GetObject", OBJECT, alice)


def test_an_identity_policy_names_no_principal():
    with pytest.raises(MalformedPolicyDocumentError, match="must not name a Principal"):
        identity_policy({"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"})
    with pytest.raises(MalformedPolicyDocumentError, match="no Resource"):
        identity_policy({"Effect": "Allow", "Action": "s3:*"})
