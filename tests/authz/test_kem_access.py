"""Key policies, grants and the audit log for ML-KEM keys over a real server: kms:Encapsulate,
kms:Decapsulate, the Encapsulate and Decapsulate grant operations, and audit lines that never
hold a shared secret.

The botocore boto3 pins has no Encapsulate or Decapsulate: those requests are hand-built JSON
signed with SigV4Auth as each principal, as any AWS client signs them.
"""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import REGION

from .conftest import ALICE, BOB, CAROL, AuthzServer, Identity, allow, key_policy

DENIED = "AccessDeniedException"


def call(authz: AuthzServer, who: Identity | None, operation: str, **document: Any) -> tuple[int, dict[str, Any], str]:
    """``operation`` signed as ``who`` (the account root when ``None``): status, answer, request id."""
    server = authz.server
    body = json.dumps({name: base64.b64encode(value).decode() if isinstance(value, bytes) else value
                       for name, value in document.items()}).encode()
    request = AWSRequest(method="POST", url=server.endpoint_url + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{operation}"})
    credentials = (Credentials(server.access_key_id, server.secret_access_key) if who is None
                   else Credentials(who.access_key_id, who.secret_access_key))
    SigV4Auth(credentials, "kms", REGION).add_auth(request)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        answer = json.loads(response.read() or b"{}")
        return response.status, answer, response.getheader("x-amzn-RequestId") or ""
    finally:
        connection.close()


def error_code(authz: AuthzServer, who: Identity | None, operation: str, **document: Any) -> str | None:
    status, answer, _ = call(authz, who, operation, **document)
    return None if status == 200 else str(answer["__type"])


def ml_kem_key(authz: AuthzServer, *statements: dict[str, Any]) -> str:
    status, answer, _ = call(authz, None, "CreateKey", KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE",
                             Policy=key_policy(*statements))
    assert status == 200, answer
    return str(answer["KeyMetadata"]["KeyId"])


def ciphertext_for(authz: AuthzServer, key_id: str) -> bytes:
    status, answer, _ = call(authz, None, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM")
    assert status == 200, answer
    return base64.b64decode(answer["SharedSecretCiphertextBlob"])


def test_encapsulate_and_decapsulate_follow_the_key_policy(authz: AuthzServer) -> None:
    key_id = ml_kem_key(authz, allow(BOB, "kms:Encapsulate", "Encapsulator"),
                        allow(CAROL, ["kms:Decapsulate", "kms:GetPublicKey"], "Decapsulator"))
    decapsulate = dict(KeyId=key_id, EncapsulationAlgorithm="ML_KEM", SharedSecretCiphertextBlob=ciphertext_for(authz, key_id))
    assert error_code(authz, BOB, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM") is None
    assert error_code(authz, BOB, "Decapsulate", **decapsulate) == DENIED
    assert error_code(authz, BOB, "GetPublicKey", KeyId=key_id) == DENIED
    assert error_code(authz, CAROL, "Decapsulate", **decapsulate) is None
    assert error_code(authz, CAROL, "GetPublicKey", KeyId=key_id) is None
    assert error_code(authz, CAROL, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM") == DENIED
    assert error_code(authz, ALICE, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM") == DENIED
    assert error_code(authz, ALICE, "Decapsulate", **decapsulate) == DENIED


def test_grants_allow_encapsulate_and_decapsulate_and_only_on_ml_kem_keys(authz: AuthzServer) -> None:
    key_id = ml_kem_key(authz)
    decapsulate = dict(KeyId=key_id, EncapsulationAlgorithm="ML_KEM", SharedSecretCiphertextBlob=ciphertext_for(authz, key_id))
    assert error_code(authz, BOB, "Decapsulate", **decapsulate) == DENIED
    assert error_code(authz, None, "CreateGrant", KeyId=key_id, GranteePrincipal=BOB.arn,
                      Operations=["Encapsulate", "Decapsulate"]) is None
    assert error_code(authz, BOB, "Decapsulate", **decapsulate) is None
    assert error_code(authz, BOB, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM") is None
    # An ML-KEM key answers no other cryptographic operation, and no other key Encapsulate.
    assert error_code(authz, None, "CreateGrant", KeyId=key_id, GranteePrincipal=BOB.arn,
                      Operations=["Encrypt"]) == "ValidationException"
    symmetric = authz.client().create_key()["KeyMetadata"]["KeyId"]
    assert error_code(authz, None, "CreateGrant", KeyId=symmetric, GranteePrincipal=BOB.arn,
                      Operations=["Decapsulate"]) == "ValidationException"
    status, listed, _ = call(authz, None, "ListGrants", KeyId=key_id)
    assert status == 200
    operations = [grant["Operations"] for grant in listed["Grants"]]
    assert ["Encapsulate", "Decapsulate"] in operations


def test_audit_lines_name_the_operation_and_key_and_never_the_shared_secret(authz: AuthzServer) -> None:
    key_id = ml_kem_key(authz, allow(BOB, ["kms:Encapsulate", "kms:Decapsulate"], "User"))
    status, encapsulated, encapsulate_id = call(authz, BOB, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM")
    assert status == 200
    status, decapsulated, decapsulate_id = call(
        authz, BOB, "Decapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM",
        SharedSecretCiphertextBlob=base64.b64decode(encapsulated["SharedSecretCiphertextBlob"]),
    )
    assert status == 200 and decapsulated["SharedSecret"] == encapsulated["SharedSecret"]
    status, _, denied_id = call(authz, CAROL, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM")
    assert status == 400
    for request_id, operation, outcome in ((encapsulate_id, "Encapsulate", "success"),
                                           (decapsulate_id, "Decapsulate", "success"),
                                           (denied_id, "Encapsulate", "denied")):
        line = authz.wait_for_audit_line(lambda l, request_id=request_id: l["request_id"] == request_id)  # type: ignore[misc]
        assert (line["operation"], line["outcome"]) == (operation, outcome)
        assert line["key_arn"].endswith(key_id)
    secret = base64.b64decode(encapsulated["SharedSecret"])
    audit = authz.audit_path.read_bytes()
    server_log = authz.server.log_text().encode()
    for form in (secret, secret.hex().encode(), encapsulated["SharedSecret"].encode()):
        assert form not in audit and form not in server_log
