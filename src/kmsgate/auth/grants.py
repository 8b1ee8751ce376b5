"""Grants: validated CreateGrant requests as values, and whether a grant permits a request.

A grant lets ``grantee_principal`` call exactly ``operations`` on one key. Constraints apply to
the operations that take an encryption context (``CONTEXT_OPERATIONS``), as AWS KMS does:

* ``EncryptionContextSubset``: every constraint pair is in the request's context.
* ``EncryptionContextEquals``: the request's context has exactly the constraint's pairs.

As AWS documents, keys and values compare exactly (case-sensitively): ``{"Tenant": "acme"}`` does
not satisfy a constraint on ``tenant``, and a context holding ``tenant`` and ``TENANT`` has two
distinct pairs. When both constraints are given, both must hold. A grant created under another
grant (CreateGrant allowed by a grant) is never looser than it (``permits_child_grant``).

Grant token (opaque to clients, base64url without padding)::

    byte 0       version, 0x01
    bytes 1..32  the grant id (32 bytes, shown as 64 hex digits)
    bytes 33..48 random, so every CreateGrant answer carries a distinct token

A token only names a grant; it never adds permission (the caller must still be the grantee).
kmsgate applies a grant as soon as CreateGrant returns, so tokens are accepted but not needed.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kmsgate.auth.identities import parse_principal_arn
from kmsgate.core.errors import InvalidGrantTokenError, ValidationError

GRANT_OPERATIONS = frozenset(
    {
        "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom", "ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant",
        "RetireGrant", "DescribeKey", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
        "GenerateMac", "VerifyMac", "DeriveSharedSecret", "Encapsulate", "Decapsulate",
    }
)
CONTEXT_OPERATIONS = frozenset(
    {
        "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext", "CreateGrant",
    }
)
NO_CONTEXT_CRYPTO_OPERATIONS = frozenset(
    {"Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac", "DeriveSharedSecret", "Encapsulate", "Decapsulate"}
)
MAX_CONSTRAINT_PAIRS = 8
MAX_CONSTRAINT_VALUE_CHARS = 384
MAX_GRANT_TOKENS = 10
MAX_GRANT_TOKEN_CHARS = 8192
TOKEN_VERSION = 1
GRANT_ID_BYTES = 32
TOKEN_RANDOM_BYTES = 16

_NAME_RE = re.compile(r"[a-zA-Z0-9:/_-]{1,256}")
_SERVICE_PRINCIPAL_RE = re.compile(r"[a-z0-9.-]{1,200}\.amazonaws\.com")
_GRANT_ID_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class GrantConstraints:
    encryption_context_subset: Mapping[str, str] | None = None
    encryption_context_equals: Mapping[str, str] | None = None

    def satisfied_by(self, encryption_context: Mapping[str, str]) -> bool:
        subset, equals = self.encryption_context_subset, self.encryption_context_equals
        if subset is not None and not _contains(encryption_context, subset):
            return False
        if equals is not None and dict(encryption_context) != dict(equals):
            return False
        return True


def _contains(context: Mapping[str, str], pairs: Mapping[str, str]) -> bool:
    """Whether ``context`` holds every one of ``pairs``, keys and values compared exactly."""
    return all(key in context and context[key] == value for key, value in pairs.items())


@dataclass(frozen=True, slots=True)
class Grant:
    grant_id: str
    key_arn: str
    grantee_principal: str
    operations: tuple[str, ...]
    issuing_account: str
    creation_date: float
    retiring_principal: str | None = None
    constraints: GrantConstraints | None = None
    name: str | None = None

    def same_request(self, other: Grant) -> bool:
        """Whether ``other`` repeats this grant's CreateGrant request (Name idempotency)."""
        return (
            self.name is not None
            and self.name == other.name
            and self.key_arn == other.key_arn
            and self.grantee_principal == other.grantee_principal
            and self.retiring_principal == other.retiring_principal
            and set(self.operations) == set(other.operations)
            and _constraint_maps(self.constraints) == _constraint_maps(other.constraints)
        )


def _constraint_maps(c: GrantConstraints | None) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    if c is None:
        return None, None
    subset = dict(c.encryption_context_subset) if c.encryption_context_subset is not None else None
    equals = dict(c.encryption_context_equals) if c.encryption_context_equals is not None else None
    return subset, equals


def _check_principal(value: object, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise ValidationError(f"{what} must be 1 to 256 characters.")
    if _SERVICE_PRINCIPAL_RE.fullmatch(value):
        return value
    try:
        parse_principal_arn(value)
    except ValueError:
        raise ValidationError(f"{what} is not a valid principal: {value[:256]}") from None
    return value


def _check_context_map(value: object, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(f"{what} must map strings to strings.")
    if len(value) > MAX_CONSTRAINT_PAIRS:
        raise ValidationError(f"{what} has more than {MAX_CONSTRAINT_PAIRS} pairs.")
    if any(len(v) > MAX_CONSTRAINT_VALUE_CHARS or not k for k, v in value.items()):
        raise ValidationError(f"{what} values are limited to {MAX_CONSTRAINT_VALUE_CHARS} characters.")
    return dict(value)


def new_grant(
    *,
    key_arn: str,
    grantee_principal: str,
    operations: Sequence[str],
    account_id: str,
    now: float,
    retiring_principal: str | None = None,
    encryption_context_subset: Mapping[str, str] | None = None,
    encryption_context_equals: Mapping[str, str] | None = None,
    name: str | None = None,
    grant_id: str | None = None,
) -> Grant:
    """A grant from CreateGrant's inputs, validated as the KMS API reference states."""
    _check_principal(grantee_principal, "GranteePrincipal")
    if retiring_principal is not None:
        _check_principal(retiring_principal, "RetiringPrincipal")
    if not isinstance(operations, (list, tuple)) or not operations:
        raise ValidationError("Operations must list at least one grant operation.")
    unknown = [op for op in operations if op not in GRANT_OPERATIONS]
    if unknown:
        raise ValidationError(f"Operations contains an invalid value: {str(unknown[0])[:64]}")
    if name is not None and (not isinstance(name, str) or not _NAME_RE.fullmatch(name)):
        raise ValidationError("Name must be 1 to 256 characters of a-z, A-Z, 0-9, ':', '/', '_' and '-'.")
    subset = _check_context_map(encryption_context_subset, "EncryptionContextSubset")
    equals = _check_context_map(encryption_context_equals, "EncryptionContextEquals")
    constraints = None
    if subset or equals:
        if NO_CONTEXT_CRYPTO_OPERATIONS.intersection(operations):
            raise ValidationError(
                "Encryption context grant constraints cannot be used with operations that take no "
                "encryption context."
            )
        constraints = GrantConstraints(subset or None, equals or None)
    return Grant(
        grant_id=grant_id or os.urandom(GRANT_ID_BYTES).hex(),
        key_arn=key_arn,
        grantee_principal=grantee_principal,
        operations=tuple(dict.fromkeys(operations)),
        issuing_account=f"arn:aws:iam::{account_id}:root",
        creation_date=now,
        retiring_principal=retiring_principal,
        constraints=constraints,
        name=name,
    )


def find_same_grant(existing: Iterable[Grant], candidate: Grant) -> Grant | None:
    """The grant a named CreateGrant repeats, if any (it returns that grant's id)."""
    return next((grant for grant in existing if grant.same_request(candidate)), None)


def grant_permits(grant: Grant, operation: str, encryption_context: Mapping[str, str] | None) -> bool:
    """Whether ``grant`` allows ``operation`` (``Encrypt`` or ``kms:Encrypt``) with that context."""
    operation = operation.removeprefix("kms:")
    if operation not in grant.operations:
        return False
    if grant.constraints is None or operation not in CONTEXT_OPERATIONS:
        return True
    return grant.constraints.satisfied_by(encryption_context or {})


def permits_child_grant(parent: Grant, child: Grant) -> bool:
    """Whether a grantee holding ``parent`` (with CreateGrant) may create ``child``.

    The child may be no looser than the parent: its operations are among the parent's, and every
    context its constraints admit, the parent's admit too.
    """
    if "CreateGrant" not in parent.operations or not set(child.operations) <= set(parent.operations):
        return False
    if parent.constraints is None:
        return True
    if child.constraints is None:
        return False
    child_subset = child.constraints.encryption_context_subset
    child_equals = child.constraints.encryption_context_equals
    parent_subset = parent.constraints.encryption_context_subset
    parent_equals = parent.constraints.encryption_context_equals
    # The parent's Equals admits one context: the child must name that very context.
    if parent_equals is not None and (child_equals is None or dict(child_equals) != dict(parent_equals)):
        return False
    # Every context the child admits must hold the parent's Subset pairs: it holds the child's
    # Equals pairs exactly, and its Subset pairs at least, so either may carry them.
    if parent_subset is not None and not any(
        pairs is not None and _contains(pairs, parent_subset) for pairs in (child_equals, child_subset)
    ):
        return False
    return True


def may_retire(grant: Grant, caller_arn: str) -> bool:
    """RetireGrant: the retiring principal, or the grantee when the grant includes RetireGrant.

    (The account root may always; the authorizer decides that.)
    """
    if grant.retiring_principal is not None and grant.retiring_principal == caller_arn:
        return True
    return grant.grantee_principal == caller_arn and "RetireGrant" in grant.operations


def grant_token(grant_id: str) -> str:
    """A fresh token naming ``grant_id``."""
    if not _GRANT_ID_RE.fullmatch(grant_id):
        raise ValueError("grant ids are 64 lowercase hex digits")
    raw = bytes([TOKEN_VERSION]) + bytes.fromhex(grant_id) + os.urandom(TOKEN_RANDOM_BYTES)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def grant_id_of_token(token: str) -> str:
    """The grant id a token names, or ``InvalidGrantTokenError``."""
    expected = 1 + GRANT_ID_BYTES + TOKEN_RANDOM_BYTES
    if not isinstance(token, str) or len(token) > MAX_GRANT_TOKEN_CHARS:
        raise InvalidGrantTokenError("The grant token is not valid.")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidGrantTokenError("The grant token is not valid.") from None
    if len(raw) != expected or raw[0] != TOKEN_VERSION:
        raise InvalidGrantTokenError("The grant token is not valid.")
    return raw[1 : 1 + GRANT_ID_BYTES].hex()


def check_grant_tokens(tokens: Sequence[str]) -> tuple[str, ...]:
    """Validate a request's GrantTokens (count and length) and return the grant ids they name."""
    if len(tokens) > MAX_GRANT_TOKENS:
        raise ValidationError(f"GrantTokens has more than {MAX_GRANT_TOKENS} tokens.")
    return tuple(grant_id_of_token(token) for token in tokens)


def check_grant_id(grant_id: object) -> str:
    """A GrantId as given to RetireGrant/RevokeGrant, validated."""
    if not isinstance(grant_id, str) or not 1 <= len(grant_id) <= 128:
        raise ValidationError("GrantId must be 1 to 128 characters.")
    return grant_id


def grant_list_entry(grant: Grant) -> dict[str, object]:
    """The wire form of a grant in ListGrants / ListRetirableGrants (CreationDate: epoch seconds)."""
    entry: dict[str, object] = {
        "KeyId": grant.key_arn,
        "GrantId": grant.grant_id,
        "CreationDate": grant.creation_date,
        "GranteePrincipal": grant.grantee_principal,
        "IssuingAccount": grant.issuing_account,
        "Operations": list(grant.operations),
    }
    if grant.name is not None:
        entry["Name"] = grant.name
    if grant.retiring_principal is not None:
        entry["RetiringPrincipal"] = grant.retiring_principal
    if grant.constraints is not None:
        constraints: dict[str, object] = {}
        if grant.constraints.encryption_context_subset is not None:
            constraints["EncryptionContextSubset"] = dict(grant.constraints.encryption_context_subset)
        if grant.constraints.encryption_context_equals is not None:
            constraints["EncryptionContextEquals"] = dict(grant.constraints.encryption_context_equals)
        entry["Constraints"] = constraints
    return entry
