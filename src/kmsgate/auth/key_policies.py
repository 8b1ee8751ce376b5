"""Key policies kmsgate writes for you: AWS's default policy and the administrators/users policy.

``default_key_policy`` is the policy AWS KMS gives a key created without one (the account root
gets ``kms:*``). ``admin_user_key_policy`` is the policy ``kmsgate keys create --admin ARN…
--user ARN…`` writes, shaped as the AWS console's: key administrators may manage the key but not
use it (their actions are listed one by one, without CreateGrant); key users may use it for
cryptography. In kmsgate the root statement means the root
identity only (see ``kmsgate.auth.policy``), so admins and users are exactly the ARNs listed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from kmsgate.auth.identities import parse_principal_arn

# The key-administrator actions, named one by one. The AWS console's policy grants prefixes
# (``kms:Create*``, ``kms:Put*``…), which include CreateGrant: an administrator could grant itself
# Decrypt. Here administrators manage the key's life, aliases, tags, rotation, imported material,
# policy and grants they did not make (list, revoke), and nothing that uses the key or delegates
# its use. PutKeyPolicy stays: as in AWS, it lets an administrator rewrite the whole policy
# (including this statement) — whoever may do that is trusted with the key.
KEY_ADMIN_ACTIONS: tuple[str, ...] = (
    "kms:DescribeKey",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:UpdateKeyDescription",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ListResourceTags",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:GetKeyRotationStatus",
    "kms:RotateKeyOnDemand",
    "kms:ListKeyRotations",
    "kms:GetKeyPolicy",
    "kms:ListKeyPolicies",
    "kms:PutKeyPolicy",
    "kms:ListGrants",
    "kms:RevokeGrant",
    "kms:GetParametersForImport",
    "kms:ImportKeyMaterial",
    "kms:DeleteImportedKeyMaterial",
)

# The key-user actions for a symmetric encryption key.
KEY_USER_ACTIONS: tuple[str, ...] = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
)

# The key-user actions for the other kinds of key, as the AWS console's default policy lists them.
KEY_USER_ACTIONS_BY_USAGE: dict[str, tuple[str, ...]] = {
    "ENCRYPT_DECRYPT": ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:DescribeKey", "kms:GetPublicKey"),
    "SIGN_VERIFY": ("kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"),
    "GENERATE_VERIFY_MAC": ("kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"),
    "KEY_AGREEMENT": ("kms:DescribeKey", "kms:GetPublicKey", "kms:DeriveSharedSecret"),
    "ENCAPSULATE_DECAPSULATE": ("kms:DescribeKey", "kms:GetPublicKey", "kms:Encapsulate", "kms:Decapsulate"),
}


def key_user_actions(key_usage: str, symmetric: bool) -> tuple[str, ...]:
    """What key users may do with a key of this usage (a symmetric encryption key: ``KEY_USER_ACTIONS``)."""
    if symmetric:
        return KEY_USER_ACTIONS
    return KEY_USER_ACTIONS_BY_USAGE[key_usage]


# Grants for integrated AWS services; kms:GrantIsForAWSResource is never true in kmsgate,
# so this statement is kept for fidelity with AWS and never applies.
KEY_USER_GRANT_ACTIONS: tuple[str, ...] = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")


def _root_statement(account_id: str) -> dict[str, object]:
    return {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def default_key_policy(account_id: str) -> str:
    """AWS's default key policy text for ``account_id``."""
    policy = {"Version": "2012-10-17", "Id": "key-default-1", "Statement": [_root_statement(account_id)]}
    return json.dumps(policy, indent=2)


def admin_user_key_policy(
    account_id: str, admins: Sequence[str], users: Sequence[str], user_actions: Sequence[str] = KEY_USER_ACTIONS
) -> str:
    """A key policy with a key-administrators and a key-users statement (``user_actions``); ``ValueError`` on bad ARNs."""
    for arn in (*admins, *users):
        parse_principal_arn(arn)
    statements: list[dict[str, object]] = [_root_statement(account_id)]
    if admins:
        statements.append(
            {
                "Sid": "Allow access for Key Administrators",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(admins))},
                "Action": list(KEY_ADMIN_ACTIONS),
                "Resource": "*",
            }
        )
    if users:
        statements.append(
            {
                "Sid": "Allow use of the key",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(users))},
                "Action": list(user_actions),
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": "Allow attachment of persistent resources",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(users))},
                "Action": list(KEY_USER_GRANT_ACTIONS),
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    policy = {"Version": "2012-10-17", "Id": "key-consolepolicy-3", "Statement": statements}
    return json.dumps(policy, indent=2)
