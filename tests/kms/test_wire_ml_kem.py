"""ML-KEM keys over the real server: CreateKey, DescribeKey, ListKeys, GetPublicKey, Encapsulate,
Decapsulate, GenerateDataKeyPair(WithoutPlaintext), ImportKeyMaterial, and the errors AWS answers.

The botocore that boto3 pins has no Encapsulate, Decapsulate or ML_KEM_* values, so requests that
carry them are hand-built JSON signed with botocore's SigV4Auth, as any AWS client signs them;
calls whose request the pinned model can express (DescribeKey, GetPublicKey, Decrypt, DisableKey,
ImportKeyMaterial) go through boto3. Shared secrets are checked independently: a secret
encapsulated locally under GetPublicKey's key decapsulates through kmsgate to the same bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem
from kyber_py.ml_kem import ML_KEM_512

from kmsgate.kms import kem

from .helpers import signed_post, wrap_key_material

SPECS = ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")
CIPHERTEXT_BYTES = {"ML_KEM_512": 768, "ML_KEM_768": 1088, "ML_KEM_1024": 1568}
ENCAPSULATION_KEY_BYTES = {"ML_KEM_512": 800, "ML_KEM_768": 1184, "ML_KEM_1024": 1568}


def call(server: Any, operation: str, **document: Any) -> tuple[int, dict[str, Any]]:
    """``operation`` with ``document`` (bytes base64-encoded), SigV4-signed, over loopback."""
    body = {name: base64.b64encode(value).decode() if isinstance(value, bytes) else value
            for name, value in document.items()}
    return signed_post(server, json.dumps(body).encode(), f"TrentService.{operation}")


def ok(server: Any, operation: str, **document: Any) -> dict[str, Any]:
    status, answer = call(server, operation, **document)
    assert status == 200, answer
    return answer


def error(server: Any, operation: str, **document: Any) -> tuple[str, str]:
    status, answer = call(server, operation, **document)
    assert status == 400, answer
    return answer["__type"], answer["message"]


def ml_kem_key(server: Any, spec: str, **extra: Any) -> str:
    created = ok(server, "CreateKey", KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE", **extra)
    return str(created["KeyMetadata"]["KeyId"])


def encapsulate_locally(spec: str, spki: bytes) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext) under the public key of a DER SPKI, without kmsgate's code."""
    if spec == "ML_KEM_512":
        # SEQUENCE(818) { SEQUENCE(11) { OID 2.16.840.1.101.3.4.4.1 }, BIT STRING(801) { 0 unused bits, ek } }
        assert len(spki) == 822 and spki[:22] == bytes.fromhex("30820332" "300b0609608648016503040401" "0382032100")
        return ML_KEM_512.encaps(spki[-ENCAPSULATION_KEY_BYTES[spec]:])  # type: ignore[no-any-return]
    public = serialization.load_der_public_key(spki)
    assert isinstance(public, (mlkem.MLKEM768PublicKey, mlkem.MLKEM1024PublicKey))
    assert type(public).__name__ == f"MLKEM{spec.rsplit('_', 1)[1]}PublicKey"
    return public.encapsulate()


@pytest.mark.parametrize("spec", SPECS)
def test_an_ml_kem_key_is_described_as_aws_describes_it(kmsgate_server: Any, spec: str) -> None:
    created = ok(kmsgate_server, "CreateKey", KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]
    described = ok(kmsgate_server, "DescribeKey", KeyId=created["KeyId"])["KeyMetadata"]
    for metadata in (created, described):
        assert metadata["KeySpec"] == spec and metadata["KeyUsage"] == "ENCAPSULATE_DECAPSULATE"
        assert metadata["EncapsulationAlgorithms"] == ["ML_KEM"]
        assert metadata["KeyState"] == "Enabled" and metadata["Origin"] == "AWS_KMS"
        for absent in ("EncryptionAlgorithms", "SigningAlgorithms", "KeyAgreementAlgorithms", "MacAlgorithms",
                       "CustomerMasterKeySpec"):
            assert absent not in metadata
    boto = kmsgate_server.kms_client()
    assert boto.describe_key(KeyId=created["KeyId"])["KeyMetadata"]["KeySpec"] == spec  # the pinned model reads it
    listed = {key["KeyId"] for key in boto.get_paginator("list_keys").paginate().build_full_result()["Keys"]}
    assert created["KeyId"] in listed


@pytest.mark.parametrize("spec", SPECS)
def test_a_secret_encapsulated_locally_decapsulates_through_kmsgate(kmsgate_server: Any, spec: str) -> None:
    key_id = ml_kem_key(kmsgate_server, spec)
    answer = kmsgate_server.kms_client().get_public_key(KeyId=key_id)
    assert answer["KeySpec"] == spec and answer["KeyUsage"] == "ENCAPSULATE_DECAPSULATE"
    assert ok(kmsgate_server, "GetPublicKey", KeyId=key_id)["EncapsulationAlgorithms"] == ["ML_KEM"]
    spki = answer["PublicKey"]
    assert spki == kem.subject_public_key_info(spec, spki[-ENCAPSULATION_KEY_BYTES[spec]:])
    secret, ciphertext = encapsulate_locally(spec, spki)
    decapsulated = ok(kmsgate_server, "Decapsulate", KeyId=key_id, SharedSecretCiphertextBlob=ciphertext,
                      EncapsulationAlgorithm="ML_KEM")
    assert base64.b64decode(decapsulated["SharedSecret"]) == secret
    assert decapsulated["EncapsulationAlgorithm"] == "ML_KEM" and decapsulated["KeyId"].endswith(key_id)


@pytest.mark.parametrize("spec", SPECS)
def test_kmsgates_encapsulation_decapsulates_to_the_secret_it_returned(kmsgate_server: Any, spec: str) -> None:
    key_id = ml_kem_key(kmsgate_server, spec)
    alias = f"alias/ml-kem-{spec.lower().replace('_', '-')}-{key_id[:8]}"
    ok(kmsgate_server, "CreateAlias", AliasName=alias, TargetKeyId=key_id)
    encapsulated = ok(kmsgate_server, "Encapsulate", KeyId=alias, EncapsulationAlgorithm="ML_KEM")
    assert encapsulated["KeyId"].endswith(key_id) and encapsulated["EncapsulationAlgorithm"] == "ML_KEM"
    secret = base64.b64decode(encapsulated["SharedSecret"])
    ciphertext = base64.b64decode(encapsulated["SharedSecretCiphertextBlob"])
    assert len(secret) == 32 and len(ciphertext) == CIPHERTEXT_BYTES[spec]
    decapsulated = ok(kmsgate_server, "Decapsulate", KeyId=key_id, SharedSecretCiphertextBlob=ciphertext,
                      EncapsulationAlgorithm="ML_KEM")
    assert base64.b64decode(decapsulated["SharedSecret"]) == secret
    tampered = bytes([ciphertext[0] ^ 0x80]) + ciphertext[1:]
    rejected = ok(kmsgate_server, "Decapsulate", KeyId=key_id, SharedSecretCiphertextBlob=tampered,
                  EncapsulationAlgorithm="ML_KEM")  # implicit rejection: an answer, not an error
    assert len(base64.b64decode(rejected["SharedSecret"])) == 32
    assert base64.b64decode(rejected["SharedSecret"]) != secret


@pytest.mark.parametrize("spec", SPECS)
def test_a_data_key_pairs_private_key_matches_its_public_key(kmsgate_server: Any, spec: str) -> None:
    wrapping = kmsgate_server.kms_client().create_key()["KeyMetadata"]["KeyId"]
    pair = ok(kmsgate_server, "GenerateDataKeyPair", KeyId=wrapping, KeyPairSpec=spec,
              EncryptionContext={"purpose": "ml-kem"})
    assert pair["KeyPairSpec"] == spec
    private_der = base64.b64decode(pair["PrivateKeyPlaintext"])
    assert len(private_der) == 86 and kem.spec_of_private_key(private_der) == spec  # PKCS#8, seed form
    opened = kmsgate_server.kms_client().decrypt(
        CiphertextBlob=base64.b64decode(pair["PrivateKeyCiphertextBlob"]), EncryptionContext={"purpose": "ml-kem"}
    )
    assert opened["Plaintext"] == private_der
    public = base64.b64decode(pair["PublicKey"])
    secret, ciphertext = encapsulate_locally(spec, public)
    assert kem.decapsulate(spec, private_der, ciphertext) == secret
    without = ok(kmsgate_server, "GenerateDataKeyPairWithoutPlaintext", KeyId=wrapping, KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in without
    private_der = kmsgate_server.kms_client().decrypt(
        CiphertextBlob=base64.b64decode(without["PrivateKeyCiphertextBlob"]))["Plaintext"]
    assert kem.public_key_der(private_der) == base64.b64decode(without["PublicKey"])


def test_imported_ml_kem_material_decapsulates_what_its_own_public_key_encapsulates(kmsgate_server: Any) -> None:
    private_key = mlkem.MLKEM1024PrivateKey.generate()
    key_id = ok(kmsgate_server, "CreateKey", KeySpec="ML_KEM_1024", KeyUsage="ENCAPSULATE_DECAPSULATE",
                Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    boto = kmsgate_server.kms_client()
    params = boto.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                            WrappingKeySpec="RSA_4096")
    material = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
    boto.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                             EncryptedKeyMaterial=wrap_key_material(params["PublicKey"], material, "RSAES_OAEP_SHA_256"),
                             ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert boto.get_public_key(KeyId=key_id)["PublicKey"] == private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret, ciphertext = private_key.public_key().encapsulate()
    decapsulated = ok(kmsgate_server, "Decapsulate", KeyId=key_id, SharedSecretCiphertextBlob=ciphertext,
                      EncapsulationAlgorithm="ML_KEM")
    assert base64.b64decode(decapsulated["SharedSecret"]) == secret


def test_ml_kem_material_of_another_parameter_set_is_refused_on_import(kmsgate_server: Any) -> None:
    key_id = ok(kmsgate_server, "CreateKey", KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE",
                Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    boto = kmsgate_server.kms_client()
    params = boto.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                            WrappingKeySpec="RSA_4096")
    with pytest.raises(boto.exceptions.IncorrectKeyMaterialException):
        boto.import_key_material(
            KeyId=key_id, ImportToken=params["ImportToken"], ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
            EncryptedKeyMaterial=wrap_key_material(params["PublicKey"], kem.generate("ML_KEM_512"), "RSAES_OAEP_SHA_256"),
        )


def test_an_ml_kem_key_spec_takes_only_the_encapsulate_decapsulate_usage(kmsgate_server: Any) -> None:
    for usage in ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "KEY_AGREEMENT", "GENERATE_VERIFY_MAC"):
        assert error(kmsgate_server, "CreateKey", KeySpec="ML_KEM_768", KeyUsage=usage) == (
            "ValidationException", f"KeyUsage {usage} is not compatible with KeySpec ML_KEM_768"
        )
    assert error(kmsgate_server, "CreateKey", KeySpec="ML_KEM_512")[0] == "ValidationException"  # usage defaults to ENCRYPT_DECRYPT
    for spec in ("SYMMETRIC_DEFAULT", "ECC_NIST_P256", "RSA_2048", "ML_DSA_44"):
        code, message = error(kmsgate_server, "CreateKey", KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE")
        assert (code, message) == ("ValidationException", f"KeyUsage ENCAPSULATE_DECAPSULATE is not compatible with KeySpec {spec}")


def test_other_keys_refuse_encapsulate_and_ml_kem_keys_refuse_other_operations(kmsgate_server: Any) -> None:
    boto = kmsgate_server.kms_client()
    symmetric = boto.create_key()["KeyMetadata"]["KeyId"]
    agreement = boto.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    for key_id in (symmetric, agreement):
        assert error(kmsgate_server, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM")[0] == (
            "InvalidKeyUsageException"
        )
        assert error(kmsgate_server, "Decapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM",
                     SharedSecretCiphertextBlob=bytes(1088))[0] == "InvalidKeyUsageException"
    key_id = ml_kem_key(kmsgate_server, "ML_KEM_768")
    assert error(kmsgate_server, "Encrypt", KeyId=key_id, Plaintext=b"x")[0] == "InvalidKeyUsageException"
    assert error(kmsgate_server, "Sign", KeyId=key_id, Message=b"x", SigningAlgorithm="ML_DSA_SHAKE_256")[0] == (
        "InvalidKeyUsageException"
    )
    assert error(kmsgate_server, "GenerateDataKey", KeyId=key_id, KeySpec="AES_256")[0] == "InvalidKeyUsageException"
    assert error(kmsgate_server, "EnableKeyRotation", KeyId=key_id)[0] == "UnsupportedOperationException"


@pytest.mark.parametrize("spec", SPECS)
def test_a_ciphertext_of_the_wrong_length_is_invalid_ciphertext(kmsgate_server: Any, spec: str) -> None:
    key_id = ml_kem_key(kmsgate_server, spec)
    for length in {1, CIPHERTEXT_BYTES[spec] - 1, CIPHERTEXT_BYTES[spec] + 1, *CIPHERTEXT_BYTES.values()} - {
        CIPHERTEXT_BYTES[spec]
    }:
        assert error(kmsgate_server, "Decapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM",
                     SharedSecretCiphertextBlob=bytes(length)) == (
            "InvalidCiphertextException", kem.INVALID_CIPHERTEXT_MESSAGE
        )


def test_requests_outside_the_model_are_validation_errors(kmsgate_server: Any) -> None:
    key_id = ml_kem_key(kmsgate_server, "ML_KEM_768")
    code, message = error(kmsgate_server, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ECDH")
    assert code == "ValidationException" and "Member must satisfy enum value set: [ML_KEM]" in message
    code, message = error(kmsgate_server, "Encapsulate", KeyId=key_id)
    assert code == "ValidationException" and "encapsulationAlgorithm" in message
    code, message = error(kmsgate_server, "Decapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM")
    assert code == "ValidationException" and "sharedSecretCiphertextBlob" in message
    code, message = error(kmsgate_server, "Decapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM",
                          SharedSecretCiphertextBlob=bytes(6145))
    assert code == "ValidationException" and "less than or equal to 6144" in message
    wrapping = kmsgate_server.kms_client().create_key()["KeyMetadata"]["KeyId"]
    code, message = error(kmsgate_server, "GenerateDataKeyPair", KeyId=wrapping, KeyPairSpec="ML_KEM_2048")
    assert code == "ValidationException" and "ML_KEM_512, ML_KEM_768, ML_KEM_1024" in message


def test_a_disabled_or_deleted_ml_kem_key_does_not_encapsulate(kmsgate_server: Any) -> None:
    boto = kmsgate_server.kms_client()
    key_id = ml_kem_key(kmsgate_server, "ML_KEM_512")
    boto.disable_key(KeyId=key_id)
    assert error(kmsgate_server, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM")[0] == "DisabledException"
    assert error(kmsgate_server, "Decapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM",
                 SharedSecretCiphertextBlob=bytes(768))[0] == "DisabledException"
    boto.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert error(kmsgate_server, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM")[0] == (
        "KMSInvalidStateException"
    )


def test_a_dry_run_is_refused_as_for_every_cryptographic_operation(kmsgate_server: Any) -> None:
    key_id = ml_kem_key(kmsgate_server, "ML_KEM_768")
    assert error(kmsgate_server, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM", DryRun=True)[0] == (
        "UnsupportedOperationException"
    )
    assert ok(kmsgate_server, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM", DryRun=False)


def test_key_last_usage_names_encapsulate_and_decapsulate(kmsgate_server: Any) -> None:
    key_id = ml_kem_key(kmsgate_server, "ML_KEM_768")
    encapsulated = ok(kmsgate_server, "Encapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM")
    assert ok(kmsgate_server, "GetKeyLastUsage", KeyId=key_id)["KeyLastUsage"]["Operation"] == "Encapsulate"
    ok(kmsgate_server, "Decapsulate", KeyId=key_id, EncapsulationAlgorithm="ML_KEM",
       SharedSecretCiphertextBlob=base64.b64decode(encapsulated["SharedSecretCiphertextBlob"]))
    assert ok(kmsgate_server, "GetKeyLastUsage", KeyId=key_id)["KeyLastUsage"]["Operation"] == "Decapsulate"
