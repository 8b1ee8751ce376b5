"""DeriveSharedSecret through a real ``kmsgate serve`` with boto3 and the ``aws kms`` command line.

Every shared secret is checked outside kmsgate: pyca/cryptography and ``openssl pkeyutl -derive``
compute ECDH from the peer's private key and the public key GetPublicKey returns.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

OPENSSL = shutil.which("openssl")
AWS = Path(sys.executable).parent / "aws"
CURVES = {"ECC_NIST_P256": ec.SECP256R1(), "ECC_NIST_P384": ec.SECP384R1(), "ECC_NIST_P521": ec.SECP521R1()}
SECRET_BYTES = {"ECC_NIST_P256": 32, "ECC_NIST_P384": 48, "ECC_NIST_P521": 66}


@pytest.fixture(scope="module")
def agreement_keys(kmsgate_server: Any) -> dict[str, str]:
    kms = kmsgate_server.kms_client()
    return {
        spec: kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"] for spec in CURVES
    }


def spki(public: Any) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[no-any-return]


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"]), str(caught.value.response["Error"]["Message"])


@pytest.mark.parametrize("spec", sorted(CURVES))
def test_the_shared_secret_is_the_one_the_peer_computes_with_cryptography_and_openssl(
    kms: Any, agreement_keys: dict[str, str], spec: str, tmp_path: Path
) -> None:
    peer = ec.generate_private_key(CURVES[spec])
    answer = kms.derive_shared_secret(KeyId=agreement_keys[spec], KeyAgreementAlgorithm="ECDH", PublicKey=spki(peer.public_key()))
    assert answer["KeyAgreementAlgorithm"] == "ECDH" and answer["KeyOrigin"] == "AWS_KMS"
    assert answer["KeyId"].endswith(agreement_keys[spec])
    kms_public = serialization.load_der_public_key(kms.get_public_key(KeyId=agreement_keys[spec])["PublicKey"])
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    expected = peer.exchange(ec.ECDH(), kms_public)
    assert len(expected) == SECRET_BYTES[spec]
    assert answer["SharedSecret"] == expected
    if OPENSSL is None:
        return
    (tmp_path / "peer.pem").write_bytes(
        peer.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "kms.der").write_bytes(spki(kms_public))
    derived = subprocess.run(
        [OPENSSL, "pkeyutl", "-derive", "-inkey", str(tmp_path / "peer.pem"),
         "-peerkey", str(tmp_path / "kms.der"), "-peerform", "DER"],
        capture_output=True, check=True,
    ).stdout
    assert derived == answer["SharedSecret"]


def test_two_kms_keys_agree_on_one_secret(kms: Any, agreement_keys: dict[str, str]) -> None:
    other = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    mine = agreement_keys["ECC_NIST_P256"]
    public = {key: kms.get_public_key(KeyId=key)["PublicKey"] for key in (mine, other)}
    ours = kms.derive_shared_secret(KeyId=mine, KeyAgreementAlgorithm="ECDH", PublicKey=public[other])
    theirs = kms.derive_shared_secret(KeyId=other, KeyAgreementAlgorithm="ECDH", PublicKey=public[mine])
    assert ours["SharedSecret"] == theirs["SharedSecret"]


def test_a_public_key_of_another_curve_is_a_validation_error(kms: Any, agreement_keys: dict[str, str]) -> None:
    p384 = spki(ec.generate_private_key(ec.SECP384R1()).public_key())
    code, message = error_of(
        kms.derive_shared_secret, KeyId=agreement_keys["ECC_NIST_P256"], KeyAgreementAlgorithm="ECDH", PublicKey=p384
    )
    assert code == "ValidationException"
    assert "ECC_NIST_P256" in message and "secp384r1" in message


@pytest.mark.parametrize(
    "public_key",
    [
        b"InvalidPublicKey",
        spki(ec.generate_private_key(ec.SECP256R1()).public_key())[:-1],  # truncated point
        spki(rsa.generate_private_key(65537, 2048).public_key()),
        spki(ec.generate_private_key(ec.SECP256K1()).public_key()),
    ],
    ids=["not-der", "truncated", "rsa", "secp256k1"],
)
def test_a_malformed_or_non_matching_public_key_is_a_validation_error(
    kms: Any, agreement_keys: dict[str, str], public_key: bytes
) -> None:
    code, message = error_of(
        kms.derive_shared_secret, KeyId=agreement_keys["ECC_NIST_P256"], KeyAgreementAlgorithm="ECDH",
        PublicKey=public_key,
    )
    assert code == "ValidationException"
    assert public_key.hex() not in message


def test_a_point_off_the_curve_is_refused(kms: Any, agreement_keys: dict[str, str]) -> None:
    good = spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    bad = good[:-1] + bytes([good[-1] ^ 1])  # y no longer matches x
    code, _ = error_of(
        kms.derive_shared_secret, KeyId=agreement_keys["ECC_NIST_P256"], KeyAgreementAlgorithm="ECDH", PublicKey=bad
    )
    assert code == "ValidationException"


@pytest.mark.parametrize(("spec", "usage"), [("ECC_NIST_P256", "SIGN_VERIFY"), ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")])
def test_a_key_without_key_agreement_usage_is_invalid_key_usage(kms: Any, spec: str, usage: str) -> None:
    key_id = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    peer = spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    code, _ = error_of(kms.derive_shared_secret, KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer)
    assert code == "InvalidKeyUsageException"


def test_secp256k1_keys_do_not_offer_key_agreement(kms: Any) -> None:
    code, _ = error_of(kms.create_key, KeySpec="ECC_SECG_P256K1", KeyUsage="KEY_AGREEMENT")
    assert code == "ValidationException"


def test_a_recipient_attestation_is_unsupported(kms: Any, agreement_keys: dict[str, str]) -> None:
    peer = spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    code, message = error_of(
        kms.derive_shared_secret, KeyId=agreement_keys["ECC_NIST_P256"], KeyAgreementAlgorithm="ECDH",
        PublicKey=peer, Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"doc"},
    )
    assert code == "UnsupportedOperationException" and "recipient" in message


def test_a_disabled_key_derives_nothing(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    peer = spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    code, _ = error_of(kms.derive_shared_secret, KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer)
    assert code == "DisabledException"


def test_the_aws_cli_derives_the_same_secret(kmsgate_server: Any, agreement_keys: dict[str, str], tmp_path: Path) -> None:
    if not AWS.exists():
        pytest.skip(f"the aws command line is not installed next to {sys.executable}")
    peer = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "peer.der").write_bytes(spki(peer.public_key()))
    result = subprocess.run(
        [str(AWS), "kms", "derive-shared-secret", "--key-id", agreement_keys["ECC_NIST_P384"],
         "--key-agreement-algorithm", "ECDH", "--public-key", f"fileb://{tmp_path / 'peer.der'}", "--output", "json"],
        env=kmsgate_server.cli_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    secret = base64.b64decode(json.loads(result.stdout)["SharedSecret"])
    kms_public = serialization.load_der_public_key(kmsgate_server.kms_client().get_public_key(
        KeyId=agreement_keys["ECC_NIST_P384"])["PublicKey"])
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    assert secret == peer.exchange(ec.ECDH(), kms_public)
