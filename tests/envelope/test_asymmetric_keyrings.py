"""The AWS Encryption SDK's asymmetric AWS KMS keyrings through a running kmsgate.

The Material Providers Library (``aws-cryptographic-material-providers``) builds the AWS KMS RSA
keyring and the AWS KMS ECDH keyring on a boto3 KMS client whose endpoint is the kmsgate server;
``aws-encryption-sdk`` encrypts and decrypts messages with them. The RSA keyring wraps data keys
with GetPublicKey's public key and unwraps them with Decrypt (RSAES_OAEP_SHA_256); the ECDH
keyring derives its wrapping keys with DeriveSharedSecret on both sides.
"""

from __future__ import annotations

from typing import Any

import pytest

mpl = pytest.importorskip("aws_cryptographic_material_providers.mpl")

import aws_encryption_sdk  # noqa: E402
from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders  # noqa: E402
from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig  # noqa: E402
from aws_cryptographic_material_providers.mpl.models import (  # noqa: E402
    CreateAwsKmsEcdhKeyringInput,
    CreateAwsKmsRsaKeyringInput,
    KmsEcdhStaticConfigurationsKmsPrivateKeyToStaticPublicKey,
    KmsEcdhStaticConfigurationsKmsPublicKeyDiscovery,
    KmsPrivateKeyToStaticPublicKeyInput,
    KmsPublicKeyDiscoveryInput,
)
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

PLAINTEXT = b"kmsgate under the Encryption SDK's asymmetric keyrings " * 100
CONTEXT = {"purpose": "asymmetric-keyrings"}


@pytest.fixture(scope="module")
def providers() -> Any:
    return AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())


def sdk() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


def test_the_aws_kms_rsa_keyring_encrypts_and_decrypts_through_kmsgate(kms: Any, providers: Any) -> None:
    key_arn = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    public_key_der = kms.get_public_key(KeyId=key_arn)["PublicKey"]
    # The keyring takes the public key PEM-encoded, as the SDK's examples pass it.
    public_pem = serialization.load_der_public_key(public_key_der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encrypting = providers.create_aws_kms_rsa_keyring(CreateAwsKmsRsaKeyringInput(
        kms_key_id=key_arn, encryption_algorithm="RSAES_OAEP_SHA_256", public_key=public_pem, kms_client=kms,
    ))
    # The RSA keyring refuses suites with a signature: the decrypting side could not verify a
    # signing key it never saw, so the SDK asks for a suite without one.
    ciphertext, _ = sdk().encrypt(source=PLAINTEXT, keyring=encrypting, encryption_context=CONTEXT,
                                  algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    assert PLAINTEXT not in ciphertext
    decrypting = providers.create_aws_kms_rsa_keyring(CreateAwsKmsRsaKeyringInput(
        kms_key_id=key_arn, encryption_algorithm="RSAES_OAEP_SHA_256", kms_client=kms,
    ))
    decrypted, header = sdk().decrypt(source=ciphertext, keyring=decrypting, encryption_context=CONTEXT)
    assert decrypted == PLAINTEXT
    assert header.encryption_context["purpose"] == CONTEXT["purpose"]


@pytest.mark.parametrize("curve", ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"])
def test_the_aws_kms_ecdh_keyring_encrypts_and_decrypts_through_kmsgate(kms: Any, providers: Any, curve: str) -> None:
    sender = kms.create_key(KeySpec=curve, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["Arn"]
    recipient = kms.create_key(KeySpec=curve, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["Arn"]
    sender_public = kms.get_public_key(KeyId=sender)["PublicKey"]
    recipient_public = kms.get_public_key(KeyId=recipient)["PublicKey"]
    encrypting = providers.create_aws_kms_ecdh_keyring(CreateAwsKmsEcdhKeyringInput(
        key_agreement_scheme=KmsEcdhStaticConfigurationsKmsPrivateKeyToStaticPublicKey(
            KmsPrivateKeyToStaticPublicKeyInput(
                sender_kms_identifier=sender, sender_public_key=sender_public, recipient_public_key=recipient_public,
            )
        ),
        curve_spec=curve,
        kms_client=kms,
    ))
    ciphertext, _ = sdk().encrypt(source=PLAINTEXT, keyring=encrypting, encryption_context=CONTEXT)
    # The sender's own keyring decrypts (DeriveSharedSecret with the sender's key) ...
    assert sdk().decrypt(source=ciphertext, keyring=encrypting, encryption_context=CONTEXT)[0] == PLAINTEXT
    # ... and so does the recipient's discovery keyring (DeriveSharedSecret with the recipient's key).
    discovery = providers.create_aws_kms_ecdh_keyring(CreateAwsKmsEcdhKeyringInput(
        key_agreement_scheme=KmsEcdhStaticConfigurationsKmsPublicKeyDiscovery(
            KmsPublicKeyDiscoveryInput(recipient_kms_identifier=recipient)
        ),
        curve_spec=curve,
        kms_client=kms,
    ))
    assert sdk().decrypt(source=ciphertext, keyring=discovery, encryption_context=CONTEXT)[0] == PLAINTEXT


def test_an_ecdh_message_for_another_recipient_does_not_decrypt(kms: Any, providers: Any) -> None:
    sender = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["Arn"]
    recipient = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["Arn"]
    stranger = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["Arn"]
    encrypting = providers.create_aws_kms_ecdh_keyring(CreateAwsKmsEcdhKeyringInput(
        key_agreement_scheme=KmsEcdhStaticConfigurationsKmsPrivateKeyToStaticPublicKey(
            KmsPrivateKeyToStaticPublicKeyInput(
                sender_kms_identifier=sender, recipient_public_key=kms.get_public_key(KeyId=recipient)["PublicKey"],
            )
        ),
        curve_spec="ECC_NIST_P256",
        kms_client=kms,
    ))
    ciphertext, _ = sdk().encrypt(source=PLAINTEXT, keyring=encrypting)
    wrong = providers.create_aws_kms_ecdh_keyring(CreateAwsKmsEcdhKeyringInput(
        key_agreement_scheme=KmsEcdhStaticConfigurationsKmsPublicKeyDiscovery(
            KmsPublicKeyDiscoveryInput(recipient_kms_identifier=stranger)
        ),
        curve_spec="ECC_NIST_P256",
        kms_client=kms,
    ))
    with pytest.raises(Exception) as caught:
        sdk().decrypt(source=ciphertext, keyring=wrong)
    assert PLAINTEXT[:32] not in str(caught.value).encode()
