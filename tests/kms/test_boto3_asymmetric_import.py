"""ImportKeyMaterial for HMAC and asymmetric keys through boto3 against a real server: raw HMAC keys,
PKCS#8 private keys, the spec checks, and known answers from the imported keys (RFC 8032,
Wycheproof, RFC 4231-style local HMAC). Signatures made outside kmsgate, by pyca/cryptography and
by ``openssl``, with the imported key verify through Verify."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa

from kmsgate.kms import ed25519ph
from tests.vectors.loader import load_ed25519_vectors, load_rsa_pkcs1_vectors

from .helpers import wrap_key_material

OPENSSL = shutil.which("openssl")


def pkcs8(private_key: Any) -> bytes:
    return private_key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def external_key(kms: Any, spec: str, usage: str) -> str:
    return str(kms.create_key(KeySpec=spec, KeyUsage=usage, Origin="EXTERNAL")["KeyMetadata"]["KeyId"])


def import_material(kms: Any, key_id: str, material: bytes, algorithm: str = "RSA_AES_KEY_WRAP_SHA_256") -> Any:
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_4096")
    wrapped = wrap_key_material(params["PublicKey"], material, algorithm)
    return kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
                                   ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")


def test_an_imported_hmac_key_macs_as_hmac_does_locally(kms: Any) -> None:
    key_id = external_key(kms, "HMAC_384", "GENERATE_VERIFY_MAC")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    material = os.urandom(100)  # HMAC_384 takes 48 to 128 bytes
    import_material(kms, key_id, material, "RSAES_OAEP_SHA_256")
    mac = kms.generate_mac(KeyId=key_id, Message=b"imported", MacAlgorithm="HMAC_SHA_384")["Mac"]
    assert mac == hmac.digest(material, b"imported", hashlib.sha384)
    local = hmac.digest(material, b"made locally", hashlib.sha384)
    assert kms.verify_mac(KeyId=key_id, Message=b"made locally", Mac=local, MacAlgorithm="HMAC_SHA_384")["MacValid"]


@pytest.mark.parametrize(("spec", "size"), [("HMAC_224", 27), ("HMAC_256", 65), ("HMAC_512", 63), ("HMAC_384", 129)])
def test_hmac_key_material_outside_awss_range_is_refused(kms: Any, spec: str, size: int) -> None:
    key_id = external_key(kms, spec, "GENERATE_VERIFY_MAC")
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        import_material(kms, key_id, os.urandom(size))
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


@pytest.mark.parametrize("vector", load_rsa_pkcs1_vectors(), ids=lambda v: v.name)
def test_an_imported_rsa_key_signs_wycheproofs_known_answer(kms: Any, vector: Any) -> None:
    key_id = external_key(kms, "RSA_2048", "SIGN_VERIFY")
    import_material(kms, key_id, vector.private_key_pkcs8)
    signed = kms.sign(KeyId=key_id, Message=vector.message, SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    assert signed["Signature"] == vector.signature
    expected_public = serialization.load_der_private_key(vector.private_key_pkcs8, None).public_key()
    assert kms.get_public_key(KeyId=key_id)["PublicKey"] == expected_public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_an_imported_ed25519_key_signs_rfc_8032s_known_answers(kms: Any) -> None:
    for vector in load_ed25519_vectors():
        key_id = external_key(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
        import_material(kms, key_id, vector.private_key_pkcs8, "RSAES_OAEP_SHA_256")
        signed = kms.sign(KeyId=key_id, Message=vector.message, SigningAlgorithm="ED25519_SHA_512")
        assert signed["Signature"] == vector.signature, vector.name
        assert kms.get_public_key(KeyId=key_id)["PublicKey"].endswith(vector.public_key_raw)
    (prehashed,) = load_ed25519_vectors(prehashed=True)
    key_id = external_key(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    import_material(kms, key_id, prehashed.private_key_pkcs8)
    digest = hashlib.sha512(prehashed.message).digest()
    signed = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ED25519_PH_SHA_512")
    assert signed["Signature"] == prehashed.signature
    assert kms.sign(KeyId=key_id, Message=prehashed.message,
                    SigningAlgorithm="ED25519_PH_SHA_512")["Signature"] == prehashed.signature


def test_an_imported_ed25519_key_from_pyca_signs_and_verifies_ed25519ph(kms: Any) -> None:
    private_key = ed25519.Ed25519PrivateKey.generate()
    key_id = external_key(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    import_material(kms, key_id, pkcs8(private_key))
    message = b"prehashed by the caller"
    digest = hashlib.sha512(message).digest()
    signed = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ED25519_PH_SHA_512")
    signature = signed["Signature"]
    assert kms.sign(KeyId=key_id, Message=message, SigningAlgorithm="ED25519_PH_SHA_512")["Signature"] == signature
    assert signature == ed25519ph.sign(private_key.private_bytes_raw(), digest)
    assert kms.verify(KeyId=key_id, Message=message, Signature=signature,
                      SigningAlgorithm="ED25519_PH_SHA_512")["SignatureValid"]
    assert kms.verify(KeyId=key_id, Message=digest, MessageType="DIGEST", Signature=signature,
                      SigningAlgorithm="ED25519_PH_SHA_512")["SignatureValid"]
    tampered = bytearray(signature)
    tampered[17] ^= 0x04
    with pytest.raises(kms.exceptions.KMSInvalidSignatureException):
        kms.verify(KeyId=key_id, Message=message, Signature=bytes(tampered), SigningAlgorithm="ED25519_PH_SHA_512")


def test_signatures_made_locally_with_the_imported_key_verify_through_verify(kms: Any, tmp_path: Path) -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    key_id = external_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    import_material(kms, key_id, pkcs8(private_key), "RSAES_OAEP_SHA_256")
    local = private_key.sign(b"signed by pyca", ec.ECDSA(hashes.SHA256()))
    assert kms.verify(KeyId=key_id, Message=b"signed by pyca", Signature=local,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    with pytest.raises(kms.exceptions.KMSInvalidSignatureException):
        kms.verify(KeyId=key_id, Message=b"signed by someone else", Signature=local, SigningAlgorithm="ECDSA_SHA_256")
    if OPENSSL is not None:
        (tmp_path / "key.der").write_bytes(pkcs8(private_key))
        (tmp_path / "message").write_bytes(b"signed by openssl")
        subprocess.run([OPENSSL, "dgst", "-sha256", "-keyform", "DER", "-sign", str(tmp_path / "key.der"),
                        "-out", str(tmp_path / "signature"), str(tmp_path / "message")],
                       check=True, capture_output=True, timeout=60)
        assert kms.verify(KeyId=key_id, Message=b"signed by openssl", Signature=(tmp_path / "signature").read_bytes(),
                          SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]


def test_an_imported_ml_dsa_key_signs_and_verifies_with_the_local_key(kms: Any) -> None:
    private_key = mldsa.MLDSA44PrivateKey.generate()
    key_id = external_key(kms, "ML_DSA_44", "SIGN_VERIFY")
    import_material(kms, key_id, pkcs8(private_key))
    signed = kms.sign(KeyId=key_id, Message=b"post-quantum", SigningAlgorithm="ML_DSA_SHAKE_256")
    private_key.public_key().verify(signed["Signature"], b"post-quantum")
    local = private_key.sign(b"signed locally")
    assert kms.verify(KeyId=key_id, Message=b"signed locally", Signature=local,
                      SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"]


@pytest.mark.parametrize(
    ("spec", "usage", "wrong"),
    [("ECC_NIST_P256", "SIGN_VERIFY", lambda: pkcs8(ec.generate_private_key(ec.SECP384R1()))),
     ("ECC_SECG_P256K1", "SIGN_VERIFY", lambda: pkcs8(ec.generate_private_key(ec.SECP256R1()))),
     ("RSA_3072", "SIGN_VERIFY", lambda: load_rsa_pkcs1_vectors()[0].private_key_pkcs8),
     ("ML_DSA_65", "SIGN_VERIFY", lambda: pkcs8(mldsa.MLDSA44PrivateKey.generate())),
     ("ECC_NIST_P256", "SIGN_VERIFY", lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
         serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())),
     ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", lambda: os.urandom(32))],
)
def test_private_key_material_of_another_spec_or_form_is_refused(kms: Any, spec: str, usage: str, wrong: Any) -> None:
    key_id = external_key(kms, spec, usage)
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        import_material(kms, key_id, wrong())
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_reimporting_other_asymmetric_material_is_refused(kms: Any) -> None:
    key_id = external_key(kms, "ECC_NIST_P384", "SIGN_VERIFY")
    first = ec.generate_private_key(ec.SECP384R1())
    import_material(kms, key_id, pkcs8(first))
    kms.delete_imported_key_material(KeyId=key_id)
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        import_material(kms, key_id, pkcs8(ec.generate_private_key(ec.SECP384R1())))
    import_material(kms, key_id, pkcs8(first))
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
