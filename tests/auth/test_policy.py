"""Key policy parsing, validation and evaluation; the policies kmsgate writes."""

from __future__ import annotations

import json

import pytest

from kmsgate.auth.conditions import normalize_context
from kmsgate.auth.key_policies import (
    KEY_ADMIN_ACTIONS,
    admin_user_key_policy,
    default_key_policy,
)
from kmsgate.auth.policy import MAX_POLICY_BYTES, Decision, PolicyRequest, parse_policy
from kmsgate.core.errors import MalformedPolicyDocumentError

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:role/ops/bob"


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal, action, **extra):
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*", **extra}


def decide(document: str, principal: str, action: str, context=None, resource=KEY) -> Decision:
    request = PolicyRequest(principal, action, resource, normalize_context(context or {}))
    return parse_policy(document).evaluate(request).decision


def test_default_policy_is_awss_and_allows_only_root():
    text = default_key_policy(ACCOUNT)
    assert json.loads(text) == {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    assert decide(text, ROOT, "kms:ScheduleKeyDeletion") is Decision.ALLOW
    assert decide(text, ALICE, "kms:Encrypt") is Decision.IMPLICIT_DENY


def test_account_id_principal_means_root():
    text = policy(allow({"AWS": ACCOUNT}, "kms:Encrypt"))
    assert decide(text, ROOT, "kms:Encrypt") is Decision.ALLOW
    assert decide(text, ALICE, "kms:Encrypt") is Decision.IMPLICIT_DENY


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["*"]}])
def test_wildcard_principal(principal):
    assert decide(policy(allow(principal, "kms:Encrypt")), BOB, "kms:Encrypt") is Decision.ALLOW


def test_principal_list_and_single_string():
    text = policy(allow({"AWS": [ALICE, BOB]}, "kms:Decrypt"), allow({"AWS": BOB}, "kms:Encrypt"))
    assert decide(text, ALICE, "kms:Decrypt") is Decision.ALLOW
    assert decide(text, ALICE, "kms:Encrypt") is Decision.IMPLICIT_DENY
    assert decide(text, BOB, "kms:Encrypt") is Decision.ALLOW


def test_service_principals_never_match():
    text = policy(allow({"Service": "cloudtrail.amazonaws.com"}, "kms:*"))
    assert decide(text, ALICE, "kms:Encrypt") is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    "action, asked, expected",
    [
        ("kms:*", "kms:Encrypt", True),
        ("*", "kms:Encrypt", True),
        ("kms:GenerateDataKey*", "kms:GenerateDataKeyWithoutPlaintext", True),
        ("kms:GenerateDataKey*", "kms:Decrypt", False),
        ("KMS:encrypt", "kms:Encrypt", True),
        ("kms:Re?ncrypt*", "kms:ReEncryptFrom", True),
        (["kms:Encrypt", "kms:Decrypt"], "kms:Decrypt", True),
        ("kms:Encrypt", "kms:EncryptX", False),
    ],
)
def test_action_wildcards(action, asked, expected):
    got = decide(policy(allow({"AWS": ALICE}, action)), ALICE, asked)
    assert (got is Decision.ALLOW) is expected


def test_not_action():
    text = policy({"Effect": "Allow", "Principal": {"AWS": ALICE}, "NotAction": ["kms:Put*", "kms:Schedule*"],
                   "Resource": "*"})
    assert decide(text, ALICE, "kms:Encrypt") is Decision.ALLOW
    assert decide(text, ALICE, "kms:PutKeyPolicy") is Decision.IMPLICIT_DENY


def test_resource_and_not_resource():
    text = policy(allow({"AWS": ALICE}, "kms:Encrypt", Resource=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234*"))
    assert decide(text, ALICE, "kms:Encrypt") is Decision.ALLOW
    assert decide(text, ALICE, "kms:Encrypt", resource=KEY.replace("1234abcd", "9999abcd")) is Decision.IMPLICIT_DENY
    stmt = {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "kms:Encrypt", "NotResource": KEY}
    assert decide(policy(stmt), ALICE, "kms:Encrypt") is Decision.IMPLICIT_DENY


def test_explicit_deny_overrides_allow():
    text = policy(
        allow({"AWS": ALICE}, "kms:*"),
        {"Sid": "NoDecrypt", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"},
    )
    assert decide(text, ALICE, "kms:Encrypt") is Decision.ALLOW
    assert decide(text, ALICE, "kms:Decrypt") is Decision.EXPLICIT_DENY
    request = PolicyRequest(ALICE, "kms:Decrypt", KEY)
    assert parse_policy(text).evaluate(request).sid == "NoDecrypt"


def test_not_principal_deny_everyone_else():
    deny_others = {"Effect": "Deny", "NotPrincipal": {"AWS": [ALICE, ROOT]}, "Action": "kms:*", "Resource": "*"}
    text = policy(allow("*", "kms:Encrypt"), deny_others)
    assert decide(text, ALICE, "kms:Encrypt") is Decision.ALLOW
    assert decide(text, BOB, "kms:Encrypt") is Decision.EXPLICIT_DENY


def test_encryption_context_condition_in_policy():
    text = policy(allow({"AWS": ALICE}, "kms:Decrypt", Condition={
        "StringEquals": {"kms:EncryptionContext:tenant": "acme"}}))
    assert decide(text, ALICE, "kms:Decrypt", {"kms:EncryptionContext:tenant": "acme"}) is Decision.ALLOW
    assert decide(text, ALICE, "kms:Decrypt", {"kms:EncryptionContext:tenant": "other"}) is Decision.IMPLICIT_DENY
    assert decide(text, ALICE, "kms:Decrypt", {}) is Decision.IMPLICIT_DENY


def test_statement_object_instead_of_list_and_default_version():
    text = json.dumps({"Statement": allow({"AWS": ALICE}, "kms:Encrypt")})
    parsed = parse_policy(text)
    assert parsed.version == "2008-10-17"
    assert parsed.document == text
    assert decide(text, ALICE, "kms:Encrypt") is Decision.ALLOW


@pytest.mark.parametrize(
    "document, message",
    [
        ("", "empty"),
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        (json.dumps({"Version": "2012-10-17"}), "at least one Statement"),
        (json.dumps({"Version": "2099-01-01", "Statement": []}), "Version"),
        (json.dumps({"Statement": [], "Extra": 1}), "unknown elements"),
        (policy({**allow({"AWS": ALICE}, "kms:*"), "Effect": "Maybe"}), "Effect"),
        (policy({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}), "no Principal"),
        (policy({"Effect": "Allow", "Principal": "*", "Resource": "*"}), "no Action"),
        (policy({"Effect": "Allow", "Principal": "*", "Action": "kms:*"}), "no Resource"),
        (policy({**allow({"AWS": ALICE}, "kms:*"), "NotAction": "kms:Decrypt"}), "both Action and NotAction"),
        (policy(allow({"AWS": "alice"}, "kms:*")), "invalid principals"),
        (policy(allow({"AWS": "arn:aws:iam::111122223333:user/*"}, "kms:*")), "invalid principals"),
        (policy(allow({"Martian": "x"}, "kms:*")), "Unknown principal type"),
        (policy(allow({"AWS": ALICE}, "Encrypt")), "invalid action"),
        (policy(allow({"AWS": ALICE}, [])), "non-empty"),
        (policy(allow({"AWS": ALICE}, "kms:*", Resource="key/1")), "invalid resource"),
        (policy(allow({"AWS": ALICE}, "kms:*", Colour="red")), "unknown elements"),
        (policy(allow({"AWS": ALICE}, "kms:*", Condition={"Nope": {"a:b": "c"}})), "Unsupported condition"),
        (json.dumps({"Statement": [allow("*", "kms:*", Sid="x" * MAX_POLICY_BYTES)]}), "larger than"),
    ],
)
def test_malformed_policies(document, message):
    with pytest.raises(MalformedPolicyDocumentError, match=message):
        parse_policy(document)


def test_deeply_nested_json_is_malformed_not_a_crash():
    with pytest.raises(MalformedPolicyDocumentError):
        parse_policy("[" * 10_000 + "]" * 10_000)


def test_admin_user_policy_separates_administration_from_use():
    text = admin_user_key_policy(ACCOUNT, admins=[BOB], users=[ALICE])
    statements = {s["Sid"]: s for s in json.loads(text)["Statement"]}
    assert statements["Allow access for Key Administrators"]["Action"] == list(KEY_ADMIN_ACTIONS)
    for action in ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DescribeKey", "kms:DisableKey",
                   "kms:CreateAlias", "kms:TagResource", "kms:GetKeyPolicy", "kms:ListGrants"):
        assert decide(text, BOB, action) is Decision.ALLOW, action
    for action in ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"):
        assert decide(text, BOB, action) is Decision.IMPLICIT_DENY, action
    for action in ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptTo", "kms:GenerateDataKeyWithoutPlaintext",
                   "kms:DescribeKey"):
        assert decide(text, ALICE, action) is Decision.ALLOW, action
    for action in ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CreateGrant"):
        assert decide(text, ALICE, action) is Decision.IMPLICIT_DENY, action
    assert decide(text, ROOT, "kms:PutKeyPolicy") is Decision.ALLOW


def test_admin_user_policy_refuses_bad_arns():
    with pytest.raises(ValueError):
        admin_user_key_policy(ACCOUNT, admins=["bob"], users=[])
