"""Fixtures for the authorization tests: a real ``kmsgate serve`` with an identities file, and
boto3 clients signing as each declared principal."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.conftest import ACCOUNT_ID, REGION, KmsgateServer, start_server

AUDIT_WAIT_SECONDS = 10.0  # the audit log is written by a background task; wait for it, bounded

ROOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:root"


@dataclass(frozen=True)
class Identity:
    name: str
    arn: str
    access_key_id: str
    secret_access_key: str
    token: str
    account_actions: tuple[str, ...] | None = None


ALICE = Identity(
    "alice", f"arn:aws:iam::{ACCOUNT_ID}:user/alice", "AKIAALICEAUTHZ000001",
    "aliceAuthzSecret/0000000000000000000000", "alice-authz-token-0123456789abcdef0123456789",
    ("kms:CreateKey", "kms:List*"),
)
BOB = Identity(
    "bob", f"arn:aws:iam::{ACCOUNT_ID}:role/app/bob", "AKIABOBAUTHZ00000001",
    "bobAuthzSecret+000000000000000000000000", "bob-authz-token-0123456789abcdef0123456789ab",
)
CAROL = Identity(
    "carol", f"arn:aws:iam::{ACCOUNT_ID}:user/carol", "AKIACAROLAUTHZ000001",
    "carolAuthzSecret=000000000000000000000000", "carol-authz-token-0123456789abcdef012345678",
)
PRINCIPALS = (ALICE, BOB, CAROL)


def identities_toml(identities: tuple[Identity, ...] = PRINCIPALS) -> str:
    """The identities file for ``identities`` (TOML, as ``kmsgate serve --identities`` reads it)."""
    lines: list[str] = []
    for identity in identities:
        lines += ["[[principal]]", f"arn = {json.dumps(identity.arn)}", f"tokens = [{json.dumps(identity.token)}]"]
        if identity.account_actions is not None:
            lines.append(f"account_actions = {json.dumps(list(identity.account_actions))}")
        lines += [
            "[[principal.access_keys]]",
            f"access_key_id = {json.dumps(identity.access_key_id)}",
            f"secret_access_key = {json.dumps(identity.secret_access_key)}",
            "",
        ]
    return "\n".join(lines)


def write_identities(directory: Path) -> Path:
    path = directory / "identities.toml"
    path.write_text(identities_toml())
    path.chmod(0o600)
    return path


def client_as(server: KmsgateServer, who: Identity) -> Any:
    """A boto3 KMS client for ``server`` signing with ``who``'s access key."""
    session = boto3.session.Session(
        aws_access_key_id=who.access_key_id, aws_secret_access_key=who.secret_access_key, region_name=REGION
    )
    config = BotoConfig(retries={"max_attempts": 1, "mode": "standard"})
    return session.client("kms", endpoint_url=server.endpoint_url, config=config)


@dataclass
class AuthzServer:
    """A kmsgate with alice, bob and carol declared, and a boto3 client for each (and the root)."""

    server: KmsgateServer

    @property
    def audit_path(self) -> Path:
        return self.server.data_dir / "audit.log"

    def client(self, who: Identity | None = None) -> Any:
        """A KMS client signing as ``who`` (the account root when ``None``)."""
        return self.server.kms_client() if who is None else client_as(self.server, who)

    def aws(self, who: Identity, *args: str) -> subprocess.CompletedProcess[str]:
        """The ``aws kms`` command line signing as ``who``."""
        env = self.server.cli_env()
        env.update(AWS_ACCESS_KEY_ID=who.access_key_id, AWS_SECRET_ACCESS_KEY=who.secret_access_key)
        aws = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "aws")
        return subprocess.run(
            [aws, "kms", *args, "--endpoint-url", self.server.endpoint_url, "--output", "json"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )

    def audit_lines(self) -> list[dict[str, Any]]:
        text = self.audit_path.read_text() if self.audit_path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_for_audit_line(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The last audit line ``match`` accepts, waiting (bounded) for the background writer to write it."""
        deadline = time.monotonic() + AUDIT_WAIT_SECONDS
        while True:
            found = [line for line in self.audit_lines() if match(line)]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError("no matching audit line")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def authz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthzServer]:
    """One server for the authorization tests (tests create their own keys; never assume an empty store)."""
    base = tmp_path_factory.mktemp("authz")
    server = start_server(base / "data", "--identities", str(write_identities(base)))
    yield AuthzServer(server)
    server.stop()


def key_policy(*statements: dict[str, Any]) -> str:
    """A key policy: the account root's statement, then ``statements``."""
    root = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN}, "Action": "kms:*", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]})


def allow(who: Identity | list[Identity], actions: str | list[str], sid: str = "Allow", **extra: Any) -> dict[str, Any]:
    principals = [p.arn for p in who] if isinstance(who, list) else who.arn
    return {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": principals}, "Action": actions, "Resource": "*", **extra}


def deny(who: Identity, actions: str | list[str], sid: str = "Deny", **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Deny", "Principal": {"AWS": who.arn}, "Action": actions, "Resource": "*", **extra}


def error_code(call: Any, *args: Any, **kwargs: Any) -> str | None:
    """The AWS error code a boto3 call answers with, or ``None`` when it succeeds."""
    from botocore.exceptions import ClientError

    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return None
