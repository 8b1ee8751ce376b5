"""Key policy documents: parsing, validation and evaluation of one request against one policy.

A key policy is a JSON object ``{"Version": "2012-10-17", "Id": ..., "Statement": [...]}`` of at
most ``MAX_POLICY_BYTES``. Each statement has an optional ``Sid``, ``Effect`` (``Allow``/``Deny``),
exactly one of ``Principal``/``NotPrincipal``, of ``Action``/``NotAction`` and of
``Resource``/``NotResource``, and an optional ``Condition`` (see ``kmsgate.auth.conditions``).

Matching, as IAM does it (``kmsgate.auth.wildcards``, which never backtracks): actions are
case-insensitive globs (``kms:*``, ``kms:GenerateDataKey*``); resources are case-sensitive globs
over the key ARN (``*`` is "this key"); a statement applies when its principal, action, resource
and every condition match. Any applicable ``Deny`` wins (``EXPLICIT_DENY``); else any applicable
``Allow`` gives ``ALLOW``; else ``IMPLICIT_DENY``.

Principals: ``"*"``, ``{"AWS": "*"}``, ``{"AWS": ARN | account-id | [...]}`` with IAM user, role or
root ARNs (an account id means that account's root). ``Service``, ``Federated`` and
``CanonicalUser`` principals are accepted and never match: kmsgate has no such callers.

Deliberate difference from AWS: kmsgate has no IAM, so a statement naming
``arn:aws:iam::<account>:root`` grants the account's *root identity* only; in AWS it delegates to
the account's IAM policies. Every other principal needs its own Allow (or a grant).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kmsgate.auth.conditions import Condition, Context, parse_conditions
from kmsgate.auth.wildcards import glob_match
from kmsgate.core.errors import MalformedPolicyDocumentError

MAX_POLICY_BYTES = 32 * 1024
MAX_STATEMENTS = 256
VERSIONS = ("2012-10-17", "2008-10-17")

_ACCOUNT_RE = re.compile(r"\d{12}")
_PRINCIPAL_ARN_RE = re.compile(
    r"arn:aws:iam::\d{12}:(?:root|(?:user|role)/[\w+=,.@-]+(?:/[\w+=,.@-]+)*)"
)
_ACTION_RE = re.compile(r"\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+")
_STATEMENT_FIELDS = {
    "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
    "Resource", "NotResource", "Condition",
}
_OTHER_PRINCIPAL_TYPES = ("Service", "Federated", "CanonicalUser")


class Decision(enum.Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """What is asked: ``principal_arn`` wants ``action`` (``kms:Encrypt``) on ``resource`` (key ARN).

    ``context`` holds normalized condition keys (``kmsgate.auth.conditions.normalize_context``).
    """

    principal_arn: str
    action: str
    resource: str
    context: Context = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Statement:
    effect: str
    principals: frozenset[str]
    any_principal: bool
    not_principal: bool
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditions: tuple[Condition, ...] = ()
    sid: str | None = None

    def applies(self, request: PolicyRequest) -> bool:
        named = self.any_principal or request.principal_arn in self.principals
        if named == self.not_principal:
            return False
        acted = any(glob_match(a, request.action, ignore_case=True) for a in self.actions)
        if acted == self.not_action:
            return False
        on_resource = any(r == "*" or glob_match(r, request.resource) for r in self.resources)
        if on_resource == self.not_resource:
            return False
        return all(condition.holds(request.context) for condition in self.conditions)


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Decision
    sid: str | None = None


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """A parsed, validated key policy; ``document`` is the text as submitted (GetKeyPolicy)."""

    document: str
    statements: tuple[Statement, ...]
    version: str = "2008-10-17"
    policy_id: str | None = None

    def evaluate(self, request: PolicyRequest) -> Evaluation:
        allowed: Statement | None = None
        for statement in self.statements:
            if not statement.applies(request):
                continue
            if statement.effect == "Deny":
                return Evaluation(Decision.EXPLICIT_DENY, statement.sid)
            allowed = allowed or statement
        if allowed is not None:
            return Evaluation(Decision.ALLOW, allowed.sid)
        return Evaluation(Decision.IMPLICIT_DENY)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise MalformedPolicyDocumentError(f"{what} must be a non-empty string or list of strings.")
    return tuple(items)


def _principals(value: Any) -> tuple[frozenset[str], bool]:
    """(ARNs named, whether any principal is meant)."""
    if value == "*":
        return frozenset(), True
    if not isinstance(value, dict) or not value:
        raise MalformedPolicyDocumentError("Principal must be \"*\" or an object such as {\"AWS\": [...]}.")
    arns: set[str] = set()
    any_principal = False
    for kind, names in value.items():
        if kind in _OTHER_PRINCIPAL_TYPES:
            _strings(names, f"Principal {kind}")
            continue
        if kind != "AWS":
            raise MalformedPolicyDocumentError(f"Unknown principal type: {str(kind)[:64]}.")
        for name in _strings(names, "Principal AWS"):
            if name == "*":
                any_principal = True
            elif _ACCOUNT_RE.fullmatch(name):
                arns.add(f"arn:aws:iam::{name}:root")
            elif _PRINCIPAL_ARN_RE.fullmatch(name):
                arns.add(name)
            else:
                raise MalformedPolicyDocumentError(
                    f"Policy contains a statement with one or more invalid principals: {name[:200]}"
                )
    return frozenset(arns), any_principal


def _one_of(raw: Mapping[str, Any], name: str, index: int) -> tuple[Any, bool]:
    """(value, negated) of ``name`` or ``Not<name>``; exactly one must be present."""
    has, has_not = name in raw, f"Not{name}" in raw
    if has and has_not:
        raise MalformedPolicyDocumentError(f"Statement {index} has both {name} and Not{name}.")
    if not (has or has_not):
        raise MalformedPolicyDocumentError(f"Statement {index} has no {name} or Not{name}.")
    return (raw[f"Not{name}"], True) if has_not else (raw[name], False)


def _statement(raw: Any, index: int, *, identity: bool = False) -> Statement:
    """One statement; in an identity policy (``identity``) it names no principal: it applies to its owner."""
    if not isinstance(raw, dict):
        raise MalformedPolicyDocumentError(f"Statement {index} is not an object.")
    unknown = set(raw) - _STATEMENT_FIELDS
    if unknown:
        raise MalformedPolicyDocumentError(f"Statement {index} has unknown elements: {sorted(unknown)[:5]}.")
    sid = raw.get("Sid")
    if sid is not None and (not isinstance(sid, str) or len(sid) > 1024):
        raise MalformedPolicyDocumentError(f"Statement {index} has an invalid Sid.")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyDocumentError(f"Statement {index}: Effect must be Allow or Deny.")
    if identity:
        if "Principal" in raw or "NotPrincipal" in raw:
            raise MalformedPolicyDocumentError(
                f"Statement {index}: an identity policy must not name a Principal or NotPrincipal."
            )
        arns, any_principal, not_principal = frozenset[str](), True, False
    else:
        principal, not_principal = _one_of(raw, "Principal", index)
        arns, any_principal = _principals(principal)
    actions, not_action = _one_of(raw, "Action", index)
    action_list = _strings(actions, "Action")
    for action in action_list:
        if not _ACTION_RE.fullmatch(action):
            raise MalformedPolicyDocumentError(f"Statement {index} has an invalid action: {action[:100]}.")
    resources, not_resource = _one_of(raw, "Resource", index)
    resource_list = _strings(resources, "Resource")
    for resource in resource_list:
        if resource != "*" and not resource.startswith("arn:"):
            raise MalformedPolicyDocumentError(f"Statement {index} has an invalid resource: {resource[:100]}.")
    conditions = parse_conditions(raw["Condition"]) if "Condition" in raw else ()
    return Statement(
        effect=effect,
        principals=arns,
        any_principal=any_principal,
        not_principal=not_principal,
        actions=action_list,
        not_action=not_action,
        resources=resource_list,
        not_resource=not_resource,
        conditions=conditions,
        sid=sid,
    )


def parse_policy(document: str) -> KeyPolicy:
    """Parse and validate a key policy, or raise ``MalformedPolicyDocumentError`` saying why."""
    return _parse(document, identity=False)


def parse_identity_policy(document: str) -> KeyPolicy:
    """Parse and validate an identity policy (a principal's own: statements name no ``Principal``).

    The same document rules, limits and evaluation as a key policy; every statement applies to
    the principal that holds the policy.
    """
    return _parse(document, identity=True)


def _parse(document: str, *, identity: bool) -> KeyPolicy:
    if not isinstance(document, str) or not document.strip():
        raise MalformedPolicyDocumentError("The key policy is empty.")
    if len(document.encode("utf-8")) > MAX_POLICY_BYTES:
        raise MalformedPolicyDocumentError(f"The key policy is larger than {MAX_POLICY_BYTES} bytes.")
    try:
        raw = json.loads(document)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MalformedPolicyDocumentError(f"The key policy is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedPolicyDocumentError("The key policy must be a JSON object.")
    unknown = set(raw) - {"Version", "Id", "Statement"}
    if unknown:
        raise MalformedPolicyDocumentError(f"The key policy has unknown elements: {sorted(unknown)[:5]}.")
    version = raw.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise MalformedPolicyDocumentError(f"Unsupported policy Version; use {VERSIONS[0]}.")
    policy_id = raw.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicyDocumentError("Id must be a string.")
    statements = raw.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicyDocumentError("The key policy needs at least one Statement.")
    if len(statements) > MAX_STATEMENTS:
        raise MalformedPolicyDocumentError(f"The key policy has more than {MAX_STATEMENTS} statements.")
    parsed = tuple(_statement(statement, index, identity=identity) for index, statement in enumerate(statements))
    return KeyPolicy(document=document, statements=parsed, version=version, policy_id=policy_id)
