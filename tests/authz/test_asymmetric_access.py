"""Key policies, grants, conditions and the audit log for asymmetric and HMAC keys, over a real
server: kms:Sign, kms:Verify, kms:GetPublicKey, kms:GenerateMac, kms:VerifyMac, and the conditions
kms:SigningAlgorithm, kms:MessageType, kms:MacAlgorithm, kms:EncryptionAlgorithm, kms:KeySpec,
kms:KeyUsage."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import ALICE, BOB, CAROL, AuthzServer, allow, deny, error_code, key_policy

DENIED = "AccessDeniedException"


def _key(authz: AuthzServer, spec: str, usage: str, *statements: dict[str, Any]) -> str:
    created = authz.client().create_key(KeySpec=spec, KeyUsage=usage, Policy=key_policy(*statements))
    return str(created["KeyMetadata"]["KeyId"])


def _sign(client: Any, key_id: str, algorithm: str = "ECDSA_SHA_256", **kwargs: Any) -> str | None:
    return error_code(client.sign, KeyId=key_id, Message=kwargs.pop("Message", b"m"), SigningAlgorithm=algorithm,
                      **kwargs)


def test_each_new_action_follows_the_key_policy(authz: AuthzServer) -> None:
    signing = _key(authz, "ECC_NIST_P256", "SIGN_VERIFY",
                   allow(BOB, ["kms:Sign", "kms:GetPublicKey"], "Signer"), allow(CAROL, "kms:Verify", "Verifier"))
    signature = authz.client().sign(KeyId=signing, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    bob, carol, alice = authz.client(BOB), authz.client(CAROL), authz.client(ALICE)
    verify = dict(KeyId=signing, Message=b"m", Signature=signature, SigningAlgorithm="ECDSA_SHA_256")
    assert _sign(bob, signing) is None and error_code(bob.get_public_key, KeyId=signing) is None
    assert error_code(bob.verify, **verify) == DENIED
    assert _sign(carol, signing) == DENIED and error_code(carol.get_public_key, KeyId=signing) == DENIED
    assert error_code(carol.verify, **verify) is None
    assert _sign(alice, signing) == DENIED and error_code(alice.verify, **verify) == DENIED

    mac_key = _key(authz, "HMAC_256", "GENERATE_VERIFY_MAC", allow(BOB, "kms:GenerateMac"),
                   allow(CAROL, "kms:VerifyMac", "Verifier"))
    mac = authz.client().generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    verify_mac = dict(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")
    assert error_code(bob.generate_mac, KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256") is None
    assert error_code(bob.verify_mac, **verify_mac) == DENIED
    assert error_code(carol.generate_mac, KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256") == DENIED
    assert error_code(carol.verify_mac, **verify_mac) is None


def test_authorization_comes_before_the_signature_is_judged(authz: AuthzServer) -> None:
    """A caller not allowed kms:Verify learns nothing of whether a signature is valid."""
    key_id = _key(authz, "ECC_NIST_P256", "SIGN_VERIFY", allow(BOB, "kms:Sign"))
    assert error_code(authz.client(BOB).verify, KeyId=key_id, Message=b"m", Signature=b"bogus",
                      SigningAlgorithm="ECDSA_SHA_256") == DENIED


def test_signing_conditions_on_algorithm_and_message_type(authz: AuthzServer) -> None:
    key_id = _key(
        authz, "RSA_2048", "SIGN_VERIFY",
        allow(BOB, "kms:Sign", Condition={"StringEquals": {"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256",
                                                           "kms:MessageType": "DIGEST"}}),
    )
    bob = authz.client(BOB)
    digest = hashlib.sha256(b"m").digest()
    assert _sign(bob, key_id, "RSASSA_PSS_SHA_256", Message=digest, MessageType="DIGEST") is None
    assert _sign(bob, key_id, "RSASSA_PSS_SHA_256", Message=b"m") == DENIED  # MessageType RAW
    assert _sign(bob, key_id, "RSASSA_PKCS1_V1_5_SHA_256", Message=digest, MessageType="DIGEST") == DENIED


def test_key_spec_and_key_usage_conditions(authz: AuthzServer) -> None:
    only_p384 = allow(BOB, ["kms:Sign", "kms:GetPublicKey"],
                      Condition={"StringEquals": {"kms:KeySpec": "ECC_NIST_P384", "kms:KeyUsage": "SIGN_VERIFY"}})
    p384 = _key(authz, "ECC_NIST_P384", "SIGN_VERIFY", only_p384)
    p256 = _key(authz, "ECC_NIST_P256", "SIGN_VERIFY", only_p384)
    bob = authz.client(BOB)
    assert _sign(bob, p384, "ECDSA_SHA_384") is None
    assert _sign(bob, p256) == DENIED
    assert error_code(bob.get_public_key, KeyId=p256) == DENIED
    no_hmac = deny(BOB, "kms:*", Condition={"StringLike": {"kms:KeySpec": "HMAC_*"}})
    mac_key = _key(authz, "HMAC_512", "GENERATE_VERIFY_MAC", allow(BOB, "kms:*", "All"), no_hmac)
    assert error_code(bob.generate_mac, KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_512") == DENIED
    assert error_code(bob.describe_key, KeyId=mac_key) == DENIED


def test_mac_algorithm_and_encryption_algorithm_conditions(authz: AuthzServer) -> None:
    mac_key = _key(authz, "HMAC_384", "GENERATE_VERIFY_MAC",
                   deny(BOB, "kms:GenerateMac", Condition={"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_384"}}),
                   allow(BOB, "kms:GenerateMac"))
    assert error_code(authz.client(BOB).generate_mac, KeyId=mac_key, Message=b"m",
                      MacAlgorithm="HMAC_SHA_384") == DENIED
    rsa_key = _key(authz, "RSA_2048", "ENCRYPT_DECRYPT",
                   allow(BOB, ["kms:Encrypt", "kms:Decrypt"],
                         Condition={"StringEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}}))
    bob = authz.client(BOB)
    blob = bob.encrypt(KeyId=rsa_key, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    assert bob.decrypt(KeyId=rsa_key, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"p"
    assert error_code(bob.encrypt, KeyId=rsa_key, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1") == DENIED


def test_grants_allow_the_new_operations(authz: AuthzServer) -> None:
    root = authz.client()
    signing = _key(authz, "ECC_NIST_P256", "SIGN_VERIFY")
    mac_key = _key(authz, "HMAC_256", "GENERATE_VERIFY_MAC")
    bob = authz.client(BOB)
    assert _sign(bob, signing) == DENIED
    root.create_grant(KeyId=signing, GranteePrincipal=BOB.arn, Operations=["Sign", "GetPublicKey"])
    root.create_grant(KeyId=mac_key, GranteePrincipal=BOB.arn, Operations=["GenerateMac"])
    assert _sign(bob, signing) is None and error_code(bob.get_public_key, KeyId=signing) is None
    signature = bob.sign(KeyId=signing, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert error_code(bob.verify, KeyId=signing, Message=b"m", Signature=signature,
                      SigningAlgorithm="ECDSA_SHA_256") == DENIED
    assert error_code(bob.generate_mac, KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256") is None
    mac = bob.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert error_code(bob.verify_mac, KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256") == DENIED
    # The grant's authorization is in the audit log.
    request_id = bob.sign(KeyId=signing, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["ResponseMetadata"]["RequestId"]
    line = authz.wait_for_audit_line(lambda l: l["request_id"] == request_id)
    assert line["operation"] == "Sign" and line["authorized_by"] == "grant" and line["grant_id"]


@pytest.mark.parametrize(
    ("spec", "usage", "operations"),
    [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["Sign"]), ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["GetPublicKey"]),
     ("RSA_2048", "ENCRYPT_DECRYPT", ["GenerateDataKey"]), ("RSA_2048", "ENCRYPT_DECRYPT", ["Sign"]),
     ("RSA_2048", "SIGN_VERIFY", ["Decrypt"]), ("HMAC_256", "GENERATE_VERIFY_MAC", ["Sign", "GenerateMac"]),
     ("ECC_NIST_P256", "SIGN_VERIFY", ["GenerateMac"])],
)
def test_a_grant_for_operations_the_key_does_not_support_is_refused(
    authz: AuthzServer, spec: str, usage: str, operations: list[str]
) -> None:
    key_id = str(authz.client().create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"])
    assert error_code(authz.client().create_grant, KeyId=key_id, GranteePrincipal=BOB.arn,
                      Operations=operations) == "ValidationException"


def test_asymmetric_grants_take_no_encryption_context_constraint(authz: AuthzServer) -> None:
    rsa_key = str(authz.client().create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"])
    assert error_code(authz.client().create_grant, KeyId=rsa_key, GranteePrincipal=BOB.arn,
                      Operations=["Encrypt", "DescribeKey"],
                      Constraints={"EncryptionContextSubset": {"a": "b"}}) == "ValidationException"
    assert error_code(authz.client().create_grant, KeyId=rsa_key, GranteePrincipal=BOB.arn,
                      Operations=["Encrypt", "Decrypt", "GetPublicKey", "DescribeKey", "RetireGrant"]) is None


def test_new_operations_are_audited_without_messages_signatures_or_macs(authz: AuthzServer) -> None:
    signing = _key(authz, "ECC_NIST_P256", "SIGN_VERIFY", allow(BOB, ["kms:Sign", "kms:Verify"]))
    mac_key = _key(authz, "HMAC_256", "GENERATE_VERIFY_MAC", allow(BOB, "kms:GenerateMac"))
    bob, carol = authz.client(BOB), authz.client(CAROL)
    message = b"audit-canary-message-to-sign-0123456789"
    signed = bob.sign(KeyId=signing, Message=message, SigningAlgorithm="ECDSA_SHA_256")
    mac = bob.generate_mac(KeyId=mac_key, Message=message, MacAlgorithm="HMAC_SHA_256")
    with pytest.raises(ClientError) as raised:
        carol.verify_mac(KeyId=mac_key, Message=message, Mac=mac["Mac"], MacAlgorithm="HMAC_SHA_256")
    denied_id = raised.value.response["ResponseMetadata"]["RequestId"]
    signed_line = authz.wait_for_audit_line(lambda l: l["request_id"] == signed["ResponseMetadata"]["RequestId"])
    assert signed_line["operation"] == "Sign" and signed_line["outcome"] == "success"
    assert signed_line["key_arn"].endswith(signing) and signed_line["principal_arn"] == BOB.arn
    mac_line = authz.wait_for_audit_line(lambda l: l["request_id"] == mac["ResponseMetadata"]["RequestId"])
    assert mac_line["operation"] == "GenerateMac" and mac_line["authorized_by"] == "policy"
    denied = authz.wait_for_audit_line(lambda l: l["request_id"] == denied_id)
    assert denied["operation"] == "VerifyMac" and denied["error_code"] == DENIED
    audit = authz.audit_path.read_bytes()
    for secret in (message, base64.b64encode(message), base64.b64encode(signed["Signature"]),
                   base64.b64encode(mac["Mac"]), mac["Mac"].hex().encode()):
        assert secret not in audit
