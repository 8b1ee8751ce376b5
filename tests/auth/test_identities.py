"""Identities file parsing, root credentials and lookups."""

from __future__ import annotations

import configparser
import stat
from pathlib import Path

import pytest

from kmsgate.auth.identities import (
    DEFAULT_ACCOUNT_ACTIONS,
    AccessKey,
    IdentitiesError,
    RootCredentials,
    build_directory,
    load_directory,
    load_root_credentials,
    parse_identities,
)

from .conftest import ACCOUNT, ALICE_AKID, ALICE_ARN, ALICE_SECRET, ALICE_TOKEN, BOB_ARN, ROOT_AKID

ROOT = RootCredentials(AccessKey(ROOT_AKID, "r" * 40), "env")

TOML = f"""
[[principal]]
arn = "{ALICE_ARN}"
tokens = ["{ALICE_TOKEN}"]
[[principal.access_keys]]
access_key_id = "{ALICE_AKID}"
secret_access_key = "{ALICE_SECRET}"
"""


def test_lookup_access_key_finds_principal_and_secret(directory):
    principal, key = directory.lookup_access_key(ALICE_AKID)
    assert principal.arn == ALICE_ARN
    assert key.secret_access_key == ALICE_SECRET
    assert principal.account_actions == DEFAULT_ACCOUNT_ACTIONS
    assert directory.lookup_access_key("AKIAUNKNOWN000000000") is None


def test_root_is_in_directory_with_all_account_actions(directory):
    principal, _ = directory.lookup_access_key(ROOT_AKID)
    assert principal.is_account_root
    assert principal.account_actions == ("*",)
    assert principal.caller(ROOT_AKID, "127.0.0.1").is_account_root


def test_lookup_token(directory):
    assert directory.lookup_token(ALICE_TOKEN).arn == ALICE_ARN
    assert directory.lookup_token("root-token-" + "r" * 32).is_account_root
    assert directory.lookup_token(ALICE_TOKEN[:-1] + "X") is None
    assert directory.lookup_token("short") is None
    assert directory.lookup_token("x" * 10_000) is None


def test_secrets_not_in_repr(directory):
    text = repr(directory) + repr(directory.lookup_access_key(ALICE_AKID))
    assert ALICE_SECRET not in text
    assert ALICE_TOKEN not in text


def test_parse_toml_file(tmp_path: Path):
    path = tmp_path / "identities.toml"
    path.write_text(TOML)
    path.chmod(0o600)
    directory, root = load_directory(
        ACCOUNT,
        {"KMSGATE_ROOT_ACCESS_KEY_ID": ROOT_AKID, "KMSGATE_ROOT_SECRET_ACCESS_KEY": "r" * 40},
        tmp_path,
        path,
    )
    assert root.source == "env"
    assert directory.lookup_access_key(ALICE_AKID)[0].arn == ALICE_ARN
    assert directory.principal(ALICE_ARN) is not None


@pytest.mark.parametrize(
    "document, message",
    [
        ({"principal": [{"arn": "arn:aws:iam::111122223333:group/x"}]}, "not an IAM user"),
        ({"principal": [{"arn": "arn:aws:iam::111122223333:root"}]}, "environment"),
        ({"principal": [{"arn": "arn:aws:iam::999999999999:user/x"}]}, "not in account"),
        ({"principal": [{"arn": ALICE_ARN}, {"arn": ALICE_ARN}]}, "declared twice"),
        ({"principal": [{"arn": ALICE_ARN, "colour": "red"}]}, "unknown fields"),
        (
            {"principal": [{"arn": ALICE_ARN, "access_keys": [{"access_key_id": ROOT_AKID,
                                                               "secret_access_key": "s" * 40}]}]},
            "declared twice",
        ),
        (
            {"principal": [{"arn": ALICE_ARN, "access_keys": [{"access_key_id": "lower",
                                                               "secret_access_key": "s" * 40}]}]},
            "A-Z",
        ),
        (
            {"principal": [{"arn": ALICE_ARN, "access_keys": [{"access_key_id": ALICE_AKID,
                                                               "secret_access_key": "short"}]}]},
            "printable",
        ),
        ({"principal": [{"arn": ALICE_ARN, "tokens": ["short"]}]}, "bearer token"),
        ({"principal": [{"arn": ALICE_ARN, "tokens": [ALICE_TOKEN]},
                        {"arn": BOB_ARN, "tokens": [ALICE_TOKEN]}]}, "declared twice"),
        ({"principal": [{"arn": ALICE_ARN, "account_actions": ["iam:CreateUser"]}]}, "account_actions"),
        ({"principal": {"arn": ALICE_ARN}}, "array of tables"),
    ],
)
def test_invalid_documents_are_refused(document, message):
    with pytest.raises(IdentitiesError, match=message):
        build_directory(ACCOUNT, ROOT, document)


def test_error_messages_do_not_echo_secrets():
    secret = "short\x01secret"
    document = {"principal": [{"arn": ALICE_ARN, "access_keys": [
        {"access_key_id": ALICE_AKID, "secret_access_key": secret}]}]}
    with pytest.raises(IdentitiesError) as info:
        build_directory(ACCOUNT, ROOT, document)
    assert secret not in str(info.value)


def test_invalid_toml_is_refused():
    with pytest.raises(IdentitiesError, match="TOML"):
        parse_identities("[[principal]\narn=")


def test_root_credentials_from_env(tmp_path: Path):
    env = {"KMSGATE_ROOT_ACCESS_KEY_ID": ROOT_AKID, "KMSGATE_ROOT_SECRET_ACCESS_KEY": "r" * 40}
    root = load_root_credentials(env, tmp_path)
    assert root.source == "env" and root.access_key.access_key_id == ROOT_AKID
    assert not (tmp_path / "credentials").exists()


def test_root_credentials_need_both_env_vars(tmp_path: Path):
    with pytest.raises(IdentitiesError, match="both"):
        load_root_credentials({"KMSGATE_ROOT_ACCESS_KEY_ID": ROOT_AKID}, tmp_path)


def test_root_credentials_generated_once_as_private_profile(tmp_path: Path):
    first = load_root_credentials({}, tmp_path / "data", "us-east-1")
    path = tmp_path / "data" / "credentials"
    assert first.source == "generated" and first.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    parser = configparser.ConfigParser()
    parser.read(path)
    assert parser["kmsgate"]["aws_access_key_id"] == first.access_key.access_key_id
    assert parser["kmsgate"]["aws_secret_access_key"] == first.access_key.secret_access_key
    assert parser["kmsgate"]["region"] == "us-east-1"
    assert first.access_key.access_key_id.startswith("AKIA")
    assert len(first.access_key.access_key_id) == 20
    assert len(first.access_key.secret_access_key) == 40

    second = load_root_credentials({}, tmp_path / "data")
    assert second.source == "file"
    assert second.access_key == first.access_key


def test_generated_credentials_differ(tmp_path: Path):
    a = load_root_credentials({}, tmp_path / "a").access_key
    b = load_root_credentials({}, tmp_path / "b").access_key
    assert a.access_key_id != b.access_key_id
    assert a.secret_access_key != b.secret_access_key


def test_unusable_credentials_file_is_refused(tmp_path: Path):
    (tmp_path / "credentials").write_text("[other]\naws_access_key_id = X\n")
    (tmp_path / "credentials").chmod(0o600)
    with pytest.raises(IdentitiesError, match=r"no usable \[kmsgate\] profile"):
        load_root_credentials({}, tmp_path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=oct)
def test_start_up_refuses_a_root_credentials_file_readable_by_group_or_others(tmp_path: Path, mode: int):
    generated = load_root_credentials({}, tmp_path)
    path = tmp_path / "credentials"
    path.chmod(mode)
    with pytest.raises(IdentitiesError, match="readable by group or others") as info:
        load_directory(ACCOUNT, {}, tmp_path)
    assert str(path) in str(info.value)
    assert generated.access_key.secret_access_key not in str(info.value)


def test_root_token_from_env(tmp_path: Path):
    token = "t" * 40
    env = {"KMSGATE_ROOT_ACCESS_KEY_ID": ROOT_AKID, "KMSGATE_ROOT_SECRET_ACCESS_KEY": "r" * 40,
           "KMSGATE_ROOT_TOKEN": token}
    directory, _ = load_directory(ACCOUNT, env, tmp_path)
    assert directory.lookup_token(token).is_account_root


def test_a_principal_may_carry_an_identity_policy():
    text = TOML.replace("[[principal.access_keys]]", """policy = '''
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::kmsgate/alice/*"}]}
'''
[[principal.access_keys]]""")
    directory = build_directory(ACCOUNT, ROOT, parse_identities(text))
    principal = directory.principal(ALICE_ARN)
    assert principal is not None and principal.policy is not None
    assert principal.policy.statements[0].actions == ("s3:GetObject",)
    assert directory.principal(BOB_ARN) is None


@pytest.mark.parametrize("policy, why", [
    ("'not json'", "not valid JSON"),
    ("42", "must be a string"),
    ("""'{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}'""",
     "must not name a Principal"),
])
def test_an_unusable_identity_policy_stops_start_up_naming_the_principal(policy, why):
    text = TOML.replace("[[principal.access_keys]]", f"policy = {policy}\n[[principal.access_keys]]")
    with pytest.raises(IdentitiesError, match=why) as raised:
        build_directory(ACCOUNT, ROOT, parse_identities(text))
    assert "principal #1" in str(raised.value)


def test_the_shipped_example_identities_file_is_valid():
    example = Path(__file__).resolve().parents[2] / "deploy" / "identities.example.toml"
    directory = build_directory(ACCOUNT, ROOT, parse_identities(example.read_text()))
    app = directory.principal(f"arn:aws:iam::{ACCOUNT}:user/app")
    assert app is not None and app.policy is not None
