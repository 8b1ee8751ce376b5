"""``kmsgate store copy`` moves an installation: a server on the copy decrypts what the original made,
and holds the same keys, material versions, aliases, grants, policies, tags and rotation state."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kmsgate.kms.sqlite_store import DB_FILENAME
from tests.conftest import start_server

from .helpers import ACCOUNT_ID

GRANTEE = f"arn:aws:iam::{ACCOUNT_ID}:user/app"


def _store_copy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kmsgate", "store", "copy", *args],
                          capture_output=True, text=True, timeout=120)


def _state(kms: Any, key_id: str) -> dict[str, Any]:
    """What a client can see of a key, besides its ciphertexts."""
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    return {
        "metadata": {k: metadata[k] for k in ("KeyId", "Arn", "KeyState", "Description", "KeySpec", "CreationDate")},
        "aliases": sorted(a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]),
        "grants": sorted((g["GrantId"], g["GranteePrincipal"], tuple(g["Operations"]))
                         for g in kms.list_grants(KeyId=key_id)["Grants"]),
        "policy": json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]),
        "tags": kms.list_resource_tags(KeyId=key_id)["Tags"],
        "rotation": kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"],
        "rotations": [r["KeyId"] for r in kms.list_key_rotations(KeyId=key_id)["Rotations"]],
    }


def test_a_copied_installation_decrypts_its_old_ciphertexts_on_postgresql_and_back_on_sqlite(
    postgres_url: str, tmp_path: Path,
) -> None:
    root_key = {"KMSGATE_ROOT_KEY": base64.b64encode(os.urandom(32)).decode()}
    original = start_server(tmp_path / "original", **root_key)
    try:
        kms = original.kms_client()
        key_id = kms.create_key(Description="moved", Tags=[{"TagKey": "team", "TagValue": "payments"}])[
            "KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/moved", TargetKeyId=key_id)
        kms.create_grant(KeyId=key_id, GranteePrincipal=GRANTEE, Operations=["Decrypt"], Name="app-decrypt")
        policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        policy["Statement"].append({"Sid": "copied", "Effect": "Allow", "Principal": {"AWS": GRANTEE},
                                    "Action": "kms:DescribeKey", "Resource": "*"})
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
        kms.enable_key_rotation(KeyId=key_id)
        before_rotation = kms.encrypt(KeyId=key_id, Plaintext=b"first material")["CiphertextBlob"]
        kms.rotate_key_on_demand(KeyId=key_id)
        after_rotation = kms.encrypt(KeyId="alias/moved", Plaintext=b"second material")["CiphertextBlob"]
        expected = _state(kms, key_id)
        keys = len(kms.list_keys()["Keys"])  # with the gateway's default key, made at start
        aliases = sum(1 for a in kms.list_aliases()["Aliases"] if "TargetKeyId" in a)
    finally:
        original.stop()

    copied = _store_copy("--from", f"sqlite://{tmp_path / 'original' / DB_FILENAME}", "--to", postgres_url)
    assert copied.returncode == 0, copied.stderr
    assert f"{keys} keys, {keys + 1} material versions, {aliases} aliases, 1 grants copied" in copied.stdout

    on_postgres = start_server(tmp_path / "on-postgres", KMSGATE_KEY_STORE=postgres_url, **root_key)
    try:
        kms = on_postgres.kms_client()
        assert kms.decrypt(CiphertextBlob=before_rotation)["Plaintext"] == b"first material"
        assert kms.decrypt(CiphertextBlob=after_rotation)["Plaintext"] == b"second material"
        assert _state(kms, key_id) == expected
        made_on_postgres = kms.encrypt(KeyId="alias/moved", Plaintext=b"third")["CiphertextBlob"]
    finally:
        on_postgres.stop()

    back = tmp_path / "back" / DB_FILENAME
    copied_back = _store_copy("--from", postgres_url, "--to", f"sqlite://{back}")
    assert copied_back.returncode == 0, copied_back.stderr
    on_sqlite = start_server(tmp_path / "back", **root_key)
    try:
        kms = on_sqlite.kms_client()
        for blob, plaintext in ((before_rotation, b"first material"), (after_rotation, b"second material"),
                                (made_on_postgres, b"third")):
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
        assert _state(kms, key_id) == expected
    finally:
        on_sqlite.stop()


def test_a_copy_refuses_a_target_holding_keys_unless_forced_and_then_replaces_it(
    postgres_url: str, tmp_path: Path,
) -> None:
    root_key = {"KMSGATE_ROOT_KEY": base64.b64encode(os.urandom(32)).decode()}
    for name in ("first", "second"):
        server = start_server(tmp_path / name, **root_key)
        server.kms_client().create_key(Description=name)
        server.stop()
    first, second = (f"sqlite://{tmp_path / name / DB_FILENAME}" for name in ("first", "second"))
    assert _store_copy("--from", first, "--to", postgres_url).returncode == 0

    refused = _store_copy("--from", second, "--to", postgres_url)
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        "kmsgate: the target already holds keys, aliases; give --force to replace its contents")

    assert _store_copy("--from", second, "--to", postgres_url, "--force").returncode == 0
    server = start_server(tmp_path / "on-postgres", KMSGATE_KEY_STORE=postgres_url, **root_key)
    try:
        kms = server.kms_client()
        descriptions = {kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["Description"]
                        for k in kms.list_keys()["Keys"]}
        assert "second" in descriptions and "first" not in descriptions
    finally:
        server.stop()
