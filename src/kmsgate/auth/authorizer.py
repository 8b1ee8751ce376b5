"""Who may do what: the key policy, grants and the identity's account actions, decided in one place.

kmsgate's single-account model, and where it deliberately differs from AWS KMS:

* The account root (``arn:aws:iam::<account>:root``, credentials from the environment or the
  generated ``credentials`` file) is all-powerful: key policies and grants are not consulted for it,
  so it can always repair a key whose policy locks everyone else out.
* kmsgate has no IAM. A key-policy statement naming the account root grants the root identity only;
  in AWS it delegates to the account's IAM policies. Every other principal needs an Allow in the key
  policy or a grant. An explicit Deny in the key policy overrides both.
* Account-level actions (CreateKey, ListKeys, ListAliases, GenerateRandom, ListRetirableGrants,
  custom key stores) have no key policy; the principal's identity policy (resource ``*``) or the
  identities file's ``account_actions`` shorthand allows them (``DEFAULT_ACCOUNT_ACTIONS`` when
  omitted), and an explicit Deny in the identity policy wins.
* Object actions (``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject``, ``s3:ListBucket``) are
  decided by the identity policy alone (``authorize_identity_action``): no policy, no access.
* RetireGrant is decided by the grant (its retiring principal, or its grantee when the grant
  includes RetireGrant), then by the key policy (an Allow of kms:RetireGrant, as the default
  policy gives the root; AWS reads that permission from IAM policies, which kmsgate does not
  have). A grant never lets its grantee retire another grant. ListRetirableGrants lets a non-root
  caller list only the grants it may retire itself.

The condition context built here (``condition_context``) holds the AWS global keys
``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:PrincipalType``, ``aws:username``,
``aws:SourceIp``, ``aws:CurrentTime``, ``aws:EpochTime`` and the KMS keys
``kms:CallerAccount``, ``kms:GrantIsForAWSResource`` (always false: kmsgate has no integrated
services), ``kms:EncryptionContext:<key>``, ``kms:EncryptionContextKeys``, ``kms:RequestAlias``,
``kms:GrantOperations``, ``kms:GranteePrincipal``, ``kms:RetiringPrincipal``,
``kms:GrantConstraintType``, plus whatever the service passes in ``RequestFacts.extra``
(e.g. ``kms:EncryptionAlgorithm``, ``kms:KeySpec``, ``kms:ResourceAliases``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kmsgate.auth.conditions import ContextValue, normalize_context
from kmsgate.auth.grants import Grant, grant_permits, may_retire, permits_child_grant
from kmsgate.auth.identities import Principal
from kmsgate.auth.policy import Decision, Evaluation, KeyPolicy, PolicyRequest
from kmsgate.auth.wildcards import glob_match
from kmsgate.core.errors import AccessDeniedError, MalformedPolicyDocumentError
from kmsgate.core.principal import Caller

ACCOUNT_ACTIONS = frozenset(
    {
        "kms:CreateKey", "kms:ListKeys", "kms:ListAliases", "kms:GenerateRandom",
        "kms:ListRetirableGrants", "kms:CreateCustomKeyStore", "kms:DescribeCustomKeyStores",
        "kms:UpdateCustomKeyStore", "kms:DeleteCustomKeyStore", "kms:ConnectCustomKeyStore",
        "kms:DisconnectCustomKeyStore",
    }
)
LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."


@dataclass(frozen=True, slots=True)
class KeyAccess:
    """What decides access to one key: its ARN, parsed policy and live grants."""

    key_arn: str
    policy: KeyPolicy
    grants: Sequence[Grant] = ()


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Request details conditions may test. ``grant_request`` is the grant CreateGrant would create."""

    encryption_context: Mapping[str, str] | None = None
    request_alias: str | None = None
    grant_request: Grant | None = None
    now: float | None = None
    extra: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Authorization:
    """Why a request was allowed: ``root``, ``policy`` (with the statement's Sid) or ``grant``."""

    basis: str
    sid: str | None = None
    grant_id: str | None = None


def condition_context(caller: Caller, facts: RequestFacts = RequestFacts()) -> dict[str, tuple[str, ...]]:
    """The normalized condition keys for ``caller`` making a request with ``facts``."""
    resource_type = caller.arn.split(":", 5)[-1]
    principal_type = "Account" if caller.is_account_root else (
        "User" if resource_type.startswith("user/") else "AssumedRole"
    )
    raw: dict[str, ContextValue] = {
        "aws:PrincipalArn": caller.arn,
        "aws:PrincipalAccount": caller.account_id,
        "aws:PrincipalType": principal_type,
        "aws:username": resource_type.rsplit("/", 1)[-1] if principal_type == "User" else None,
        "aws:SourceIp": caller.source_ip,
        "kms:CallerAccount": caller.account_id,
        "kms:GrantIsForAWSResource": False,
        "kms:RequestAlias": facts.request_alias,
    }
    if facts.now is not None:
        moment = datetime.datetime.fromtimestamp(facts.now, datetime.timezone.utc)
        raw["aws:CurrentTime"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        raw["aws:EpochTime"] = str(int(facts.now))
    if facts.encryption_context:  # an empty context leaves the keys absent, as in AWS
        raw["kms:EncryptionContextKeys"] = list(facts.encryption_context)
        for key, value in facts.encryption_context.items():
            raw[f"kms:EncryptionContext:{key}"] = value
    grant = facts.grant_request
    if grant is not None:
        raw["kms:GrantOperations"] = list(grant.operations)
        raw["kms:GranteePrincipal"] = grant.grantee_principal
        raw["kms:RetiringPrincipal"] = grant.retiring_principal
        if grant.constraints is not None:
            raw["kms:GrantConstraintType"] = [
                name
                for name, value in (
                    ("EncryptionContextSubset", grant.constraints.encryption_context_subset),
                    ("EncryptionContextEquals", grant.constraints.encryption_context_equals),
                )
                if value is not None
            ]
    raw.update(facts.extra)
    return normalize_context(raw)


def _denied(caller: Caller, action: str, resource: str, explicit: bool, kind: str = "resource") -> AccessDeniedError:
    why = (
        f"with an explicit deny in {'an' if kind[0] in 'aeiou' else 'a'} {kind}-based policy"
        if explicit
        else f"because no {kind}-based policy allows the {action} action"
    )
    return AccessDeniedError(
        f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource} {why}"
    )


def authorize(caller: Caller, action: str, key: KeyAccess, facts: RequestFacts = RequestFacts()) -> Authorization:
    """Allow ``caller`` to perform ``action`` (``kms:Encrypt``) on ``key``, or raise AccessDeniedError."""
    if caller.is_account_root:
        return Authorization("root")
    request = PolicyRequest(caller.arn, action, key.key_arn, condition_context(caller, facts))
    evaluation = key.policy.evaluate(request)
    if evaluation.decision is Decision.EXPLICIT_DENY:
        raise _denied(caller, action, key.key_arn, explicit=True)
    if evaluation.decision is Decision.ALLOW:
        return Authorization("policy", sid=evaluation.sid)
    operation = action.removeprefix("kms:")
    # A grant's RetireGrant operation lets its grantee retire that grant alone (``may_retire``,
    # decided before the key is consulted), never another grant on the key.
    grants = () if operation == "RetireGrant" else key.grants
    for grant in grants:
        if grant.key_arn != key.key_arn or grant.grantee_principal != caller.arn:
            continue
        if operation == "CreateGrant":
            allowed = facts.grant_request is not None and permits_child_grant(grant, facts.grant_request)
        else:
            allowed = grant_permits(grant, operation, facts.encryption_context)
        if allowed:
            return Authorization("grant", grant_id=grant.grant_id)
    raise _denied(caller, action, key.key_arn, explicit=False)


def _identity_decision(caller: Caller, action: str, resource: str, principal: Principal | None,
                       facts: RequestFacts) -> Evaluation:
    if principal is None or principal.policy is None:
        return Evaluation(Decision.IMPLICIT_DENY)
    return principal.policy.evaluate(PolicyRequest(caller.arn, action, resource, condition_context(caller, facts)))


def authorize_account_action(caller: Caller, action: str, principal: Principal | None) -> Authorization:
    """Account-level actions (``ACCOUNT_ACTIONS``): allowed by the identity's ``account_actions`` or
    its identity policy (resource ``*``), unless that policy denies them explicitly."""
    if caller.is_account_root:
        return Authorization("root")
    evaluation = _identity_decision(caller, action, "*", principal, RequestFacts())
    if evaluation.decision is Decision.EXPLICIT_DENY:
        raise _denied(caller, action, "*", explicit=True, kind="identity")
    if evaluation.decision is Decision.ALLOW:
        return Authorization("identity", sid=evaluation.sid)
    patterns = principal.account_actions if principal is not None else ()
    if any(glob_match(pattern, action, ignore_case=True) for pattern in patterns):
        return Authorization("identity")
    raise _denied(caller, action, "*", explicit=False, kind="identity")


def authorize_identity_action(caller: Caller, action: str, resource: str, principal: Principal | None,
                              facts: RequestFacts = RequestFacts()) -> Authorization:
    """An action decided by the caller's identity policy alone (``s3:GetObject`` on an object ARN).

    The root may do everything; anyone else needs an Allow in its identity policy and no
    applicable Deny. No policy allows nothing.
    """
    if caller.is_account_root:
        return Authorization("root")
    evaluation = _identity_decision(caller, action, resource, principal, facts)
    if evaluation.decision is Decision.ALLOW:
        return Authorization("identity", sid=evaluation.sid)
    raise _denied(caller, action, resource, explicit=evaluation.decision is Decision.EXPLICIT_DENY,
                  kind="identity")


def authorize_retire(caller: Caller, grant: Grant) -> Authorization:
    """RetireGrant: the root, the grant's retiring principal, or its grantee if it may retire it."""
    if caller.is_account_root:
        return Authorization("root")
    if may_retire(grant, caller.arn):
        return Authorization("grant", grant_id=grant.grant_id)
    raise _denied(caller, "kms:RetireGrant", grant.key_arn, explicit=False)


def authorize_list_retirable(caller: Caller, principal: Principal | None, retiring_principal: str) -> Authorization:
    """ListRetirableGrants: an account action; non-root callers may only ask about themselves."""
    basis = authorize_account_action(caller, "kms:ListRetirableGrants", principal)
    if caller.is_account_root or retiring_principal == caller.arn:
        return basis
    raise _denied(caller, "kms:ListRetirableGrants", retiring_principal, explicit=False, kind="identity")


def check_lockout(policy: KeyPolicy, caller: Caller, key_arn: str, *, bypass: bool = False) -> None:
    """The policy lockout safety check of CreateKey and PutKeyPolicy.

    Raises ``MalformedPolicyDocumentError`` unless ``policy`` still lets ``caller`` call
    kms:PutKeyPolicy (conditions see only the caller's own keys) or ``bypass`` is set.
    The root always passes: it is never locked out in kmsgate.
    """
    if bypass or caller.is_account_root:
        return
    request = PolicyRequest(caller.arn, "kms:PutKeyPolicy", key_arn, condition_context(caller))
    if policy.evaluate(request).decision is not Decision.ALLOW:
        raise MalformedPolicyDocumentError(LOCKOUT_MESSAGE)
