"""Condition operators, set qualifiers, IfExists and Null against request contexts."""

from __future__ import annotations

import pytest

from kmsgate.auth.conditions import Condition, normalize_context, parse_conditions
from kmsgate.core.errors import MalformedPolicyDocumentError


def holds(block, context) -> bool:
    conditions = parse_conditions(block)
    ctx = normalize_context(context)
    return all(c.holds(ctx) for c in conditions)


@pytest.mark.parametrize(
    "block, context, expected",
    [
        ({"StringEquals": {"kms:CallerAccount": "111122223333"}}, {"kms:CallerAccount": "111122223333"}, True),
        ({"StringEquals": {"kms:CallerAccount": "111122223333"}}, {"kms:CallerAccount": "999"}, False),
        ({"StringEquals": {"kms:CallerAccount": ["1", "2"]}}, {"kms:CallerAccount": "2"}, True),
        ({"StringEquals": {"KMS:CALLERACCOUNT": "1"}}, {"kms:CallerAccount": "1"}, True),
        ({"StringEquals": {"aws:username": "Alice"}}, {"aws:username": "alice"}, False),
        ({"StringEqualsIgnoreCase": {"aws:username": "Alice"}}, {"aws:username": "alice"}, True),
        ({"StringNotEquals": {"aws:username": "bob"}}, {"aws:username": "alice"}, True),
        ({"StringNotEquals": {"aws:username": "bob"}}, {"aws:username": "bob"}, False),
        ({"StringNotEquals": {"aws:username": "bob"}}, {}, True),
        ({"StringNotEqualsIgnoreCase": {"aws:username": "BOB"}}, {"aws:username": "bob"}, False),
        ({"StringLike": {"kms:RequestAlias": "alias/app-*"}}, {"kms:RequestAlias": "alias/app-prod"}, True),
        ({"StringLike": {"kms:RequestAlias": "alias/app-?"}}, {"kms:RequestAlias": "alias/app-10"}, False),
        ({"StringLike": {"kms:RequestAlias": "alias/[ab]"}}, {"kms:RequestAlias": "alias/a"}, False),
        ({"StringNotLike": {"kms:RequestAlias": "alias/app-*"}}, {"kms:RequestAlias": "alias/x"}, True),
        ({"StringEquals": {"kms:RequestAlias": "alias/x"}}, {}, False),
        ({"StringEqualsIfExists": {"kms:RequestAlias": "alias/x"}}, {}, True),
        ({"StringEqualsIfExists": {"kms:RequestAlias": "alias/x"}}, {"kms:RequestAlias": "alias/y"}, False),
        ({"Bool": {"kms:GrantIsForAWSResource": "true"}}, {"kms:GrantIsForAWSResource": False}, False),
        ({"Bool": {"kms:GrantIsForAWSResource": False}}, {"kms:GrantIsForAWSResource": False}, True),
        ({"Null": {"kms:RequestAlias": "true"}}, {}, True),
        ({"Null": {"kms:RequestAlias": "true"}}, {"kms:RequestAlias": "alias/a"}, False),
        ({"Null": {"kms:RequestAlias": "false"}}, {"kms:RequestAlias": "alias/a"}, True),
        ({"NumericLessThan": {"kms:Size": "10"}}, {"kms:Size": 9}, True),
        ({"NumericLessThan": {"kms:Size": 10}}, {"kms:Size": 10}, False),
        ({"NumericGreaterThanEquals": {"kms:Size": "10"}}, {"kms:Size": 10}, True),
        ({"NumericNotEquals": {"kms:Size": "10"}}, {"kms:Size": 11}, True),
        ({"NumericEquals": {"kms:Size": "10"}}, {"kms:Size": "ten"}, False),
        ({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}, {"aws:CurrentTime": "2026-01-01T00:00:00Z"}, True),
        ({"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}, {"aws:CurrentTime": "2026-01-01T00:00:00Z"}, False),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ops/*"}}, {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/ops/bob"}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ops/*"}}, {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/ops/bob"}, False),
        ({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/a"}}, {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/a"}, True),
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}, {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/r"}, True),
        ({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}, {"aws:SourceIp": "127.0.0.1"}, True),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "127.0.0.1"}, False),
        ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "127.0.0.1"}, True),
        # Every operator and key must hold.
        ({"StringEquals": {"a:x": "1", "a:y": "2"}}, {"a:x": "1", "a:y": "3"}, False),
        ({"StringEquals": {"a:x": "1"}, "StringLike": {"a:y": "2*"}}, {"a:x": "1", "a:y": "22"}, True),
    ],
)
def test_single_valued_operators(block, context, expected):
    assert holds(block, context) is expected


KEYS = "kms:EncryptionContextKeys"


@pytest.mark.parametrize(
    "block, keys, expected",
    [
        ({"ForAllValues:StringEquals": {KEYS: ["Department", "Project"]}}, ["Department"], True),
        ({"ForAllValues:StringEquals": {KEYS: ["Department", "Project"]}}, ["Department", "Other"], False),
        ({"ForAllValues:StringEquals": {KEYS: ["Department"]}}, [], True),
        ({"ForAllValues:StringEquals": {KEYS: ["Department"]}}, None, True),
        ({"ForAnyValue:StringEquals": {KEYS: ["Department"]}}, ["Other", "Department"], True),
        ({"ForAnyValue:StringEquals": {KEYS: ["Department"]}}, ["Other"], False),
        ({"ForAnyValue:StringEquals": {KEYS: ["Department"]}}, None, False),
        ({"ForAnyValue:StringEquals": {KEYS: ["Department"]}}, [], False),
        ({"ForAllValues:StringLike": {KEYS: ["app:*"]}}, ["app:a", "app:b"], True),
        ({"ForAllValues:StringNotEquals": {KEYS: ["secret"]}}, ["a", "b"], True),
        ({"ForAllValues:StringNotEquals": {KEYS: ["secret"]}}, ["a", "secret"], False),
        ({"ForAnyValue:StringNotEquals": {KEYS: ["a"]}}, ["a", "b"], True),
        ({"ForAnyValue:StringNotEquals": {KEYS: ["a"]}}, ["a"], False),
        # No qualifier on a multi-valued key: any value matching is enough.
        ({"StringEquals": {KEYS: "Department"}}, ["Department", "Other"], True),
        ({"StringNotEquals": {KEYS: "Department"}}, ["Department", "Other"], False),
    ],
)
def test_set_operators_on_encryption_context_keys(block, keys, expected):
    context = {} if keys is None else {KEYS: keys}
    assert holds(block, context) is expected


def test_encryption_context_key_is_case_insensitive_and_value_case_sensitive():
    block = {"StringEquals": {"kms:EncryptionContext:Department": "IT"}}
    assert holds(block, {"kms:EncryptionContext:department": "IT"})
    assert not holds(block, {"kms:EncryptionContext:Department": "it"})


@pytest.mark.parametrize(
    "block, message",
    [
        ([], "object of operators"),
        ({"StringEqualz": {"a:b": "c"}}, "Unsupported condition operator"),
        ({"ForSomeValues:StringEquals": {"a:b": "c"}}, "set operator"),
        ({"StringEquals": {}}, "needs keys"),
        ({"StringEquals": {"nocolon": "c"}}, "Invalid condition key"),
        ({"StringEquals": {"a:b": []}}, "values"),
        ({"StringEquals": {"a:b": {"x": 1}}}, "strings, numbers or booleans"),
        ({"NumericEquals": {"a:b": "ten"}}, "invalid value"),
        ({"DateEquals": {"a:b": "yesterday"}}, "invalid value"),
        ({"Bool": {"a:b": "yes"}}, "invalid value"),
        ({"IpAddress": {"aws:SourceIp": "300.0.0.0/8"}}, "invalid value"),
        ({"Null": {"a:b": "maybe"}}, "invalid value"),
        ({"ForAnyValue:Null": {"a:b": "true"}}, "Null operator"),
    ],
)
def test_malformed_conditions(block, message):
    with pytest.raises(MalformedPolicyDocumentError, match=message):
        parse_conditions(block)


def test_parse_flattens_with_qualifier_and_if_exists():
    (condition,) = parse_conditions({"ForAnyValue:StringLikeIfExists": {"A:B": ["x", 1, True]}})
    assert condition == Condition("StringLike", "a:b", ("x", "1", "true"), "ForAnyValue", True)


EC = "kms:EncryptionContext:"


@pytest.mark.parametrize(
    "block",
    [
        {"StringEquals": {EC + "tenant": "alice"}},
        {"StringEquals": {EC + "Tenant": "alice"}},
        {"StringLike": {EC + "tenant": "ali*"}},
        {"StringNotEquals": {EC + "tenant": "bob"}},
        {"StringEqualsIfExists": {EC + "tenant": "alice"}},
        {"ForAnyValue:StringEquals": {EC + "tenant": "alice"}},
        {"ForAllValues:StringEquals": {EC + "tenant": "alice"}},
    ],
)
@pytest.mark.parametrize(
    "context",
    [
        {EC + "tenant": "bob", EC + "TENANT": "alice"},
        {EC + "TENANT": "alice", EC + "tenant": "bob"},
        {EC + "tenant": "alice", EC + "TENANT": "bob"},
        {EC + "Tenant": "alice", EC + "tenant": "alice", EC + "TENANT": "bob"},
    ],
)
def test_a_context_key_sent_in_several_cases_must_satisfy_the_condition_in_each(block, context):
    assert not holds(block, context)


def test_a_context_key_sent_in_several_cases_passes_when_every_value_satisfies_the_condition():
    same = {EC + "tenant": "alice", EC + "TENANT": "alice"}
    assert holds({"StringEquals": {EC + "tenant": "alice"}}, same)
    assert holds({"StringNotEquals": {EC + "tenant": "bob"}}, same)
    assert not holds({"StringNotEquals": {EC + "tenant": "alice"}}, same)


def test_normalizing_keeps_every_value_of_keys_that_differ_only_in_case():
    normalized = normalize_context({EC + "tenant": "bob", EC + "TENANT": "alice"})
    assert sorted(normalized[(EC + "tenant").lower()]) == ["alice", "bob"]


def test_context_keys_are_seen_as_sent_when_they_differ_only_in_case():
    keys = {KEYS: ["tenant", "TENANT"]}
    assert not holds({"ForAllValues:StringEquals": {KEYS: ["tenant"]}}, keys)
    assert holds({"ForAnyValue:StringEquals": {KEYS: ["TENANT"]}}, keys)
