"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext through a real ``kmsgate serve``.

Each pair is checked outside kmsgate: the private key (from the response, or from Decrypt of its
ciphertext) parses with pyca/cryptography as a key of the requested spec whose public half is the
returned PublicKey, and ``openssl pkey`` reads it and prints the same public key.
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
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

OPENSSL = shutil.which("openssl")
AWS = Path(sys.executable).parent / "aws"
CONTEXT = {"purpose": "data-key-pair", "tenant": "acme"}
EXPECTED = {
    "RSA_2048": (rsa.RSAPrivateKey, 2048),
    "RSA_3072": (rsa.RSAPrivateKey, 3072),
    "RSA_4096": (rsa.RSAPrivateKey, 4096),
    "ECC_NIST_P256": (ec.EllipticCurvePrivateKey, "secp256r1"),
    "ECC_NIST_P384": (ec.EllipticCurvePrivateKey, "secp384r1"),
    "ECC_NIST_P521": (ec.EllipticCurvePrivateKey, "secp521r1"),
    "ECC_SECG_P256K1": (ec.EllipticCurvePrivateKey, "secp256k1"),
    "ECC_NIST_EDWARDS25519": (ed25519.Ed25519PrivateKey, None),
}


@pytest.fixture(scope="module")
def wrapping_key(kmsgate_server: Any) -> str:
    return str(kmsgate_server.kms_client().create_key()["KeyMetadata"]["KeyId"])


def spki(private: Any) -> bytes:
    return private.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_pair(spec: str, private_der: bytes, public_der: bytes) -> None:
    private = serialization.load_der_private_key(private_der, password=None)
    kind, size = EXPECTED[spec]
    assert isinstance(private, kind)
    if isinstance(private, rsa.RSAPrivateKey):
        assert private.key_size == size
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        assert private.curve.name == size
    assert spki(private) == public_der
    # PKCS#8, as AWS returns it: re-encoding the parsed key as PKCS#8 gives the same bytes.
    assert private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) == private_der


def openssl_public(tmp_path: Path, private_der: bytes) -> bytes:
    (tmp_path / "private.der").write_bytes(private_der)
    return subprocess.run(
        [str(OPENSSL), "pkey", "-inform", "DER", "-in", str(tmp_path / "private.der"), "-pubout", "-outform", "DER"],
        capture_output=True, check=True,
    ).stdout


@pytest.mark.parametrize("spec", sorted(EXPECTED))
def test_a_data_key_pair_is_a_key_of_its_spec_and_decrypt_returns_its_private_key(
    kms: Any, wrapping_key: str, spec: str, tmp_path: Path
) -> None:
    pair = kms.generate_data_key_pair(KeyId=wrapping_key, KeyPairSpec=spec, EncryptionContext=CONTEXT)
    assert pair["KeyPairSpec"] == spec and pair["KeyId"].endswith(wrapping_key)
    assert len(pair["KeyMaterialId"]) == 64
    check_pair(spec, pair["PrivateKeyPlaintext"], pair["PublicKey"])
    decrypted = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=CONTEXT)
    assert decrypted["Plaintext"] == pair["PrivateKeyPlaintext"]
    assert decrypted["KeyId"] == pair["KeyId"]
    if OPENSSL is not None:
        assert openssl_public(tmp_path, pair["PrivateKeyPlaintext"]) == pair["PublicKey"]


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P384", "ECC_NIST_EDWARDS25519"])
def test_without_plaintext_the_private_key_comes_only_from_decrypt(kms: Any, wrapping_key: str, spec: str) -> None:
    pair = kms.generate_data_key_pair_without_plaintext(KeyId=wrapping_key, KeyPairSpec=spec, EncryptionContext=CONTEXT)
    assert "PrivateKeyPlaintext" not in pair
    private_der = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=CONTEXT)["Plaintext"]
    check_pair(spec, private_der, pair["PublicKey"])


def test_the_private_key_signs_what_its_public_key_verifies(kms: Any, wrapping_key: str) -> None:
    pair = kms.generate_data_key_pair(KeyId=wrapping_key, KeyPairSpec="ECC_NIST_P256")
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    public = serialization.load_der_public_key(pair["PublicKey"])
    assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(private.sign(b"message", ec.ECDSA(hashes.SHA256())), b"message", ec.ECDSA(hashes.SHA256()))


def test_every_request_makes_a_new_pair(kms: Any, wrapping_key: str) -> None:
    publics = {kms.generate_data_key_pair(KeyId=wrapping_key, KeyPairSpec="ECC_NIST_P256")["PublicKey"] for _ in range(3)}
    assert len(publics) == 3


def test_the_private_key_ciphertext_needs_its_encryption_context(kms: Any, wrapping_key: str) -> None:
    pair = kms.generate_data_key_pair_without_plaintext(
        KeyId=wrapping_key, KeyPairSpec="ECC_NIST_P256", EncryptionContext=CONTEXT
    )
    for context in ({}, {"purpose": "data-key-pair"}, {**CONTEXT, "tenant": "other"}):
        with pytest.raises(ClientError) as caught:
            kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=context)
        assert caught.value.response["Error"]["Code"] == "InvalidCiphertextException"


@pytest.mark.parametrize(("spec", "usage"), [("RSA_2048", "ENCRYPT_DECRYPT"), ("HMAC_256", "GENERATE_VERIFY_MAC")])
def test_only_a_symmetric_encryption_key_wraps_a_data_key_pair(kms: Any, spec: str, usage: str) -> None:
    key_id = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    for call in (kms.generate_data_key_pair, kms.generate_data_key_pair_without_plaintext):
        with pytest.raises(ClientError) as caught:
            call(KeyId=key_id, KeyPairSpec="ECC_NIST_P256")
        assert caught.value.response["Error"]["Code"] == "InvalidKeyUsageException"


def test_sm2_data_key_pairs_are_unsupported(kms: Any, wrapping_key: str) -> None:
    with pytest.raises(ClientError) as caught:
        kms.generate_data_key_pair(KeyId=wrapping_key, KeyPairSpec="SM2")
    assert caught.value.response["Error"]["Code"] == "UnsupportedOperationException"


def test_a_disabled_key_makes_no_pair(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as caught:
        kms.generate_data_key_pair(KeyId=key_id, KeyPairSpec="ECC_NIST_P256")
    assert caught.value.response["Error"]["Code"] == "DisabledException"


def test_the_aws_cli_makes_a_pair_that_decrypt_opens(kmsgate_server: Any, wrapping_key: str, tmp_path: Path) -> None:
    if not AWS.exists():
        pytest.skip(f"the aws command line is not installed next to {sys.executable}")
    result = subprocess.run(
        [str(AWS), "kms", "generate-data-key-pair-without-plaintext", "--key-id", wrapping_key,
         "--key-pair-spec", "ECC_NIST_P521", "--encryption-context", "tenant=acme", "--output", "json"],
        env=kmsgate_server.cli_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    pair = json.loads(result.stdout)
    blob = base64.b64decode(pair["PrivateKeyCiphertextBlob"])
    private_der = kmsgate_server.kms_client().decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "acme"})["Plaintext"]
    check_pair("ECC_NIST_P521", private_der, base64.b64decode(pair["PublicKey"]))
