"""Authentication failures and the audit log over a real server: every request, allowed or denied,
is one line naming the principal, access key, resolved key ARN and context, and no secret."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.config import Config as BotoConfig

from tests.conftest import REGION

from .conftest import BOB, CAROL, PRINCIPALS, AuthzServer, allow, error_code, key_policy



def _client(authz: AuthzServer, access_key_id: str, secret: str) -> Any:
    session = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret, region_name=REGION)
    config = BotoConfig(retries={"max_attempts": 1, "mode": "standard"})
    return session.client("kms", endpoint_url=authz.server.endpoint_url, config=config)


def _request_id(call: Callable[..., Any], **kwargs: Any) -> str:
    from botocore.exceptions import ClientError

    try:
        return str(call(**kwargs)["ResponseMetadata"]["RequestId"])
    except ClientError as exc:
        return str(exc.response["ResponseMetadata"]["RequestId"])


def test_unknown_access_key_is_unrecognized_and_audited(authz: AuthzServer) -> None:
    client = _client(authz, "AKIAUNKNOWNAUTHZ0001", "x" * 40)
    assert error_code(client.list_keys) == "UnrecognizedClientException"
    line = authz.wait_for_audit_line(lambda l: l["access_key_id"] == "AKIAUNKNOWNAUTHZ0001")
    assert line["outcome"] == "denied" and line["error_code"] == "UnrecognizedClientException"
    assert line["principal_arn"] is None and line["operation"] == "ListKeys"


def test_wrong_secret_is_an_invalid_signature_and_audited(authz: AuthzServer) -> None:
    client = _client(authz, BOB.access_key_id, "wrongSecret0000000000000000000000000000000")
    request_id = _request_id(client.list_aliases)
    line = authz.wait_for_audit_line(lambda l: l["request_id"] == request_id)
    assert line["error_code"] == "InvalidSignatureException" and line["outcome"] == "denied"
    assert line["access_key_id"] == BOB.access_key_id and line["principal_arn"] is None


def test_signature_over_another_body_fails(authz: AuthzServer) -> None:
    client = _client(authz, BOB.access_key_id, BOB.secret_access_key)

    def swap_body(request: Any, **_: Any) -> None:  # runs after signing: the body sent is not the one signed
        request.body = b'{"Limit": 2}'
        request.headers["Content-Length"] = str(len(request.body))

    client.meta.events.register_last("before-send.kms.ListKeys", swap_body)
    assert error_code(client.list_keys, Limit=1) == "InvalidSignatureException"


def test_request_time_off_by_more_than_five_minutes(authz: AuthzServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The client's clock is the one thing a test cannot move for real: botocore's is patched.
    skewed = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=10)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: skewed)
    client = _client(authz, BOB.access_key_id, BOB.secret_access_key)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        client.list_keys()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["Error"]["Message"].startswith("Signature expired")


def test_allowed_and_denied_calls_are_audited_with_the_resolved_key(authz: AuthzServer) -> None:
    root = authz.client()
    key = root.create_key(Policy=key_policy(allow(BOB, ["kms:Encrypt", "kms:GenerateDataKey"])))["KeyMetadata"]
    root.create_alias(AliasName="alias/audited", TargetKeyId=key["KeyId"])
    bob, carol = authz.client(BOB), authz.client(CAROL)
    context = {"tenant": "acme"}
    allowed_id = _request_id(bob.encrypt, KeyId="alias/audited", Plaintext=b"top secret plaintext",
                             EncryptionContext=context)
    blob = root.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext=context)["CiphertextBlob"]
    denied_id = _request_id(carol.decrypt, CiphertextBlob=blob, EncryptionContext=context)

    allowed = authz.wait_for_audit_line(lambda l: l["request_id"] == allowed_id)
    assert allowed["outcome"] == "success" and allowed["error_code"] is None
    assert allowed["operation"] == "Encrypt"
    assert allowed["principal_arn"] == BOB.arn and allowed["access_key_id"] == BOB.access_key_id
    assert allowed["key_arn"] == key["Arn"]  # the alias the request used is resolved
    assert allowed["encryption_context"] == context
    assert allowed["source_ip"] == "127.0.0.1"

    denied = authz.wait_for_audit_line(lambda l: l["request_id"] == denied_id)
    assert denied["outcome"] == "denied" and denied["error_code"] == "AccessDeniedException"
    assert denied["principal_arn"] == CAROL.arn and denied["operation"] == "Decrypt"
    assert denied["key_arn"] == key["Arn"]  # named by the ciphertext, not the request


def test_no_secret_material_reaches_the_audit_or_server_log(authz: AuthzServer) -> None:
    key_id = authz.client().create_key(Policy=key_policy(allow(BOB, "kms:*")))["KeyMetadata"]["KeyId"]
    bob = authz.client(BOB)
    plaintext = b"audit-canary-plaintext-0123456789"
    blob = bob.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext={"c": "1"})["CiphertextBlob"]
    bob.decrypt(CiphertextBlob=blob, EncryptionContext={"c": "1"})
    data_key = bob.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    last_id = _request_id(authz.client(CAROL).decrypt, CiphertextBlob=blob, EncryptionContext={"c": "1"})
    authz.wait_for_audit_line(lambda l: l["request_id"] == last_id)
    audit = authz.audit_path.read_bytes()
    server_log = authz.server.log_text().encode()
    secrets = [
        plaintext, base64.b64encode(plaintext),
        data_key["Plaintext"], base64.b64encode(data_key["Plaintext"]), data_key["Plaintext"].hex().encode(),
        base64.b64encode(blob), base64.b64encode(data_key["CiphertextBlob"]),
        authz.server.secret_access_key.encode(), authz.server.root_token.encode(),
        *(who.secret_access_key.encode() for who in PRINCIPALS), *(who.token.encode() for who in PRINCIPALS),
    ]
    for secret in secrets:
        assert secret not in audit
        assert secret not in server_log
    assert authz.audit_path.stat().st_mode & 0o777 == 0o600


def test_audit_lines_say_what_authorized_each_call(authz: AuthzServer) -> None:
    root = authz.client()
    key_id = root.create_key(Policy=key_policy(allow(BOB, ["kms:Encrypt"], sid="BobEncrypts")))["KeyMetadata"]["KeyId"]
    grant_id = root.create_grant(KeyId=key_id, GranteePrincipal=CAROL.arn, Operations=["Encrypt"])["GrantId"]

    by_root = _request_id(root.encrypt, KeyId=key_id, Plaintext=b"x")
    by_policy = _request_id(authz.client(BOB).encrypt, KeyId=key_id, Plaintext=b"x")
    by_grant = _request_id(authz.client(CAROL).encrypt, KeyId=key_id, Plaintext=b"x")
    denied = _request_id(authz.client(CAROL).decrypt,
                         CiphertextBlob=root.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"])

    root_line = authz.wait_for_audit_line(lambda l: l["request_id"] == by_root)
    assert (root_line["outcome"], root_line["authorized_by"], root_line["grant_id"]) == ("success", "root", None)
    policy_line = authz.wait_for_audit_line(lambda l: l["request_id"] == by_policy)
    assert (policy_line["outcome"], policy_line["authorized_by"], policy_line["grant_id"]) == ("success", "policy", None)
    grant_line = authz.wait_for_audit_line(lambda l: l["request_id"] == by_grant)
    assert (grant_line["outcome"], grant_line["authorized_by"], grant_line["grant_id"]) == ("success", "grant", grant_id)
    denied_line = authz.wait_for_audit_line(lambda l: l["request_id"] == denied)
    assert (denied_line["outcome"], denied_line["authorized_by"], denied_line["grant_id"]) == ("denied", None, None)
