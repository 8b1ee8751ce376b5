"""``kmsgate keys create``: a key with key administrators and key users, through the KMS API.

The command is a client of a running kmsgate: it signs CreateKey (and CreateAlias) with the
standard AWS credential chain (environment, ``AWS_SHARED_CREDENTIALS_FILE`` / ``AWS_PROFILE``…),
so after a first start::

    AWS_SHARED_CREDENTIALS_FILE=data/credentials AWS_PROFILE=kmsgate \\
        kmsgate keys create --admin arn:aws:iam::111122223333:user/alice \\
                            --user arn:aws:iam::111122223333:role/app --alias alias/app

The key policy is ``kmsgate.auth.key_policies.admin_user_key_policy``: administrators may manage
the key but not use it, users may use it but not manage it (with the actions of its key spec and
usage: ``--key-spec ECC_NIST_P256`` users may Sign, Verify and GetPublicKey), and the account root
keeps ``kms:*``.
The key's metadata (and the alias, when given) is printed as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from kmsgate.auth.key_policies import admin_user_key_policy, key_user_actions
from kmsgate.config import DEFAULTS
from kmsgate.core.errors import ValidationError
from kmsgate.kms.keyspecs import KEY_SPECS, check_usage

DEFAULT_ENDPOINT_URL = f"http://{DEFAULTS.host}:{DEFAULTS.port}"
DEFAULT_REGION = DEFAULTS.region


def add_keys_command(subparsers: Any, environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Add ``keys create`` to a ``kmsgate`` sub-command set; returns the ``keys`` parser."""
    env = os.environ if environ is None else environ
    keys: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="manage keys on a running kmsgate through its KMS API"
    )
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create a key whose policy names its administrators and users",
        description="Create a key (symmetric unless --key-spec says otherwise) on a running kmsgate with a key "
        "policy giving --admin principals the key-administrator actions and --user principals the key-usage "
        "actions of its spec and usage. Credentials come from the "
        "standard AWS chain (e.g. AWS_SHARED_CREDENTIALS_FILE=data/credentials AWS_PROFILE=kmsgate).",
    )
    create.add_argument("--admin", action="extend", nargs="+", default=[], metavar="ARN",
                        help="principal ARN(s) that may administer the key (not use it)")
    create.add_argument("--user", action="extend", nargs="+", default=[], metavar="ARN",
                        help="principal ARN(s) that may use the key for cryptography (not administer it)")
    create.add_argument("--alias", help="also create this alias (alias/NAME) for the key")
    create.add_argument("--description", default="", help="the key's description")
    create.add_argument("--key-spec", default="SYMMETRIC_DEFAULT", choices=sorted(KEY_SPECS), metavar="SPEC",
                        help="the key spec (default: %(default)s; RSA_2048, ECC_NIST_P256, HMAC_256, ML_DSA_65…)")
    create.add_argument("--key-usage", default=None,
                        choices=("ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT",
                                 "ENCAPSULATE_DECAPSULATE"),
                        help="the key usage (default: the first the spec allows, as CreateKey picks "
                        "ENCRYPT_DECRYPT for RSA and SIGN_VERIFY for elliptic curves)")
    create.add_argument("--endpoint-url",
                        default=env.get("AWS_ENDPOINT_URL_KMS") or env.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT_URL,
                        help="the kmsgate KMS endpoint [AWS_ENDPOINT_URL_KMS] (default: %(default)s)")
    create.add_argument("--region", default=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
                        help="region to sign for [AWS_REGION] (default: %(default)s)")
    create.add_argument("--account-id", default=None,
                        help="account id for the root statement (default: the account in the first --admin or --user ARN)")
    return keys


def _client(endpoint_url: str, region: str) -> Any:
    import botocore.session  # a dependency of kmsgate (boto3 is not); imported only by this command
    from botocore.config import Config

    config = Config(retries={"max_attempts": 2, "mode": "standard"})
    return botocore.session.Session().create_client("kms", region_name=region, endpoint_url=endpoint_url,
                                                    config=config)


def _account_of(arns: Sequence[str]) -> str | None:
    for arn in arns:
        parts = arn.split(":")
        if len(parts) >= 5 and parts[4].isdigit():
            return parts[4]
    return None


def create_key(args: argparse.Namespace, client: Any) -> dict[str, Any]:
    """CreateKey with the administrators/users policy, then CreateAlias; returns the output document."""
    account_id = args.account_id or _account_of([*args.admin, *args.user])
    if account_id is None:
        raise ValueError("give --account-id, or at least one --admin or --user ARN")
    spec = KEY_SPECS[args.key_spec]
    key_usage = args.key_usage or spec.usages[0]
    try:
        check_usage(spec, key_usage)
    except ValidationError as exc:
        raise ValueError(exc.message) from None
    user_actions = key_user_actions(key_usage, symmetric=spec.family == "symmetric")
    policy = admin_user_key_policy(account_id, args.admin, args.user, user_actions)
    metadata = client.create_key(
        Policy=policy, Description=args.description, KeySpec=spec.name, KeyUsage=key_usage
    )["KeyMetadata"]
    output: dict[str, Any] = {"KeyMetadata": metadata}
    if args.alias:
        client.create_alias(AliasName=args.alias, TargetKeyId=metadata["KeyId"])
        output["AliasName"] = args.alias
    return output


def run_keys_command(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run ``kmsgate keys …``; returns the process exit code."""
    from botocore.exceptions import BotoCoreError, ClientError

    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if args.keys_command != "create":  # pragma: no cover - argparse rejects unknown actions
        return 2
    if not args.admin and not args.user:
        print("kmsgate keys create: give at least one --admin or --user ARN", file=err)
        return 2
    try:
        output = create_key(args, _client(args.endpoint_url, args.region))
    except ValueError as exc:
        print(f"kmsgate keys create: {exc}", file=err)
        return 2
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"kmsgate keys create: {error.get('Code', 'Error')}: {error.get('Message', '')}", file=err)
        return 1
    except BotoCoreError as exc:
        print(f"kmsgate keys create: {exc}", file=err)
        return 1
    json.dump(output, out, indent=2, default=str)
    out.write("\n")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m kmsgate.admin_cli keys create …`` (the same command as ``kmsgate keys``)."""
    parser = argparse.ArgumentParser(prog="kmsgate")
    add_keys_command(parser.add_subparsers(dest="command", required=True))
    sys.exit(run_keys_command(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
