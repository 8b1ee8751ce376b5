"""Several ``kmsgate serve`` nodes on one PostgreSQL behave as one KMS: a key made on one encrypts
on another, and DisableKey and RevokeGrant on one are in force on the others within a second."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer, start_server

from .helpers import ACCOUNT_ID, REGION

APP_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/app"
APP_ACCESS_KEY_ID, APP_SECRET = "AKIANODESAPP00000001", "nodesAppSecret/00000000000000000000000000"[:40]
IN_FORCE_WITHIN_S = 1.0  # the promise: a change acknowledged by one node is in force on every node


def _until(check: Callable[[], bool], within_s: float = IN_FORCE_WITHIN_S) -> float:
    """Poll ``check`` until it holds; fail if that takes longer than ``within_s``. Returns the time taken."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within_s, f"not in force within {within_s} s"
        time.sleep(0.02)
    return time.monotonic() - started


def _refused(call: Callable[[], Any], code: str) -> bool:
    try:
        call()
    except ClientError as exc:
        return bool(exc.response["Error"]["Code"] == code)
    return False


@pytest.fixture
def nodes(postgres_url: str, tmp_path: Path) -> Iterator[tuple[KmsgateServer, KmsgateServer]]:
    """Two nodes with data dirs of their own, one PostgreSQL database, the same root key and principals."""
    identities = tmp_path / "identities.toml"
    identities.write_text(
        f'[[principal]]\narn = "{APP_ARN}"\n[[principal.access_keys]]\n'
        f'access_key_id = "{APP_ACCESS_KEY_ID}"\nsecret_access_key = "{APP_SECRET}"\n'
    )
    identities.chmod(0o600)
    env = {"KMSGATE_KEY_STORE": postgres_url, "KMSGATE_ROOT_KEY": base64.b64encode(os.urandom(32)).decode()}
    first = start_server(tmp_path / "a", "--identities", str(identities), **env)
    try:
        second = start_server(tmp_path / "b", "--identities", str(identities), **env)
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def _app_client(server: KmsgateServer) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=APP_ACCESS_KEY_ID, aws_secret_access_key=APP_SECRET, region_name=REGION
    )
    return session.client("kms", endpoint_url=server.endpoint_url,
                          config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}))


def test_a_key_made_on_one_node_encrypts_on_the_other_and_disabling_it_there_stops_the_first(
    nodes: tuple[KmsgateServer, KmsgateServer],
) -> None:
    a, b = (node.kms_client() for node in nodes)
    key_id = a.create_key(Description="shared")["KeyMetadata"]["KeyId"]

    def encrypts_on_b() -> bool:
        return not _refused(lambda: b.encrypt(KeyId=key_id, Plaintext=b"x"), "NotFoundException")

    _until(encrypts_on_b)
    blob = b.encrypt(KeyId=key_id, Plaintext=b"made on b")["CiphertextBlob"]
    assert a.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made on b"

    b.disable_key(KeyId=key_id)
    _until(lambda: _refused(lambda: a.encrypt(KeyId=key_id, Plaintext=b"x"), "DisabledException"))


def test_a_grant_revoked_on_one_node_is_refused_on_the_other(nodes: tuple[KmsgateServer, KmsgateServer]) -> None:
    first, second = nodes
    root_a = first.kms_client()
    key_id = root_a.create_key()["KeyMetadata"]["KeyId"]
    grant_id = root_a.create_grant(KeyId=key_id, GranteePrincipal=APP_ARN, Operations=["Encrypt"])["GrantId"]
    app_b = _app_client(second)
    _until(lambda: not _refused(lambda: app_b.encrypt(KeyId=key_id, Plaintext=b"x"), "AccessDeniedException")
           and not _refused(lambda: app_b.encrypt(KeyId=key_id, Plaintext=b"x"), "NotFoundException"))

    root_a.revoke_grant(KeyId=key_id, GrantId=grant_id)
    _until(lambda: _refused(lambda: app_b.encrypt(KeyId=key_id, Plaintext=b"x"), "AccessDeniedException"))


def test_a_node_started_with_another_root_key_refuses_with_one_line(postgres_url: str, tmp_path: Path) -> None:
    env = {"KMSGATE_KEY_STORE": postgres_url, "KMSGATE_ROOT_KEY": base64.b64encode(os.urandom(32)).decode()}
    start_server(tmp_path / "a", **env).stop()
    wrong = dict(os.environ, KMSGATE_KEY_STORE=postgres_url,
                 KMSGATE_ROOT_KEY=base64.b64encode(os.urandom(32)).decode())
    done = subprocess.run(
        [sys.executable, "-m", "kmsgate", "serve", "--data-dir", str(tmp_path / "b"), "--port", "0", "--workers", "0"],
        env=wrong, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("kmsgate: refusing to start: the root key is not the one")
    assert "Traceback" not in done.stderr
