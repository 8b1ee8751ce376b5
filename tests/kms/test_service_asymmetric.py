"""Service-layer tests (no HTTP) for asymmetric and HMAC keys, on both key stores: creation per
spec, metadata, storage only wrapped, rotation refused, wrong-key and key-state errors."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kmsgate.core.errors import (
    DisabledError,
    InvalidKeyUsageError,
    KmsInvalidMacError,
    KmsInvalidSignatureError,
    KmsInvalidStateError,
    UnsupportedOperationError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms import keyspecs
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service
from kmsgate.kms.sqlite_store import DB_FILENAME

from .helpers import ACCOUNT_ID, REGION

SPEC_USAGE = [
    ("RSA_2048", "ENCRYPT_DECRYPT", "encryption_algorithms", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]),
    ("RSA_3072", "SIGN_VERIFY", "signing_algorithms", list(keyspecs.RSA_SIGNING)),
    ("ECC_NIST_P256", "SIGN_VERIFY", "signing_algorithms", ["ECDSA_SHA_256"]),
    ("ECC_NIST_P384", "KEY_AGREEMENT", "key_agreement_algorithms", ["ECDH"]),
    ("ECC_NIST_P521", "SIGN_VERIFY", "signing_algorithms", ["ECDSA_SHA_512"]),
    ("ECC_SECG_P256K1", "SIGN_VERIFY", "signing_algorithms", ["ECDSA_SHA_256"]),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "signing_algorithms", ["ED25519_SHA_512", "ED25519_PH_SHA_512"]),
    ("HMAC_224", "GENERATE_VERIFY_MAC", "mac_algorithms", ["HMAC_SHA_224"]),
    ("HMAC_512", "GENERATE_VERIFY_MAC", "mac_algorithms", ["HMAC_SHA_512"]),
    ("ML_DSA_65", "SIGN_VERIFY", "signing_algorithms", ["ML_DSA_SHAKE_256"]),
]
ALGORITHM_FIELDS = ("encryption_algorithms", "signing_algorithms", "key_agreement_algorithms", "mac_algorithms")


async def new_key(service: KmsService, caller: Caller, spec: str, usage: str, **kwargs: Any) -> dict[str, Any]:
    return (await service.create_key(caller=caller, key_spec=spec, key_usage=usage, **kwargs))["key_metadata"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("spec", "usage", "field", "algorithms"), SPEC_USAGE)
async def test_create_key_describes_each_spec_as_aws_does(
    service: KmsService, caller: Caller, spec: str, usage: str, field: str, algorithms: list[str]
) -> None:
    meta = await new_key(service, caller, spec, usage)
    assert meta["key_spec"] == spec and meta["key_usage"] == usage and meta["key_state"] == "Enabled"
    assert meta[field] == algorithms
    assert all(other not in meta for other in ALGORITHM_FIELDS if other != field)
    # The deprecated CustomerMasterKeySpec exists only for the specs its enum names.
    assert meta.get("customer_master_key_spec") == (None if spec.startswith(("ML_DSA", "ECC_NIST_EDWARDS")) else spec)
    assert len(meta["current_key_material_id"]) == 64
    assert (await service.describe_key(caller=caller, key_id=meta["key_id"]))["key_metadata"] == meta


async def test_an_rsa_4096_key_pair_is_generated_off_the_event_loop(
    service: KmsService, caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    generating_threads: list[int] = []
    generate = keyspecs.generate_material

    def recording(spec: keyspecs.KeySpecInfo) -> bytes:
        generating_threads.append(threading.get_ident())
        return generate(spec)

    monkeypatch.setattr(keyspecs, "generate_material", recording)
    meta = await new_key(service, caller, "RSA_4096", "SIGN_VERIFY")
    assert generating_threads and threading.get_ident() not in generating_threads
    public = await service.get_public_key(caller=caller, key_id=meta["key_id"])
    loaded = serialization.load_der_public_key(public.public_key)
    assert isinstance(loaded, rsa.RSAPublicKey) and loaded.key_size == 4096


@pytest.mark.parametrize(
    ("spec", "usage"),
    [("ECC_NIST_P256", "ENCRYPT_DECRYPT"), ("RSA_2048", "GENERATE_VERIFY_MAC"), ("HMAC_256", "SIGN_VERIFY"),
     ("ECC_SECG_P256K1", "KEY_AGREEMENT"), ("ECC_NIST_EDWARDS25519", "KEY_AGREEMENT"), ("ML_DSA_44", "ENCRYPT_DECRYPT"),
     ("SYMMETRIC_DEFAULT", "SIGN_VERIFY"), ("RSA_4096", "KEY_AGREEMENT")],
)
async def test_a_key_usage_the_spec_does_not_allow_is_a_validation_error(
    service: KmsService, caller: Caller, spec: str, usage: str
) -> None:
    with pytest.raises(ValidationError, match=f"KeyUsage {usage} is not compatible with KeySpec {spec}"):
        await new_key(service, caller, spec, usage)


async def test_a_key_spec_without_key_usage_defaults_to_encrypt_decrypt(service: KmsService, caller: Caller) -> None:
    meta = (await service.create_key(caller=caller, key_spec="RSA_2048"))["key_metadata"]
    assert meta["key_usage"] == "ENCRYPT_DECRYPT"
    with pytest.raises(ValidationError, match="KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec HMAC_256"):
        await service.create_key(caller=caller, key_spec="HMAC_256")
    legacy = (await service.create_key(caller=caller, customer_master_key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY"))
    assert legacy["key_metadata"]["key_spec"] == "ECC_NIST_P256"


async def test_sm2_keys_are_unsupported(service: KmsService, caller: Caller) -> None:
    with pytest.raises(UnsupportedOperationError, match="SM2"):
        await new_key(service, caller, "SM2", "SIGN_VERIFY")


def _wrapped_rows(key_store_url: str | None, data_dir: Path, key_id: str) -> list[bytes]:
    if key_store_url is None:
        with sqlite3.connect(data_dir / DB_FILENAME) as conn:
            return [bytes(r[0]) for r in conn.execute("SELECT wrapped FROM materials WHERE key_id = ?", (key_id,))]
    with psycopg.connect(key_store_url) as pg:
        return [bytes(r[0]) for r in pg.execute("SELECT wrapped FROM materials WHERE key_id = %s", (key_id,))]


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_EDWARDS25519"])
async def test_private_keys_are_stored_only_wrapped_and_survive_a_restart(
    data_dir: Path, clock: FakeClock, key_store_url: str | None, caller: Caller, spec: str
) -> None:
    root_key = RootKey(os.urandom(32))

    def open_one() -> KmsService:
        return open_service(data_dir, root_key, region=REGION, account_id=ACCOUNT_ID, clock=clock, key_store=key_store_url)

    first = open_one()
    try:
        key_id = (await new_key(first, caller, spec, "SIGN_VERIFY"))["key_id"]
        algorithm = keyspecs.key_spec(spec).algorithms["SIGN_VERIFY"][0]
        signature = (await first.sign(caller=caller, key_id=key_id, message=b"m", signing_algorithm=algorithm)).signature
        public_der = (await first.get_public_key(caller=caller, key_id=key_id)).public_key
    finally:
        first.close()
    public = serialization.load_der_public_key(public_der)
    if isinstance(public, rsa.RSAPublicKey):
        revealing = public.public_numbers().n.to_bytes(256, "big")  # the modulus is inside the private key's DER
    elif isinstance(public, ec.EllipticCurvePublicKey):
        revealing = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        revealing = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (wrapped,) = _wrapped_rows(key_store_url, data_dir, key_id)
    assert revealing not in wrapped and public_der not in wrapped
    second = open_one()
    try:
        verified = await second.verify(
            caller=caller, key_id=key_id, message=b"m", signature=signature, signing_algorithm=algorithm
        )
        assert verified.signature_valid
        assert (await second.get_public_key(caller=caller, key_id=key_id)).public_key == public_der
    finally:
        second.close()


async def test_hmac_keys_are_stored_only_wrapped(
    service: KmsService, caller: Caller, key_store_url: str | None, data_dir: Path
) -> None:
    key_id = (await new_key(service, caller, "HMAC_256", "GENERATE_VERIFY_MAC"))["key_id"]
    (wrapped,) = _wrapped_rows(key_store_url, data_dir, key_id)
    assert len(wrapped) == 1 + 12 + 32 + 16  # format, nonce, the 32-byte HMAC key sealed, tag


@pytest.mark.parametrize(("spec", "usage"), [("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                                             ("HMAC_256", "GENERATE_VERIFY_MAC")])
async def test_rotation_is_unsupported_for_asymmetric_and_hmac_keys(
    service: KmsService, caller: Caller, spec: str, usage: str
) -> None:
    key_id = (await new_key(service, caller, spec, usage))["key_id"]
    operations: list[Callable[[], Awaitable[Any]]] = [
        lambda: service.enable_key_rotation(caller=caller, key_id=key_id),
        lambda: service.disable_key_rotation(caller=caller, key_id=key_id),
        lambda: service.rotate_key_on_demand(caller=caller, key_id=key_id),
        lambda: service.get_key_rotation_status(caller=caller, key_id=key_id),
        lambda: service.list_key_rotations(caller=caller, key_id=key_id),
    ]
    for operation in operations:
        with pytest.raises(UnsupportedOperationError, match=f"KeySpec {spec}"):
            await operation()


async def test_each_operation_refuses_a_key_of_the_wrong_usage(service: KmsService, caller: Caller) -> None:
    symmetric = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
    rsa_encrypt = (await new_key(service, caller, "RSA_2048", "ENCRYPT_DECRYPT"))["key_id"]
    rsa_sign = (await new_key(service, caller, "RSA_2048", "SIGN_VERIFY"))["key_id"]
    hmac_key = (await new_key(service, caller, "HMAC_256", "GENERATE_VERIFY_MAC"))["key_id"]
    agreement = (await new_key(service, caller, "ECC_NIST_P256", "KEY_AGREEMENT"))["key_id"]
    wrong: list[Callable[[], Awaitable[Any]]] = [
        lambda: service.sign(caller=caller, key_id=rsa_encrypt, message=b"m", signing_algorithm="RSASSA_PSS_SHA_256"),
        lambda: service.sign(caller=caller, key_id=agreement, message=b"m", signing_algorithm="ECDSA_SHA_256"),
        lambda: service.sign(caller=caller, key_id=symmetric, message=b"m", signing_algorithm="ECDSA_SHA_256"),
        lambda: service.sign(caller=caller, key_id=rsa_sign, message=b"m", signing_algorithm="ECDSA_SHA_256"),
        lambda: service.verify(caller=caller, key_id=hmac_key, message=b"m", signature=b"s",
                               signing_algorithm="RSASSA_PSS_SHA_256"),
        lambda: service.generate_mac(caller=caller, key_id=rsa_sign, message=b"m", mac_algorithm="HMAC_SHA_256"),
        lambda: service.generate_mac(caller=caller, key_id=hmac_key, message=b"m", mac_algorithm="HMAC_SHA_512"),
        lambda: service.verify_mac(caller=caller, key_id=symmetric, message=b"m", mac=b"x", mac_algorithm="HMAC_SHA_256"),
        lambda: service.encrypt(caller=caller, key_id=rsa_sign, plaintext=b"p", encryption_algorithm="RSAES_OAEP_SHA_256"),
        lambda: service.encrypt(caller=caller, key_id=hmac_key, plaintext=b"p"),
        lambda: service.encrypt(caller=caller, key_id=rsa_encrypt, plaintext=b"p"),  # SYMMETRIC_DEFAULT
        lambda: service.decrypt(caller=caller, key_id=rsa_sign, ciphertext_blob=bytes(256),
                                encryption_algorithm="RSAES_OAEP_SHA_256"),
        lambda: service.generate_data_key(caller=caller, key_id=rsa_encrypt, key_spec="AES_256"),
        lambda: service.generate_data_key_without_plaintext(caller=caller, key_id=hmac_key, number_of_bytes=32),
    ]
    for operation in wrong:
        with pytest.raises(InvalidKeyUsageError):
            await operation()
    with pytest.raises(UnsupportedOperationError):
        await service.get_public_key(caller=caller, key_id=symmetric)
    with pytest.raises(UnsupportedOperationError):
        await service.get_public_key(caller=caller, key_id=hmac_key)


async def test_a_symmetric_ciphertext_cannot_be_re_encrypted_under_an_asymmetric_key(
    service: KmsService, caller: Caller
) -> None:
    symmetric = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
    rsa_encrypt = (await new_key(service, caller, "RSA_2048", "ENCRYPT_DECRYPT"))["key_id"]
    blob = (await service.encrypt(caller=caller, key_id=symmetric, plaintext=b"p")).ciphertext_blob
    with pytest.raises(InvalidKeyUsageError):
        await service.re_encrypt(caller=caller, ciphertext_blob=blob, destination_key_id=rsa_encrypt)


@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion"])
async def test_asymmetric_and_hmac_operations_follow_the_key_state(
    service: KmsService, caller: Caller, state: str
) -> None:
    signing = (await new_key(service, caller, "ECC_NIST_P256", "SIGN_VERIFY"))["key_id"]
    hmac_key = (await new_key(service, caller, "HMAC_256", "GENERATE_VERIFY_MAC"))["key_id"]
    for key_id in (signing, hmac_key):
        if state == "Disabled":
            await service.disable_key(caller=caller, key_id=key_id)
        else:
            await service.schedule_key_deletion(caller=caller, key_id=key_id, pending_window_in_days=7)
    error = DisabledError if state == "Disabled" else KmsInvalidStateError
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: service.sign(caller=caller, key_id=signing, message=b"m", signing_algorithm="ECDSA_SHA_256"),
        lambda: service.verify(caller=caller, key_id=signing, message=b"m", signature=b"s",
                               signing_algorithm="ECDSA_SHA_256"),
        lambda: service.get_public_key(caller=caller, key_id=signing),
        lambda: service.generate_mac(caller=caller, key_id=hmac_key, message=b"m", mac_algorithm="HMAC_SHA_256"),
        lambda: service.verify_mac(caller=caller, key_id=hmac_key, message=b"m", mac=bytes(32),
                                   mac_algorithm="HMAC_SHA_256"),
    ]
    for call in calls:
        with pytest.raises(error):
            await call()


async def test_a_bad_signature_or_mac_is_its_own_error(service: KmsService, caller: Caller) -> None:
    signing = (await new_key(service, caller, "ECC_NIST_P256", "SIGN_VERIFY"))["key_id"]
    hmac_key = (await new_key(service, caller, "HMAC_384", "GENERATE_VERIFY_MAC"))["key_id"]
    signature = (await service.sign(caller=caller, key_id=signing, message=b"m", signing_algorithm="ECDSA_SHA_256")).signature
    with pytest.raises(KmsInvalidSignatureError):
        await service.verify(caller=caller, key_id=signing, message=b"n", signature=signature,
                             signing_algorithm="ECDSA_SHA_256")
    with pytest.raises(KmsInvalidSignatureError):
        await service.verify(caller=caller, key_id=signing, message=b"m", signature=b"not DER",
                             signing_algorithm="ECDSA_SHA_256")
    mac = (await service.generate_mac(caller=caller, key_id=hmac_key, message=b"m", mac_algorithm="HMAC_SHA_384")).mac
    assert len(mac) == 48
    assert (await service.verify_mac(caller=caller, key_id=hmac_key, message=b"m", mac=mac,
                                     mac_algorithm="HMAC_SHA_384")).mac_valid
    for bad_mac, message in ((mac, b"n"), (mac[:-1], b"m"), (bytes(48), b"m")):
        with pytest.raises(KmsInvalidMacError):
            await service.verify_mac(caller=caller, key_id=hmac_key, message=message, mac=bad_mac,
                                     mac_algorithm="HMAC_SHA_384")
