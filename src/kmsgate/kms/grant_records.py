"""Grants as stored records: the JSON object the key store keeps for each grant.

Record (one JSON object per grant, in the ``grants`` table next to its key id)::

    {"grant_id": "<64 hex>", "key_arn": "...", "grantee_principal": "...",
     "operations": ["Decrypt", ...], "issuing_account": "arn:aws:iam::<acct>:root",
     "creation_date": <POSIX seconds>, "retiring_principal": "..." | null, "name": "..." | null,
     "constraints": null | {"encryption_context_subset": {...} | null,
                            "encryption_context_equals": {...} | null}}

A grant holds no secret: a grant token is never stored (it only names the grant id).
"""

from __future__ import annotations

from typing import Any

from kmsgate.auth.grants import Grant, GrantConstraints


def grant_to_record(grant: Grant) -> dict[str, Any]:
    constraints = None
    if grant.constraints is not None:
        subset = grant.constraints.encryption_context_subset
        equals = grant.constraints.encryption_context_equals
        constraints = {
            "encryption_context_subset": dict(subset) if subset is not None else None,
            "encryption_context_equals": dict(equals) if equals is not None else None,
        }
    return {
        "grant_id": grant.grant_id,
        "key_arn": grant.key_arn,
        "grantee_principal": grant.grantee_principal,
        "operations": list(grant.operations),
        "issuing_account": grant.issuing_account,
        "creation_date": grant.creation_date,
        "retiring_principal": grant.retiring_principal,
        "name": grant.name,
        "constraints": constraints,
    }


def grant_from_record(record: dict[str, Any]) -> Grant:
    raw = record.get("constraints")
    constraints = None
    if raw is not None:
        constraints = GrantConstraints(
            encryption_context_subset=raw.get("encryption_context_subset"),
            encryption_context_equals=raw.get("encryption_context_equals"),
        )
    return Grant(
        grant_id=record["grant_id"],
        key_arn=record["key_arn"],
        grantee_principal=record["grantee_principal"],
        operations=tuple(record["operations"]),
        issuing_account=record["issuing_account"],
        creation_date=float(record["creation_date"]),
        retiring_principal=record.get("retiring_principal"),
        constraints=constraints,
        name=record.get("name"),
    )
