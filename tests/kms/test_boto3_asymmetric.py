"""boto3 against a real ``kmsgate serve`` for asymmetric and HMAC keys: GetPublicKey, Sign, Verify,
RSA Encrypt/Decrypt, GenerateMac, VerifyMac. Every signature and ciphertext is also checked
outside kmsgate, with pyca/cryptography and with the ``openssl`` command line, from the public
key GetPublicKey returns."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from kmsgate.kms import ed25519ph

OPENSSL = shutil.which("openssl")
MESSAGE = b"kmsgate signs this message"
SIGNING_SPECS = ("RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
                 "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87")
_DIGESTS = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


@pytest.fixture(scope="module")
def raw_kms(kmsgate_server: Any) -> Any:
    """A client that sends what it is given: botocore's own parameter checks are off."""
    config = BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=False)
    return kmsgate_server.boto_session().client("kms", endpoint_url=kmsgate_server.endpoint_url, config=config)


@pytest.fixture(scope="module")
def signing_keys(kmsgate_server: Any) -> dict[str, str]:
    kms = kmsgate_server.kms_client()
    return {
        spec: kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"] for spec in SIGNING_SPECS
    }


def error_code(call: Any, **kwargs: Any) -> str | None:
    try:
        call(**kwargs)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return None


def cryptography_accepts(public_der: bytes, algorithm: str, message: bytes, signature: bytes) -> bool:
    public = serialization.load_der_public_key(public_der)
    digest = _DIGESTS.get(algorithm.rsplit("_", 1)[-1])
    try:
        if algorithm.startswith("RSASSA_PSS"):
            assert digest is not None
            public.verify(signature, message, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)  # type: ignore[union-attr, call-arg]
        elif algorithm.startswith("RSASSA_PKCS1"):
            public.verify(signature, message, padding.PKCS1v15(), digest)  # type: ignore[union-attr, call-arg]
        elif algorithm.startswith("ECDSA"):
            public.verify(signature, message, ec.ECDSA(digest))  # type: ignore[union-attr, call-arg, arg-type]
        elif algorithm == "ED25519_PH_SHA_512":  # pyca has no Ed25519ph: PyCryptodome's verifier
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return ed25519ph.verify(raw, hashlib.sha512(message).digest(), signature)
        else:
            public.verify(signature, message)  # type: ignore[union-attr, call-arg]
    except InvalidSignature:
        return False
    return True


def openssl_accepts(tmp_path: Path, public_der: bytes, algorithm: str, message: bytes, signature: bytes) -> bool | None:
    """``openssl``'s verdict on the signature, or ``None`` where this openssl has no such algorithm."""
    if OPENSSL is None or algorithm in ("ML_DSA_SHAKE_256", "ED25519_PH_SHA_512"):
        return None
    (tmp_path / "public.der").write_bytes(public_der)
    (tmp_path / "message").write_bytes(message)
    (tmp_path / "signature").write_bytes(signature)
    key = ["-pubin", "-inkey", str(tmp_path / "public.der"), "-keyform", "DER"]
    if algorithm == "ED25519_SHA_512":
        command = [OPENSSL, "pkeyutl", "-verify", *key, "-rawin", "-in", str(tmp_path / "message"),
                   "-sigfile", str(tmp_path / "signature")]
    else:
        options = []
        if algorithm.startswith("RSASSA_PSS"):
            options = ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"]
        digest = "sha" + algorithm.rsplit("_", 1)[-1]
        (tmp_path / "digest").write_bytes(hashlib.new(digest, message).digest())
        command = [OPENSSL, "pkeyutl", "-verify", *key, "-pkeyopt", f"digest:{digest}", *options,
                   "-in", str(tmp_path / "digest"), "-sigfile", str(tmp_path / "signature")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return result.returncode == 0 and "Signature Verified Successfully" in result.stdout


@pytest.mark.parametrize("spec", SIGNING_SPECS)
def test_every_signing_algorithm_signs_and_verifies_and_others_agree(
    kms: Any, signing_keys: dict[str, str], spec: str, tmp_path: Path
) -> None:
    key_id = signing_keys[spec]
    public = kms.get_public_key(KeyId=key_id)
    assert public["KeySpec"] == spec and public["KeyUsage"] == "SIGN_VERIFY"
    assert "EncryptionAlgorithms" not in public and public["KeyId"].endswith(key_id)
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert public["SigningAlgorithms"] == described["SigningAlgorithms"]
    for algorithm in public["SigningAlgorithms"]:
        signed = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm)
        assert signed["SigningAlgorithm"] == algorithm and signed["KeyId"] == described["Arn"]
        signature = signed["Signature"]
        verified = kms.verify(KeyId=key_id, Message=MESSAGE, Signature=signature, SigningAlgorithm=algorithm)
        assert verified["SignatureValid"] is True
        assert cryptography_accepts(public["PublicKey"], algorithm, MESSAGE, signature), algorithm
        assert not cryptography_accepts(public["PublicKey"], algorithm, MESSAGE + b".", signature), algorithm
        assert openssl_accepts(tmp_path, public["PublicKey"], algorithm, MESSAGE, signature) in (True, None), algorithm
        assert openssl_accepts(tmp_path, public["PublicKey"], algorithm, MESSAGE + b".", signature) in (False, None)
        with pytest.raises(kms.exceptions.KMSInvalidSignatureException):
            kms.verify(KeyId=key_id, Message=MESSAGE + b".", Signature=signature, SigningAlgorithm=algorithm)


@pytest.mark.skipif(OPENSSL is None, reason="no openssl command line")
def test_openssl_checks_signatures_itself(kms: Any, signing_keys: dict[str, str], tmp_path: Path) -> None:
    """The openssl helper refuses a signature of another key: its verdicts mean something."""
    mine = kms.sign(KeyId=signing_keys["ECC_NIST_P256"], Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    other_public = kms.get_public_key(KeyId=signing_keys["ECC_SECG_P256K1"])["PublicKey"]
    mine_public = kms.get_public_key(KeyId=signing_keys["ECC_NIST_P256"])["PublicKey"]
    assert openssl_accepts(tmp_path, mine_public, "ECDSA_SHA_256", MESSAGE, mine) is True
    assert openssl_accepts(tmp_path, other_public, "ECDSA_SHA_256", MESSAGE, mine) is False


@pytest.mark.parametrize(
    ("spec", "algorithm", "hash_name"),
    [("RSA_2048", "RSASSA_PSS_SHA_384", "sha384"), ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512", "sha512"),
     ("ECC_NIST_P256", "ECDSA_SHA_256", "sha256"), ("ECC_NIST_P521", "ECDSA_SHA_512", "sha512"),
     ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512", "sha512")],
)
def test_a_digest_is_signed_as_the_message_it_stands_for(
    kms: Any, raw_kms: Any, signing_keys: dict[str, str], spec: str, algorithm: str, hash_name: str
) -> None:
    key_id = signing_keys[spec]
    digest = hashlib.new(hash_name, MESSAGE).digest()
    signature = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)["Signature"]
    public = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert cryptography_accepts(public, algorithm, MESSAGE, signature)
    assert kms.verify(KeyId=key_id, Message=MESSAGE, Signature=signature, SigningAlgorithm=algorithm)["SignatureValid"]
    assert kms.verify(KeyId=key_id, Message=digest, MessageType="DIGEST", Signature=signature,
                      SigningAlgorithm=algorithm)["SignatureValid"]
    for wrong in (digest[:-1], digest + b"\x00"):
        with pytest.raises(ClientError) as raised:
            raw_kms.sign(KeyId=key_id, Message=wrong, MessageType="DIGEST", SigningAlgorithm=algorithm)
        assert raised.value.response["Error"]["Code"] == "ValidationException"
        assert f"Digest is invalid length for algorithm {algorithm}" in raised.value.response["Error"]["Message"]


def test_ml_dsa_signs_an_external_mu(kms: Any, signing_keys: dict[str, str]) -> None:
    from cryptography.hazmat.primitives.asymmetric import mldsa

    key_id = signing_keys["ML_DSA_65"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    hasher = mldsa.MLDSAMuHasher(public)
    hasher.update(MESSAGE)
    mu = hasher.finalize()
    signature = kms.sign(KeyId=key_id, Message=mu, MessageType="EXTERNAL_MU", SigningAlgorithm="ML_DSA_SHAKE_256")
    public.verify(signature["Signature"], MESSAGE)  # type: ignore[union-attr]
    assert kms.verify(KeyId=key_id, Message=MESSAGE, Signature=signature["Signature"],
                      SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"]
    assert error_code(kms.sign, KeyId=key_id, Message=mu[:32], MessageType="EXTERNAL_MU",
                      SigningAlgorithm="ML_DSA_SHAKE_256") == "ValidationException"
    assert error_code(kms.sign, KeyId=key_id, Message=mu, MessageType="DIGEST",
                      SigningAlgorithm="ML_DSA_SHAKE_256") == "ValidationException"


def test_raw_messages_up_to_4096_bytes(kms: Any, raw_kms: Any, signing_keys: dict[str, str]) -> None:
    key_id = signing_keys["ECC_NIST_P384"]
    signature = kms.sign(KeyId=key_id, Message=bytes(4096), SigningAlgorithm="ECDSA_SHA_384")["Signature"]
    assert kms.verify(KeyId=key_id, Message=bytes(4096), Signature=signature,
                      SigningAlgorithm="ECDSA_SHA_384")["SignatureValid"]
    assert error_code(raw_kms.sign, KeyId=key_id, Message=bytes(4097),
                      SigningAlgorithm="ECDSA_SHA_384") == "ValidationException"


def test_wrong_keys_and_algorithms_are_invalid_key_usage(kms: Any, signing_keys: dict[str, str]) -> None:
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    rsa_encrypt = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    hmac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    for key_id, algorithm in ((signing_keys["ECC_NIST_P256"], "ECDSA_SHA_384"),
                              (signing_keys["RSA_2048"], "ECDSA_SHA_256"),
                              (rsa_encrypt, "RSASSA_PSS_SHA_256"), (symmetric, "ECDSA_SHA_256"),
                              (hmac_key, "ECDSA_SHA_256")):
        assert error_code(kms.sign, KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm) == "InvalidKeyUsageException"
    assert error_code(kms.generate_mac, KeyId=signing_keys["RSA_2048"], Message=MESSAGE,
                      MacAlgorithm="HMAC_SHA_256") == "InvalidKeyUsageException"
    assert error_code(kms.generate_data_key, KeyId=rsa_encrypt, KeySpec="AES_256") == "InvalidKeyUsageException"
    assert error_code(kms.encrypt, KeyId=signing_keys["RSA_2048"], Plaintext=b"x",
                      EncryptionAlgorithm="RSAES_OAEP_SHA_256") == "InvalidKeyUsageException"
    assert error_code(kms.get_public_key, KeyId=symmetric) == "UnsupportedOperationException"
    assert error_code(kms.create_key, KeySpec="ECC_NIST_P256", KeyUsage="ENCRYPT_DECRYPT") == "ValidationException"
    assert error_code(kms.create_key, KeySpec="SM2", KeyUsage="SIGN_VERIFY") == "UnsupportedOperationException"
    assert error_code(kms.enable_key_rotation, KeyId=hmac_key) == "UnsupportedOperationException"
    assert error_code(kms.rotate_key_on_demand, KeyId=signing_keys["ECC_NIST_P256"]) == "UnsupportedOperationException"


@pytest.mark.parametrize(("spec", "algorithm", "limit"), [("RSA_2048", "RSAES_OAEP_SHA_1", 214),
                                                          ("RSA_3072", "RSAES_OAEP_SHA_256", 318)])
def test_rsa_encryption_round_trips_and_interoperates(
    kms: Any, raw_kms: Any, spec: str, algorithm: str, limit: int, tmp_path: Path
) -> None:
    key_id = kms.create_key(KeySpec=spec, KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    public = kms.get_public_key(KeyId=key_id)
    assert public["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    plaintext = (bytes(range(256)) * 2)[:limit]
    encrypted = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionAlgorithm=algorithm)
    assert encrypted["EncryptionAlgorithm"] == algorithm
    decrypted = kms.decrypt(KeyId=key_id, CiphertextBlob=encrypted["CiphertextBlob"], EncryptionAlgorithm=algorithm)
    assert decrypted["Plaintext"] == plaintext and decrypted["EncryptionAlgorithm"] == algorithm
    assert error_code(raw_kms.encrypt, KeyId=key_id, Plaintext=plaintext + b"!",
                      EncryptionAlgorithm=algorithm) == "ValidationException"
    # Encrypted outside kmsgate with the public key alone (pyca, then openssl): kmsgate decrypts it.
    digest = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    loaded = serialization.load_der_public_key(public["PublicKey"])
    outside = loaded.encrypt(b"from pyca", padding.OAEP(padding.MGF1(digest), digest, None))  # type: ignore[union-attr, call-arg]
    assert kms.decrypt(KeyId=key_id, CiphertextBlob=outside, EncryptionAlgorithm=algorithm)["Plaintext"] == b"from pyca"
    if OPENSSL is not None:
        (tmp_path / "public.der").write_bytes(public["PublicKey"])
        (tmp_path / "plain").write_bytes(b"from openssl")
        md = "sha1" if algorithm.endswith("SHA_1") else "sha256"
        subprocess.run([OPENSSL, "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", str(tmp_path / "public.der"),
                        "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}",
                        "-pkeyopt", f"rsa_mgf1_md:{md}", "-in", str(tmp_path / "plain"), "-out", str(tmp_path / "ct")],
                       check=True, capture_output=True, timeout=60)
        from_openssl = (tmp_path / "ct").read_bytes()
        assert kms.decrypt(KeyId=key_id, CiphertextBlob=from_openssl,
                           EncryptionAlgorithm=algorithm)["Plaintext"] == b"from openssl"
    other = "RSAES_OAEP_SHA_256" if algorithm.endswith("SHA_1") else "RSAES_OAEP_SHA_1"
    assert error_code(kms.decrypt, KeyId=key_id, CiphertextBlob=outside,
                      EncryptionAlgorithm=other) == "InvalidCiphertextException"
    assert error_code(kms.decrypt, KeyId=key_id, CiphertextBlob=outside) == "InvalidKeyUsageException"
    assert error_code(kms.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm=algorithm,
                      EncryptionContext={"a": "b"}) == "ValidationException"


@pytest.mark.parametrize(("spec", "algorithm", "size"), [("HMAC_224", "HMAC_SHA_224", 28), ("HMAC_256", "HMAC_SHA_256", 32),
                                                          ("HMAC_384", "HMAC_SHA_384", 48), ("HMAC_512", "HMAC_SHA_512", 64)])
def test_generate_and_verify_mac(kms: Any, raw_kms: Any, spec: str, algorithm: str, size: int) -> None:
    meta = kms.create_key(KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert meta["MacAlgorithms"] == [algorithm]
    key_id = meta["KeyId"]
    generated = kms.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm)
    assert generated["MacAlgorithm"] == algorithm and len(generated["Mac"]) == size
    assert kms.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm)["Mac"] == generated["Mac"]
    verified = kms.verify_mac(KeyId=key_id, Message=MESSAGE, Mac=generated["Mac"], MacAlgorithm=algorithm)
    assert verified["MacValid"] is True and verified["KeyId"] == meta["Arn"]
    flipped = bytes([generated["Mac"][0] ^ 1]) + generated["Mac"][1:]
    for mac, message in ((flipped, MESSAGE), (generated["Mac"], MESSAGE + b"."), (generated["Mac"][:-1], MESSAGE)):
        with pytest.raises(kms.exceptions.KMSInvalidMacException):
            kms.verify_mac(KeyId=key_id, Message=message, Mac=mac, MacAlgorithm=algorithm)
    assert error_code(raw_kms.generate_mac, KeyId=key_id, Message=bytes(4097), MacAlgorithm=algorithm) == "ValidationException"
    assert kms.generate_mac(KeyId=key_id, Message=bytes(4096), MacAlgorithm=algorithm)["Mac"]
    other = "HMAC_SHA_512" if algorithm != "HMAC_SHA_512" else "HMAC_SHA_256"
    assert error_code(kms.generate_mac, KeyId=key_id, Message=MESSAGE, MacAlgorithm=other) == "InvalidKeyUsageException"
    assert error_code(kms.get_public_key, KeyId=key_id) == "UnsupportedOperationException"
    assert error_code(kms.encrypt, KeyId=key_id, Plaintext=b"x") == "InvalidKeyUsageException"
    assert hmac.compare_digest(generated["Mac"], generated["Mac"])  # the MAC is bytes, as botocore decodes blobs


def test_list_keys_and_describe_key_show_asymmetric_keys(kms: Any, signing_keys: dict[str, str]) -> None:
    listed: set[str] = set()
    for page in kms.get_paginator("list_keys").paginate():
        listed.update(entry["KeyId"] for entry in page["Keys"])
    assert set(signing_keys.values()) <= listed
    described = kms.describe_key(KeyId=signing_keys["ECC_NIST_EDWARDS25519"])["KeyMetadata"]
    assert described["KeySpec"] == "ECC_NIST_EDWARDS25519" and "CustomerMasterKeySpec" not in described
    assert described["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
