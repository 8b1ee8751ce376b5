"""Key policies and grants over a real server for data key pairs and key agreement:
kms:GenerateDataKeyPair, kms:GenerateDataKeyPairWithoutPlaintext, kms:DeriveSharedSecret and
the conditions kms:DataKeyPairSpec and kms:KeyAgreementAlgorithm."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .conftest import BOB, CAROL, AuthzServer, allow, error_code, key_policy

DENIED = "AccessDeniedException"


def _peer() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key(authz: AuthzServer, *statements: dict[str, Any], **create: Any) -> str:
    return str(authz.client().create_key(Policy=key_policy(*statements), **create)["KeyMetadata"]["KeyId"])


def test_data_key_pair_actions_follow_the_key_policy_and_the_key_pair_spec_condition(authz: AuthzServer) -> None:
    key_id = _key(
        authz,
        allow(BOB, "kms:GenerateDataKeyPair", "OnlyRsa",
              Condition={"StringEquals": {"kms:DataKeyPairSpec": "RSA_2048"}}),
        allow(CAROL, "kms:GenerateDataKeyPairWithoutPlaintext", "WithoutPlaintext"),
    )
    bob, carol = authz.client(BOB), authz.client(CAROL)
    assert error_code(bob.generate_data_key_pair, KeyId=key_id, KeyPairSpec="RSA_2048") is None
    assert error_code(bob.generate_data_key_pair, KeyId=key_id, KeyPairSpec="ECC_NIST_P256") == DENIED
    assert error_code(bob.generate_data_key_pair_without_plaintext, KeyId=key_id, KeyPairSpec="RSA_2048") == DENIED
    assert error_code(carol.generate_data_key_pair_without_plaintext, KeyId=key_id, KeyPairSpec="ECC_NIST_P256") is None
    assert error_code(carol.generate_data_key_pair, KeyId=key_id, KeyPairSpec="ECC_NIST_P256") == DENIED


def test_a_grant_allows_a_data_key_pair_within_its_encryption_context_constraint(authz: AuthzServer) -> None:
    key_id = _key(authz)
    bob = authz.client(BOB)
    assert error_code(bob.generate_data_key_pair, KeyId=key_id, KeyPairSpec="ECC_NIST_P256") == DENIED
    token = authz.client().create_grant(
        KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["GenerateDataKeyPair"],
        Constraints={"EncryptionContextSubset": {"tenant": "acme"}},
    )["GrantToken"]
    assert error_code(bob.generate_data_key_pair, KeyId=key_id, KeyPairSpec="ECC_NIST_P256",
                      EncryptionContext={"tenant": "acme"}, GrantTokens=[token]) is None
    assert error_code(bob.generate_data_key_pair, KeyId=key_id, KeyPairSpec="ECC_NIST_P256",
                      EncryptionContext={"tenant": "other"}, GrantTokens=[token]) == DENIED
    assert error_code(bob.generate_data_key_pair_without_plaintext, KeyId=key_id, KeyPairSpec="ECC_NIST_P256",
                      EncryptionContext={"tenant": "acme"}, GrantTokens=[token]) == DENIED


def test_derive_shared_secret_follows_the_key_policy_and_the_key_agreement_algorithm_condition(
    authz: AuthzServer,
) -> None:
    allowed = _key(
        authz, allow(BOB, "kms:DeriveSharedSecret", Condition={"StringEquals": {"kms:KeyAgreementAlgorithm": "ECDH"}}),
        KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT",
    )
    # A condition on another algorithm value never matches: ECDH is the only one.
    other = _key(
        authz, allow(BOB, "kms:DeriveSharedSecret", Condition={"StringEquals": {"kms:KeyAgreementAlgorithm": "SM2"}}),
        KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT",
    )
    bob, carol = authz.client(BOB), authz.client(CAROL)
    derive = dict(KeyAgreementAlgorithm="ECDH", PublicKey=_peer())
    assert error_code(bob.derive_shared_secret, KeyId=allowed, **derive) is None
    assert error_code(carol.derive_shared_secret, KeyId=allowed, **derive) == DENIED
    assert error_code(bob.derive_shared_secret, KeyId=other, **derive) == DENIED


def test_a_grant_allows_derive_shared_secret(authz: AuthzServer) -> None:
    key_id = _key(authz, KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")
    bob = authz.client(BOB)
    peer = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert error_code(bob.derive_shared_secret, KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer) == DENIED
    authz.client().create_grant(KeyId=key_id, GranteePrincipal=BOB.arn, Operations=["DeriveSharedSecret"])
    assert error_code(bob.derive_shared_secret, KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer) is None
    assert error_code(authz.client().create_grant, KeyId=key_id, GranteePrincipal=BOB.arn,
                      Operations=["GenerateDataKeyPair"]) == "ValidationException"
