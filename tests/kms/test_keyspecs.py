"""The key-spec table (``kmsgate.kms.keyspecs``): the specs, usages and algorithms AWS documents, generation and import checks."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa

from kmsgate.core.errors import IncorrectKeyMaterialError, UnsupportedOperationError, ValidationError
from kmsgate.kms import kem, keyspecs
from kmsgate.kms.keyspecs import KEY_SPECS, check_imported_material, check_usage, generate_material, key_spec

# AWS's key spec table: the KeyUsage values each spec allows.
AWS_USAGES = {
    "SYMMETRIC_DEFAULT": {"ENCRYPT_DECRYPT"},
    "RSA_2048": {"ENCRYPT_DECRYPT", "SIGN_VERIFY"},
    "RSA_3072": {"ENCRYPT_DECRYPT", "SIGN_VERIFY"},
    "RSA_4096": {"ENCRYPT_DECRYPT", "SIGN_VERIFY"},
    "ECC_NIST_P256": {"SIGN_VERIFY", "KEY_AGREEMENT"},
    "ECC_NIST_P384": {"SIGN_VERIFY", "KEY_AGREEMENT"},
    "ECC_NIST_P521": {"SIGN_VERIFY", "KEY_AGREEMENT"},
    "ECC_SECG_P256K1": {"SIGN_VERIFY"},
    "ECC_NIST_EDWARDS25519": {"SIGN_VERIFY"},
    "HMAC_224": {"GENERATE_VERIFY_MAC"},
    "HMAC_256": {"GENERATE_VERIFY_MAC"},
    "HMAC_384": {"GENERATE_VERIFY_MAC"},
    "HMAC_512": {"GENERATE_VERIFY_MAC"},
    "ML_DSA_44": {"SIGN_VERIFY"},
    "ML_DSA_65": {"SIGN_VERIFY"},
    "ML_DSA_87": {"SIGN_VERIFY"},
    "ML_KEM_512": {"ENCAPSULATE_DECAPSULATE"},
    "ML_KEM_768": {"ENCAPSULATE_DECAPSULATE"},
    "ML_KEM_1024": {"ENCAPSULATE_DECAPSULATE"},
}
ALL_USAGES = ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE")


def test_every_spec_allows_exactly_the_usages_aws_documents() -> None:
    assert set(KEY_SPECS) == set(AWS_USAGES)
    for name, usages in AWS_USAGES.items():
        spec = key_spec(name)
        for usage in ALL_USAGES:
            if usage in usages:
                check_usage(spec, usage)
            else:
                with pytest.raises(ValidationError, match=f"KeyUsage {usage} is not compatible with KeySpec {name}"):
                    check_usage(spec, usage)


def test_the_algorithms_each_spec_offers_are_awss() -> None:
    assert key_spec("RSA_3072").metadata("ENCRYPT_DECRYPT") == {
        "encryption_algorithms": ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    }
    assert key_spec("RSA_2048").metadata("SIGN_VERIFY")["signing_algorithms"] == [
        "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
        "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
    ]
    assert key_spec("ECC_NIST_P384").metadata("SIGN_VERIFY") == {"signing_algorithms": ["ECDSA_SHA_384"]}
    assert key_spec("ECC_NIST_P521").metadata("SIGN_VERIFY") == {"signing_algorithms": ["ECDSA_SHA_512"]}
    assert key_spec("ECC_SECG_P256K1").metadata("SIGN_VERIFY") == {"signing_algorithms": ["ECDSA_SHA_256"]}
    assert key_spec("ECC_NIST_P256").metadata("KEY_AGREEMENT") == {"key_agreement_algorithms": ["ECDH"]}
    assert key_spec("ECC_NIST_EDWARDS25519").metadata("SIGN_VERIFY") == {
        "signing_algorithms": ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    }
    assert key_spec("ML_DSA_65").metadata("SIGN_VERIFY") == {"signing_algorithms": ["ML_DSA_SHAKE_256"]}
    assert key_spec("HMAC_384").metadata("GENERATE_VERIFY_MAC") == {"mac_algorithms": ["HMAC_SHA_384"]}
    for level in (512, 768, 1024):
        assert key_spec(f"ML_KEM_{level}").metadata("ENCAPSULATE_DECAPSULATE") == {"encapsulation_algorithms": ["ML_KEM"]}


def test_sm2_is_refused_as_unsupported() -> None:
    with pytest.raises(UnsupportedOperationError, match="SM2"):
        key_spec("SM2")


@pytest.mark.parametrize("name", [n for n in KEY_SPECS if n != "RSA_4096"])
def test_generated_material_has_the_specs_form(name: str) -> None:
    spec = key_spec(name)
    material = generate_material(spec)
    if spec.family == "symmetric":
        assert len(material) == 32
    elif spec.family == "hmac":
        assert len(material) == spec.hmac_bytes[0]
    elif spec.family == "ml_kem":
        assert kem.spec_of_private_key(material) == name and len(material) == 86
    else:
        private_key = serialization.load_der_private_key(material, password=None)
        expected = {
            "RSA": rsa.RSAPrivateKey, "ECC": ec.EllipticCurvePrivateKey, "ECC_NIST_EDWARDS25519": ed25519.Ed25519PrivateKey,
            "ML_DSA_44": mldsa.MLDSA44PrivateKey, "ML_DSA_65": mldsa.MLDSA65PrivateKey, "ML_DSA_87": mldsa.MLDSA87PrivateKey,
        }
        assert isinstance(private_key, expected.get(name) or expected[name.split("_")[0]])
        if spec.family == "rsa":
            assert isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == spec.rsa_bits
    assert check_imported_material(spec, material) == material  # what is generated is also importable


@pytest.mark.parametrize(
    ("name", "low", "high"), [("HMAC_224", 28, 64), ("HMAC_256", 32, 64), ("HMAC_384", 48, 128), ("HMAC_512", 64, 128)]
)
def test_imported_hmac_keys_must_be_in_awss_length_range(name: str, low: int, high: int) -> None:
    spec = key_spec(name)
    for good in (low, high):
        assert check_imported_material(spec, os.urandom(good)) is not None
    for bad in (low - 1, high + 1):
        with pytest.raises(IncorrectKeyMaterialError, match=f"{low} to {high} bytes"):
            check_imported_material(spec, os.urandom(bad))


def test_an_imported_private_key_must_be_pkcs8_of_the_specs_type_and_size() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert check_imported_material(key_spec("ECC_NIST_P384"), p384)
    for wrong in ("ECC_NIST_P256", "ECC_SECG_P256K1", "RSA_2048", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_KEM_768"):
        with pytest.raises(IncorrectKeyMaterialError, match=f"KeySpec {wrong}"):
            check_imported_material(key_spec(wrong), p384)
    for garbage in (b"", os.urandom(64), p384[:-1]):
        with pytest.raises(IncorrectKeyMaterialError):
            check_imported_material(key_spec("ECC_NIST_P384"), garbage)
    for spec_name, other_form in (
        ("ECC_NIST_P384", ec.generate_private_key(ec.SECP384R1())),  # SEC 1
        ("RSA_2048", rsa.generate_private_key(public_exponent=65537, key_size=2048)),  # PKCS #1
    ):
        traditional = other_form.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        with pytest.raises(IncorrectKeyMaterialError):
            check_imported_material(key_spec(spec_name), traditional)


def test_only_nist_curves_offer_key_agreement() -> None:
    agreeing = {name for name, spec in KEY_SPECS.items() if keyspecs.KEY_AGREEMENT in spec.usages}
    assert agreeing == {"ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"}


def test_only_ml_kem_keys_encapsulate_and_only_with_ml_kem() -> None:
    encapsulating = {name for name, spec in KEY_SPECS.items() if keyspecs.ENCAPSULATE_DECAPSULATE in spec.usages}
    assert encapsulating == {"ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"}
    for name in encapsulating:
        assert KEY_SPECS[name].usages == ("ENCAPSULATE_DECAPSULATE",)
        assert not KEY_SPECS[name].customer_master_key_spec  # the deprecated member's enum has no ML_KEM_*


def test_an_imported_ml_kem_key_must_be_the_specs_seed_form() -> None:
    seed = os.urandom(kem.SEED_BYTES)
    for name in ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"):
        der = kem.private_key_der(name, seed)
        assert check_imported_material(key_spec(name), der) == der
        others = [other for other in ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024") if other != name]
        for other in others:
            with pytest.raises(IncorrectKeyMaterialError, match=f"KeySpec {other}"):
                check_imported_material(key_spec(other), der)
        for garbage in (b"", seed, der[:-1], der + b"\x00"):
            with pytest.raises(IncorrectKeyMaterialError):
                check_imported_material(key_spec(name), garbage)
