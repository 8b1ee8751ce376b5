"""Sign/Verify, RSA-OAEP and HMAC cryptography (``kmsgate.kms.asymmetric``, ``macs``, ``ed25519ph``): no event loop.

Every signature is checked with pyca/cryptography's own verifier on the public key alone, and
known-answer vectors (tests/vectors/kms_asymmetric.json) pin the deterministic algorithms.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding

from kmsgate.core.errors import InvalidCiphertextError, InvalidKeyUsageError, ValidationError
from kmsgate.kms import asymmetric, ed25519ph, macs
from kmsgate.kms.keyspecs import KEY_SPECS, generate_material, key_spec
from tests.vectors.loader import load_ed25519_vectors, load_hmac_vectors, load_rsa_pkcs1_vectors

_HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
SIGNING = [
    (name, algorithm)
    for name, spec in KEY_SPECS.items()
    if name != "RSA_4096"
    for algorithm in spec.algorithms.get("SIGN_VERIFY", ())
]
_MATERIAL: dict[str, bytes] = {}


def material(name: str) -> bytes:
    if name not in _MATERIAL:
        _MATERIAL[name] = generate_material(key_spec(name))
    return _MATERIAL[name]


def independently_valid(private_der: bytes, algorithm: str, message: bytes, signature: bytes) -> bool:
    """Whether pyca/cryptography, given only the DER public key, accepts ``signature`` of raw ``message``."""
    public = serialization.load_der_public_key(asymmetric.public_key_der(private_der))
    digest = _HASHES.get(algorithm.rsplit("_", 1)[-1])
    try:
        if algorithm.startswith("RSASSA_PSS"):
            assert digest is not None
            public.verify(signature, message, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)  # type: ignore[union-attr, call-arg]
        elif algorithm.startswith("RSASSA_PKCS1"):
            public.verify(signature, message, padding.PKCS1v15(), digest)  # type: ignore[union-attr, call-arg]
        elif algorithm.startswith("ECDSA"):
            public.verify(signature, message, ec.ECDSA(digest))  # type: ignore[union-attr, call-arg, arg-type]
        elif algorithm == "ED25519_PH_SHA_512":
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return ed25519ph.verify(raw, hashlib.sha512(message).digest(), signature)
        else:
            public.verify(signature, message)  # type: ignore[union-attr, call-arg]
    except InvalidSignature:
        return False
    return True


@pytest.mark.parametrize(("spec_name", "algorithm"), SIGNING)
def test_every_signing_algorithm_makes_signatures_the_public_key_alone_verifies(spec_name: str, algorithm: str) -> None:
    der = material(spec_name)
    message = os.urandom(100)
    signature = asymmetric.sign(der, algorithm, message, "RAW")
    assert independently_valid(der, algorithm, message, signature)
    assert asymmetric.verify(der, algorithm, message, "RAW", signature)
    assert not asymmetric.verify(der, algorithm, message + b"!", "RAW", signature)
    assert not independently_valid(der, algorithm, message + b"!", signature)


@pytest.mark.parametrize(
    ("spec_name", "algorithm"), [(n, a) for n, a in SIGNING if not a.startswith(("ED25519_SHA", "ML_DSA"))]
)
def test_a_digest_signs_as_its_message_would_and_must_have_the_hashs_length(spec_name: str, algorithm: str) -> None:
    der = material(spec_name)
    message = b"sign me by digest"
    digest = hashlib.new("sha" + algorithm.rsplit("_", 1)[-1], message).digest()
    signature = asymmetric.sign(der, algorithm, digest, "DIGEST")
    assert independently_valid(der, algorithm, message, signature)
    assert asymmetric.verify(der, algorithm, digest, "DIGEST", signature)
    assert asymmetric.verify(der, algorithm, message, "RAW", signature)
    for wrong in (digest[:-1], digest + b"\x00"):
        with pytest.raises(ValidationError, match=f"Digest is invalid length for algorithm {algorithm}"):
            asymmetric.sign(der, algorithm, wrong, "DIGEST")


@pytest.mark.parametrize("algorithm_spec", [("ED25519_SHA_512", "ECC_NIST_EDWARDS25519"), ("ML_DSA_SHAKE_256", "ML_DSA_44")])
def test_pure_eddsa_and_ml_dsa_take_no_digest(algorithm_spec: tuple[str, str]) -> None:
    algorithm, spec_name = algorithm_spec
    with pytest.raises(ValidationError, match="MessageType DIGEST is not valid"):
        asymmetric.sign(material(spec_name), algorithm, bytes(64), "DIGEST")


def test_raw_messages_are_limited_to_4096_bytes() -> None:
    der = material("ECC_NIST_P256")
    assert asymmetric.sign(der, "ECDSA_SHA_256", bytes(4096), "RAW")
    with pytest.raises(ValidationError, match="at most 4096 bytes"):
        asymmetric.sign(der, "ECDSA_SHA_256", bytes(4097), "RAW")


@pytest.mark.parametrize("spec_name", ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_ml_dsa_signs_an_external_mu_as_the_message_it_represents(spec_name: str) -> None:
    der = material(spec_name)
    public = serialization.load_der_public_key(asymmetric.public_key_der(der))
    hasher = mldsa.MLDSAMuHasher(public)
    hasher.update(b"a message the caller hashed itself")
    mu = hasher.finalize()
    signature = asymmetric.sign(der, "ML_DSA_SHAKE_256", mu, "EXTERNAL_MU")
    public.verify(signature, b"a message the caller hashed itself")  # type: ignore[union-attr]
    assert asymmetric.verify(der, "ML_DSA_SHAKE_256", mu, "EXTERNAL_MU", signature)
    assert asymmetric.verify(der, "ML_DSA_SHAKE_256", b"a message the caller hashed itself", "RAW", signature)
    with pytest.raises(ValidationError, match="must be 64 bytes"):
        asymmetric.sign(der, "ML_DSA_SHAKE_256", mu[:-1], "EXTERNAL_MU")


def test_external_mu_is_only_for_ml_dsa() -> None:
    with pytest.raises(ValidationError, match="EXTERNAL_MU is not valid for signing algorithm ECDSA_SHA_256"):
        asymmetric.sign(material("ECC_NIST_P256"), "ECDSA_SHA_256", bytes(64), "EXTERNAL_MU")


def test_a_key_signs_only_with_its_specs_algorithms() -> None:
    asymmetric.check_signing_algorithm(key_spec("ECC_NIST_P384"), "SIGN_VERIFY", "ECDSA_SHA_384")
    for spec_name, usage, algorithm in (
        ("ECC_NIST_P384", "SIGN_VERIFY", "ECDSA_SHA_256"),
        ("RSA_2048", "SIGN_VERIFY", "ECDSA_SHA_256"),
        ("RSA_2048", "ENCRYPT_DECRYPT", "RSASSA_PSS_SHA_256"),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "ML_DSA_SHAKE_256"),
    ):
        with pytest.raises(InvalidKeyUsageError):
            asymmetric.check_signing_algorithm(key_spec(spec_name), usage, algorithm)


# -- known answers --------------------------------------------------------------------------


@pytest.mark.parametrize("vector", load_rsa_pkcs1_vectors(), ids=lambda v: v.name)
def test_rsa_pkcs1_v1_5_signatures_match_wycheproof(vector) -> None:  # type: ignore[no-untyped-def]
    assert asymmetric.sign(vector.private_key_pkcs8, "RSASSA_PKCS1_V1_5_SHA_256", vector.message, "RAW") == vector.signature
    digest = hashlib.sha256(vector.message).digest()
    assert asymmetric.sign(vector.private_key_pkcs8, "RSASSA_PKCS1_V1_5_SHA_256", digest, "DIGEST") == vector.signature


@pytest.mark.parametrize("vector", load_ed25519_vectors(), ids=lambda v: v.name)
def test_ed25519_signatures_match_rfc_8032(vector) -> None:  # type: ignore[no-untyped-def]
    assert asymmetric.sign(vector.private_key_pkcs8, "ED25519_SHA_512", vector.message, "RAW") == vector.signature
    assert asymmetric.public_key_der(vector.private_key_pkcs8).endswith(vector.public_key_raw)


@pytest.mark.parametrize("vector", load_ed25519_vectors(prehashed=True), ids=lambda v: v.name)
def test_ed25519ph_signatures_match_rfc_8032(vector) -> None:  # type: ignore[no-untyped-def]
    prehash = hashlib.sha512(vector.message).digest()
    assert asymmetric.sign(vector.private_key_pkcs8, "ED25519_PH_SHA_512", prehash, "DIGEST") == vector.signature
    assert asymmetric.sign(vector.private_key_pkcs8, "ED25519_PH_SHA_512", vector.message, "RAW") == vector.signature
    assert ed25519ph.verify(vector.public_key_raw, prehash, vector.signature)
    assert not ed25519ph.verify(vector.public_key_raw, hashlib.sha512(b"abd").digest(), vector.signature)
    tampered = bytearray(vector.signature)
    tampered[40] ^= 1
    assert not ed25519ph.verify(vector.public_key_raw, prehash, bytes(tampered))
    assert ed25519ph.public_key(vector.private_key_pkcs8[-32:]) == vector.public_key_raw


@pytest.mark.parametrize("vector", load_ed25519_vectors(prehashed=True), ids=lambda v: v.name)
def test_ed25519ph_verify_rejects_any_bit_flipped_in_signature_prehash_or_key(vector) -> None:  # type: ignore[no-untyped-def]
    prehash = hashlib.sha512(vector.message).digest()
    fields = {"signature": vector.signature, "prehash": prehash, "public": vector.public_key_raw}
    for field, value in fields.items():
        for bit in range(len(value) * 8):
            flipped = bytearray(value)
            flipped[bit // 8] ^= 1 << (bit % 8)
            changed = {**fields, field: bytes(flipped)}
            assert not ed25519ph.verify(changed["public"], changed["prehash"], changed["signature"]), (field, bit)


@pytest.mark.parametrize("vector", load_ed25519_vectors(prehashed=True), ids=lambda v: v.name)
def test_ed25519ph_verify_answers_false_to_malformed_input(vector) -> None:  # type: ignore[no-untyped-def]
    prehash = hashlib.sha512(vector.message).digest()
    public, signature = vector.public_key_raw, vector.signature
    order = 2**252 + 27742317777372353535851937790883648493
    non_canonical_s = signature[:32] + (int.from_bytes(signature[32:], "little") + order).to_bytes(32, "little")
    y_beyond_field = (2**255 - 19 + 1).to_bytes(32, "little")  # no point encodes a y of p or more
    assert not ed25519ph.verify(public, prehash, non_canonical_s)
    assert not ed25519ph.verify(public, prehash, y_beyond_field + signature[32:])
    assert not ed25519ph.verify(y_beyond_field, prehash, signature)
    assert not ed25519ph.verify(public, prehash[:63], signature)
    assert not ed25519ph.verify(public, prehash, signature[:63])
    assert not ed25519ph.verify(public[:31], prehash, signature)


def test_an_ed25519_key_pyca_generated_signs_ed25519ph_from_its_pkcs8() -> None:
    private_key = ed25519.Ed25519PrivateKey.generate()
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    message = os.urandom(200)
    prehash = hashlib.sha512(message).digest()
    signature = asymmetric.sign(der, "ED25519_PH_SHA_512", message, "RAW")
    assert asymmetric.sign(der, "ED25519_PH_SHA_512", prehash, "DIGEST") == signature
    assert ed25519ph.public_key(private_key.private_bytes_raw()) == public_raw
    assert ed25519ph.verify(public_raw, prehash, signature)
    assert asymmetric.verify(der, "ED25519_PH_SHA_512", message, "RAW", signature)
    assert asymmetric.verify(der, "ED25519_PH_SHA_512", prehash, "DIGEST", signature)
    tampered = bytearray(signature)
    tampered[0] ^= 0x80
    assert not asymmetric.verify(der, "ED25519_PH_SHA_512", message, "RAW", bytes(tampered))
    assert signature != private_key.sign(message)  # Ed25519ph's dom2 prefix sets it apart from pure Ed25519


def test_ed25519ph_signing_refuses_where_pycryptodome_has_only_variable_time_integers() -> None:
    # PYCRYPTODOME_INTEGER=native is PyCryptodome's switch to its pure-Python integers, the
    # implementation it falls back to, silently, when its constant-time C numbers cannot load.
    program = (
        "import hashlib\n"
        "from kmsgate.core.errors import KmsError\n"
        "from kmsgate.kms import ed25519ph\n"
        "try:\n"
        "    ed25519ph.sign(bytes(32), hashlib.sha512(b'abc').digest())\n"
        "except KmsError as exc:\n"
        "    print('refused:', exc.code)\n"
        "else:\n"
        "    print('signed')\n"
    )
    environment = {**os.environ, "PYCRYPTODOME_INTEGER": "native"}
    ran = subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True,
                         timeout=60, check=True)
    assert ran.stdout.strip() == "refused: KMSInternalException"


@pytest.mark.parametrize("vector", load_hmac_vectors(), ids=lambda v: v.name)
def test_hmac_matches_rfc_4231(vector) -> None:  # type: ignore[no-untyped-def]
    for algorithm, expected in vector.macs.items():
        assert macs.generate_mac(vector.key, algorithm, vector.data) == expected
        assert macs.verify_mac(vector.key, algorithm, vector.data, expected)
        assert not macs.verify_mac(vector.key, algorithm, vector.data, expected[:-1] + bytes([expected[-1] ^ 1]))
        assert not macs.verify_mac(vector.key, algorithm, vector.data, expected[:-1])


# -- RSAES-OAEP -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_name", "algorithm", "limit"),
    [("RSA_2048", "RSAES_OAEP_SHA_1", 214), ("RSA_2048", "RSAES_OAEP_SHA_256", 190),
     ("RSA_3072", "RSAES_OAEP_SHA_1", 342), ("RSA_3072", "RSAES_OAEP_SHA_256", 318)],
)
def test_oaep_plaintext_limits_are_awss(spec_name: str, algorithm: str, limit: int) -> None:
    spec = key_spec(spec_name)
    der = material(spec_name)
    assert asymmetric.max_plaintext_bytes(spec, algorithm) == limit
    ciphertext = asymmetric.encrypt(der, spec, algorithm, bytes(limit))
    assert asymmetric.decrypt(der, algorithm, ciphertext) == bytes(limit)
    with pytest.raises(ValidationError, match=f"at most {limit} bytes"):
        asymmetric.encrypt(der, spec, algorithm, bytes(limit + 1))


def test_rsa_4096_oaep_limits_are_awss() -> None:
    spec = key_spec("RSA_4096")
    assert asymmetric.max_plaintext_bytes(spec, "RSAES_OAEP_SHA_1") == 470
    assert asymmetric.max_plaintext_bytes(spec, "RSAES_OAEP_SHA_256") == 446


def test_oaep_ciphertexts_open_with_the_private_key_alone_and_fail_opaquely_otherwise() -> None:
    spec = key_spec("RSA_2048")
    der = material("RSA_2048")
    ciphertext = asymmetric.encrypt(der, spec, "RSAES_OAEP_SHA_256", b"attack at dawn")
    private = serialization.load_der_private_key(der, password=None)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    assert private.decrypt(ciphertext, oaep) == b"attack at dawn"  # type: ignore[union-attr]
    messages = set()
    for bad in (ciphertext[:-1], bytes([ciphertext[0] ^ 1]) + ciphertext[1:], ciphertext):
        algorithm = "RSAES_OAEP_SHA_1" if bad is ciphertext else "RSAES_OAEP_SHA_256"
        with pytest.raises(InvalidCiphertextError) as raised:
            asymmetric.decrypt(der, algorithm, bad)
        messages.add(raised.value.message)
    assert len(messages) == 1


def test_an_rsa_key_encrypts_only_with_oaep_and_only_for_encrypt_decrypt() -> None:
    spec = key_spec("RSA_2048")
    assert asymmetric.check_encryption_algorithm(spec, "ENCRYPT_DECRYPT", "RSAES_OAEP_SHA_1") == "RSAES_OAEP_SHA_1"
    for usage, algorithm in (("ENCRYPT_DECRYPT", None), ("ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT"),
                             ("SIGN_VERIFY", "RSAES_OAEP_SHA_256")):
        with pytest.raises(InvalidKeyUsageError):
            asymmetric.check_encryption_algorithm(spec, usage, algorithm)
