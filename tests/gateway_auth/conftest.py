"""Fixtures for the gateway authentication tests: a real ``kmsgate serve`` with an identities file,
and an HTTP client that sends gateway requests as a declared principal (bearer token or SigV4)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

from kmsgate.gateway.headers import CONTEXT_HEADER, KEY_ID_HEADER, encode_context
from tests.conftest import ACCOUNT_ID, REGION, KmsgateServer, start_server

ROOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:root"


@dataclass(frozen=True)
class Identity:
    name: str
    arn: str
    access_key_id: str
    secret_access_key: str
    token: str


ALICE = Identity("alice", f"arn:aws:iam::{ACCOUNT_ID}:user/gw-alice", "AKIAGWALICE000000001",
                 "gwAliceSecret/000000000000000000000000000", "gw-alice-token-0123456789abcdef0123456789abcdef")
BOB = Identity("bob", f"arn:aws:iam::{ACCOUNT_ID}:role/apps/gw-bob", "AKIAGWBOB00000000001",
               "gwBobSecret+00000000000000000000000000000", "gw-bob-token-0123456789abcdef0123456789abcdef01")
CAROL = Identity("carol", f"arn:aws:iam::{ACCOUNT_ID}:user/gw-carol", "AKIAGWCAROL000000001",
                 "gwCarolSecret=000000000000000000000000000", "gw-carol-token-0123456789abcdef0123456789abcde")
PRINCIPALS = (ALICE, BOB, CAROL)


OBJECTS_READ_WRITE = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                   "Resource": "arn:aws:s3:::kmsgate/*"},
                  {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::kmsgate"}],
})
"""An identity policy giving read and write on every object of the default bucket: the key policy
and grants alone then decide what these tests are about."""


def identities_toml(identities: tuple[Identity, ...] = PRINCIPALS, policy: str | None = OBJECTS_READ_WRITE) -> str:
    lines: list[str] = []
    for who in identities:
        lines += [
            "[[principal]]", f"arn = {json.dumps(who.arn)}", f"tokens = [{json.dumps(who.token)}]",
            *([f"policy = {json.dumps(policy)}"] if policy is not None else []),
            "[[principal.access_keys]]",
            f"access_key_id = {json.dumps(who.access_key_id)}",
            f"secret_access_key = {json.dumps(who.secret_access_key)}", "",
        ]
    return "\n".join(lines)


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        """The error code of a JSON error reply."""
        try:
            return str(self.json().get("error"))
        except ValueError:
            return None


def sigv4_headers(who: Identity, method: str, url: str, body: bytes, headers: Mapping[str, str] | None = None,
                  *, sign_payload: bool = True, secret: str | None = None) -> dict[str, str]:
    """Headers of ``method url`` signed by botocore's S3 signer as ``who`` (service ``s3``)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    request.context["client_config"] = BotoConfig(s3={"payload_signing_enabled": sign_payload})
    credentials = Credentials(who.access_key_id, secret if secret is not None else who.secret_access_key)
    S3SigV4Auth(credentials, "s3", REGION).add_auth(request)
    return dict(request.headers.items())


@dataclass
class AuthGateway:
    """The server, and requests to its gateway routes as one principal or another."""

    server: KmsgateServer

    @property
    def url(self) -> str:
        return self.server.endpoint_url

    @property
    def root(self) -> Identity:
        s = self.server
        return Identity("root", ROOT_ARN, s.access_key_id, s.secret_access_key, s.root_token)

    def send(self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Reply:
        """One request exactly as given (no credentials added)."""
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.request(method, path, body=body if body or method in ("PUT", "POST") else None,
                         headers=dict(headers or {}))
            response = conn.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()

    def as_(self, who: Identity, method: str, path: str, body: bytes = b"", *, key_id: str | None = None,
            context: Mapping[str, str] | None = None, sigv4: bool = False) -> Reply:
        """A request as ``who``: bearer token, or a SigV4 signature over the body's hash."""
        headers: dict[str, str] = {}
        if key_id is not None:
            headers[KEY_ID_HEADER] = key_id
        if context is not None:
            headers[CONTEXT_HEADER] = encode_context(context)
        if sigv4:
            headers = sigv4_headers(who, method, self.url + path, body, headers)
        else:
            headers["Authorization"] = f"Bearer {who.token}"
        return self.send(method, path, body, headers)

    def stored(self, key: str) -> bool:
        """Whether an object exists (HEAD as the root, whom every test key's policy allows)."""
        reply = self.as_(self.root, "HEAD", f"/v1/objects/{key}")
        assert reply.status in (200, 404), reply
        return reply.status == 200

    def create_key(self, *statements: dict[str, Any]) -> str:
        """A new key whose policy is the root's statement plus ``statements``; its ARN."""
        root = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN}, "Action": "kms:*", "Resource": "*"}
        policy = json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]})
        meta = self.server.kms_client().create_key(Policy=policy)["KeyMetadata"]
        return str(meta["Arn"])


def allow(who: Identity | list[Identity], actions: list[str], sid: str = "Allow", **extra: Any) -> dict[str, Any]:
    principals = [p.arn for p in who] if isinstance(who, list) else who.arn
    return {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": principals}, "Action": actions, "Resource": "*",
            **extra}


USE = ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"]


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthGateway]:
    """One kmsgate with alice, bob and carol declared (tests create their own keys and object names)."""
    base = tmp_path_factory.mktemp("gateway-auth")
    path: Path = base / "identities.toml"
    path.write_text(identities_toml())
    path.chmod(0o600)
    server = start_server(base / "data", "--identities", str(path))
    yield AuthGateway(server)
    server.stop()
