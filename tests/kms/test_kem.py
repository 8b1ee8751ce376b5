"""ML-KEM (``kmsgate.kms.kem``): key forms, Encapsulate and Decapsulate; no event loop.

Evidence, per parameter set:

- all three: NIST ACVP keyGen answers (tests/vectors/mlkem): the seed d || z, kept as kmsgate keeps
  it, gives NIST's encapsulation key, inside GetPublicKey's SubjectPublicKeyInfo;
- ML-KEM-512 (kyber-py): NIST's expanded decapsulation keys from the same seeds, and NIST's
  decapsulation answers, among them modified ciphertexts (implicit rejection);
- ML-KEM-768 and -1024: cryptography (OpenSSL) and kyber-py derive the same keys from the same
  seeds and each decapsulates what the other encapsulates; the DER forms are cryptography's own.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem
from kyber_py.ml_kem import ML_KEM_512, ML_KEM_768, ML_KEM_1024

from kmsgate.core.errors import InvalidCiphertextError
from kmsgate.kms import asymmetric, kem
from tests.vectors.loader import MlKemDecapsulationVector, MlKemKeyGenVector, load_ml_kem_vectors

KEY_GEN, DECAPSULATION = load_ml_kem_vectors()
SPECS = ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")
KYBER_PY = {"ML_KEM_512": ML_KEM_512, "ML_KEM_768": ML_KEM_768, "ML_KEM_1024": ML_KEM_1024}
CRYPTOGRAPHY = {"ML_KEM_768": mlkem.MLKEM768PrivateKey, "ML_KEM_1024": mlkem.MLKEM1024PrivateKey}
SIZES = {"ML_KEM_512": (800, 768, 822), "ML_KEM_768": (1184, 1088, 1206), "ML_KEM_1024": (1568, 1568, 1590)}


def test_the_vectors_cover_every_parameter_set() -> None:
    assert {vector.key_spec for vector in KEY_GEN} == set(SPECS)
    assert {vector.reason for vector in DECAPSULATION} == {"no modification", "modify ciphertext"}


@pytest.mark.parametrize("vector", KEY_GEN, ids=lambda v: f"{v.key_spec}-{v.tc_id}")
def test_a_kept_seed_gives_nists_encapsulation_key(vector: MlKemKeyGenVector) -> None:
    der = kem.private_key_der(vector.key_spec, vector.seed)
    assert kem.spec_of_private_key(der) == vector.key_spec
    assert kem.encapsulation_key(vector.key_spec, der) == vector.ek
    spki = asymmetric.public_key_der(der)
    assert spki == kem.subject_public_key_info(vector.key_spec, vector.ek)
    assert spki.endswith(vector.ek) and len(spki) == SIZES[vector.key_spec][2]
    if vector.dk is not None:  # ML-KEM-512: the library kmsgate uses expands the seed as NIST does
        assert KYBER_PY[vector.key_spec].key_derive(vector.seed) == (vector.ek, vector.dk)


@pytest.mark.parametrize("vector", DECAPSULATION, ids=lambda v: f"{v.key_spec}-{v.tg_id}-{v.tc_id}")
def test_ml_kem_512_decapsulates_to_nists_shared_secret(vector: MlKemDecapsulationVector) -> None:
    assert KYBER_PY[vector.key_spec].decaps(vector.dk, vector.c) == vector.k


@pytest.mark.parametrize("key_spec", ["ML_KEM_768", "ML_KEM_1024"])
def test_cryptography_and_kyber_py_agree_on_keys_and_secrets(key_spec: str) -> None:
    for _ in range(5):
        seed = os.urandom(kem.SEED_BYTES)
        theirs = CRYPTOGRAPHY[key_spec].from_seed_bytes(seed)
        ek, dk = KYBER_PY[key_spec].key_derive(seed)
        assert theirs.public_key().public_bytes_raw() == ek
        secret, ciphertext = theirs.public_key().encapsulate()
        assert KYBER_PY[key_spec].decaps(dk, ciphertext) == secret
        secret, ciphertext = KYBER_PY[key_spec].encaps(ek)
        assert theirs.decapsulate(ciphertext) == secret


@pytest.mark.parametrize("key_spec", ["ML_KEM_768", "ML_KEM_1024"])
def test_the_der_forms_are_cryptographys_own(key_spec: str) -> None:
    der = kem.generate(key_spec)
    loaded = serialization.load_der_private_key(der, password=None)
    assert isinstance(loaded, CRYPTOGRAPHY[key_spec])
    assert loaded.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) == der
    assert kem.public_key_der(der) == loaded.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert serialization.load_der_public_key(kem.public_key_der(der)) == loaded.public_key()


@pytest.mark.parametrize("key_spec", SPECS)
def test_encapsulate_then_decapsulate_gives_one_secret_of_awss_sizes(key_spec: str) -> None:
    der = kem.generate(key_spec)
    assert len(der) == 86  # the seed form: the same length for every parameter set, as AWS documents
    secret, ciphertext = kem.encapsulate(key_spec, der)
    assert len(secret) == kem.SHARED_SECRET_BYTES and len(ciphertext) == SIZES[key_spec][1]
    assert kem.decapsulate(key_spec, der, ciphertext) == secret
    assert kem.encapsulate(key_spec, der)[0] != secret  # fresh randomness each time


@pytest.mark.parametrize("key_spec", SPECS)
def test_a_secret_encapsulated_outside_under_the_public_key_decapsulates(key_spec: str) -> None:
    der = kem.generate(key_spec)
    ek = kem.encapsulation_key(key_spec, der)
    assert len(ek) == SIZES[key_spec][0]
    secret, ciphertext = KYBER_PY[key_spec].encaps(ek)
    assert kem.decapsulate(key_spec, der, ciphertext) == secret


@pytest.mark.parametrize("key_spec", SPECS)
def test_a_tampered_or_foreign_ciphertext_yields_another_secret_not_an_error(key_spec: str) -> None:
    der = kem.generate(key_spec)
    secret, ciphertext = kem.encapsulate(key_spec, der)
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    rejected = kem.decapsulate(key_spec, der, tampered)
    assert len(rejected) == kem.SHARED_SECRET_BYTES and rejected != secret
    assert kem.decapsulate(key_spec, der, tampered) == rejected  # implicit rejection is deterministic
    assert kem.decapsulate(key_spec, kem.generate(key_spec), ciphertext) != secret


@pytest.mark.parametrize("key_spec", SPECS)
def test_a_ciphertext_of_the_wrong_length_is_the_one_invalid_ciphertext_error(key_spec: str) -> None:
    der = kem.generate(key_spec)
    _, ciphertext = kem.encapsulate(key_spec, der)
    other_lengths = [SIZES[other][1] for other in SPECS if SIZES[other][1] != SIZES[key_spec][1]]
    for wrong in (ciphertext[:-1], ciphertext + b"\x00", b"\x00", *(os.urandom(n) for n in other_lengths)):
        with pytest.raises(InvalidCiphertextError) as caught:
            kem.decapsulate(key_spec, der, wrong)
        assert caught.value.message == kem.INVALID_CIPHERTEXT_MESSAGE


def test_only_the_seed_form_of_a_known_parameter_set_is_an_ml_kem_private_key() -> None:
    der = kem.generate("ML_KEM_768")
    assert kem.spec_of_private_key(der) == "ML_KEM_768"
    for other in (der[:-1], der + b"\x00", der[:12] + b"\x09" + der[13:], os.urandom(86), b""):
        assert kem.spec_of_private_key(other) is None
    with pytest.raises(ValueError):
        kem.private_key_der("ML_KEM_512", os.urandom(32))
