"""``kmsgate keys create`` against a real server, with the root credentials kmsgate generated at
first start: administrators can administer but not use the key, users can use but not administer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import KmsgateServer, start_server

from .conftest import ALICE, BOB, CAROL, client_as, error_code, write_identities


@pytest.fixture(scope="module")
def generated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """A server started without root credentials in its environment: it writes data/credentials."""
    base = tmp_path_factory.mktemp("keys-command")
    server = start_server(
        base / "data", "--identities", str(write_identities(base)),
        KMSGATE_ROOT_ACCESS_KEY_ID="", KMSGATE_ROOT_SECRET_ACCESS_KEY="",
    )
    yield server
    server.stop()


# Runs the command as a plain `pip install kmsgate` has it: boto3 (a test dependency only) cannot be imported.
WITHOUT_BOTO3 = "import sys; sys.modules['boto3'] = None; from kmsgate.admin_cli import main; main()"


def keys_create(server: KmsgateServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(server.data_dir / "credentials"),
        AWS_PROFILE="kmsgate",
        AWS_CONFIG_FILE=str(server.data_dir.parent / "no-aws-config"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    command = [sys.executable, "-c", WITHOUT_BOTO3, "keys", "create", "--endpoint-url", server.endpoint_url,
               "--region", server.region, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def created(generated_server: KmsgateServer) -> dict[str, Any]:
    result = keys_create(
        generated_server, "--admin", ALICE.arn, "--user", BOB.arn, "--alias", "alias/keys-command",
        "--description", "made by keys create",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_generated_credentials_file_is_private(generated_server: KmsgateServer, created: dict[str, Any]) -> None:
    path = generated_server.data_dir / "credentials"
    assert path.stat().st_mode & 0o777 == 0o600
    assert "[kmsgate]" in path.read_text()


def test_keys_create_prints_the_key_and_alias(created: dict[str, Any]) -> None:
    metadata = created["KeyMetadata"]
    assert metadata["Arn"].startswith("arn:aws:kms:") and metadata["KeyState"] == "Enabled"
    assert metadata["Description"] == "made by keys create"
    assert created["AliasName"] == "alias/keys-command"


def test_the_policy_names_administrators_and_users(generated_server: KmsgateServer, created: dict[str, Any]) -> None:
    alice = client_as(generated_server, ALICE)
    policy = json.loads(alice.get_key_policy(KeyId=created["KeyMetadata"]["KeyId"], PolicyName="default")["Policy"])
    by_sid = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert by_sid["Allow access for Key Administrators"]["Principal"]["AWS"] == [ALICE.arn]
    assert by_sid["Allow use of the key"]["Principal"]["AWS"] == [BOB.arn]


def test_an_administrator_can_administer_but_not_use(generated_server: KmsgateServer, created: dict[str, Any]) -> None:
    key_id = created["KeyMetadata"]["KeyId"]
    alice = client_as(generated_server, ALICE)
    assert error_code(alice.describe_key, KeyId=key_id) is None
    assert error_code(alice.update_key_description, KeyId=key_id, Description="renamed") is None
    assert error_code(alice.disable_key, KeyId=key_id) is None
    assert error_code(alice.enable_key, KeyId=key_id) is None
    assert error_code(alice.tag_resource, KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "a"}]) is None
    assert error_code(alice.encrypt, KeyId=key_id, Plaintext=b"x") == "AccessDeniedException"
    assert error_code(alice.generate_data_key, KeyId=key_id, KeySpec="AES_256") == "AccessDeniedException"


def test_an_administrator_cannot_grant_itself_use_of_the_key(generated_server: KmsgateServer,
                                                             created: dict[str, Any]) -> None:
    key_id = created["KeyMetadata"]["KeyId"]
    alice = client_as(generated_server, ALICE)
    for operations in (["Decrypt"], ["Encrypt", "GenerateDataKey"], ["CreateGrant"]):
        assert error_code(alice.create_grant, KeyId=key_id, GranteePrincipal=ALICE.arn,
                          Operations=operations) == "AccessDeniedException", operations
    assert alice.list_grants(KeyId=key_id)["Grants"] == []
    policy = json.loads(alice.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    admin = next(s for s in policy["Statement"] if s["Sid"] == "Allow access for Key Administrators")
    assert not any("*" in action for action in admin["Action"])
    assert not {"kms:CreateGrant", "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"} & set(admin["Action"])


def test_a_user_can_use_but_not_administer(generated_server: KmsgateServer, created: dict[str, Any]) -> None:
    key_id = created["KeyMetadata"]["KeyId"]
    bob = client_as(generated_server, BOB)
    blob = bob.encrypt(KeyId="alias/keys-command", Plaintext=b"x")["CiphertextBlob"]
    assert bob.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    assert error_code(bob.generate_data_key, KeyId=key_id, KeySpec="AES_256") is None
    assert error_code(bob.re_encrypt, CiphertextBlob=blob, DestinationKeyId=key_id) is None
    assert error_code(bob.describe_key, KeyId=key_id) is None
    for call, kwargs in (
        (bob.disable_key, {}),
        (bob.schedule_key_deletion, {"PendingWindowInDays": 7}),
        (bob.get_key_policy, {"PolicyName": "default"}),
        (bob.update_key_description, {"Description": "mine"}),
    ):
        assert error_code(call, KeyId=key_id, **kwargs) == "AccessDeniedException", call
    assert error_code(client_as(generated_server, CAROL).encrypt, KeyId=key_id, Plaintext=b"x") == (
        "AccessDeniedException"
    )


def test_keys_create_reports_errors(generated_server: KmsgateServer) -> None:
    missing = keys_create(generated_server)
    assert missing.returncode == 2 and "--admin" in missing.stderr
    bad_arn = keys_create(generated_server, "--admin", "alice")
    assert bad_arn.returncode == 2
    taken = keys_create(generated_server, "--user", BOB.arn, "--alias", "alias/keys-command")
    assert taken.returncode == 1 and "AlreadyExistsException" in taken.stderr


def test_keys_create_with_the_callers_own_credentials_runs_the_lockout_check(generated_server: KmsgateServer) -> None:
    """alice (allowed kms:CreateKey by the identities file) cannot create a key she could not manage."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ALICE.access_key_id, AWS_SECRET_ACCESS_KEY=ALICE.secret_access_key,
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    base = [sys.executable, "-m", "kmsgate.admin_cli", "keys", "create", "--endpoint-url",
            generated_server.endpoint_url, "--region", generated_server.region]
    as_user_only = subprocess.run([*base, "--user", ALICE.arn], env=env, capture_output=True, text=True, timeout=60)
    assert as_user_only.returncode == 1 and "MalformedPolicyDocumentException" in as_user_only.stderr
    as_admin = subprocess.run([*base, "--admin", ALICE.arn, "--user", BOB.arn], env=env, capture_output=True,
                              text=True, timeout=60)
    assert as_admin.returncode == 0, as_admin.stderr


def test_generated_credentials_work_with_the_aws_cli(generated_server: KmsgateServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(generated_server.data_dir / "credentials"),
               AWS_CONFIG_FILE=os.devnull, AWS_DEFAULT_REGION=generated_server.region)
    aws = str(Path(sys.executable).parent / "aws")
    result = subprocess.run([aws, "--profile", "kmsgate", "--endpoint-url", generated_server.endpoint_url,
                             "kms", "list-keys"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Keys" in json.loads(result.stdout)


@pytest.mark.parametrize(
    ("spec", "usage", "user_actions"),
    [("ECC_NIST_P256", None, ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"]),
     ("RSA_2048", "ENCRYPT_DECRYPT",
      ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:DescribeKey", "kms:GetPublicKey"]),
     ("HMAC_256", None, ["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"]),
     ("ECC_NIST_P384", "KEY_AGREEMENT", ["kms:DescribeKey", "kms:GetPublicKey", "kms:DeriveSharedSecret"]),
     ("ML_KEM_768", None, ["kms:DescribeKey", "kms:GetPublicKey", "kms:Encapsulate", "kms:Decapsulate"])],
)
def test_keys_create_with_a_key_spec_gives_users_that_specs_actions(
    generated_server: KmsgateServer, spec: str, usage: str | None, user_actions: list[str]
) -> None:
    result = keys_create(generated_server, "--admin", ALICE.arn, "--user", BOB.arn, "--key-spec", spec,
                         *(["--key-usage", usage] if usage else []))
    assert result.returncode == 0, result.stderr
    metadata = json.loads(result.stdout)["KeyMetadata"]
    assert metadata["KeySpec"] == spec
    key_id = metadata["KeyId"]
    policy = json.loads(client_as(generated_server, ALICE).get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    by_sid = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert by_sid["Allow use of the key"]["Action"] == user_actions
    bob = client_as(generated_server, BOB)
    if spec == "ECC_NIST_P256":
        assert metadata["KeyUsage"] == "SIGN_VERIFY"
        assert error_code(bob.sign, KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_256") is None
        assert error_code(client_as(generated_server, ALICE).sign, KeyId=key_id, Message=b"m",
                          SigningAlgorithm="ECDSA_SHA_256") == "AccessDeniedException"
    elif spec == "HMAC_256":
        assert error_code(bob.generate_mac, KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256") is None
    elif usage == "KEY_AGREEMENT":
        peer = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert error_code(bob.derive_shared_secret, KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer) is None
        assert error_code(client_as(generated_server, ALICE).derive_shared_secret, KeyId=key_id,
                          KeyAgreementAlgorithm="ECDH", PublicKey=peer) == "AccessDeniedException"
    else:
        assert error_code(bob.get_public_key, KeyId=key_id) is None


def test_keys_create_refuses_a_usage_the_spec_does_not_allow(generated_server: KmsgateServer) -> None:
    result = keys_create(generated_server, "--user", BOB.arn, "--key-spec", "ECC_NIST_P256",
                         "--key-usage", "ENCRYPT_DECRYPT")
    assert result.returncode == 2
    assert "KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec ECC_NIST_P256" in result.stderr
